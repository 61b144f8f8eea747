"""The Bayesian models shipped with the package (``ACS-WFC-VI`` and every model a camera spec
names) load by name everywhere, offline."""
import hashlib
import json

import numpy as np
import pytest
import torch
from astropy.io import fits

import cosmiq_pyro as cq
from cosmiq_pyro.app.cli import build_parser, main
from cosmiq_pyro.models.priors import CentredNormalPrior
from cosmiq_pyro.models import registry
from cosmiq_pyro.models.registry import PUBLISHED_DIR, published_by_camera
from cosmiq_pyro.model import deepCR

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NAME = "ACS-WFC-VI"


@pytest.fixture(scope="module")
def image():
    """A 64 x 64 sky of 100 e- with read noise and one bright CR streak."""
    rng = np.random.default_rng(0)
    x = rng.poisson(100.0, (64, 64)).astype(np.float32) + rng.normal(0.0, 5.0, (64, 64)).astype(np.float32)
    x[30, 20:27] += 2500.0
    return x


def test_package_data_checkpoint_and_its_recipe():
    path = PUBLISHED_DIR / f"{NAME}.pth"
    assert path.stat().st_size <= 2_000_000
    payload = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors and Python
    meta = json.loads((PUBLISHED_DIR / f"{NAME}.json").read_text())
    assert payload["temperature"] == pytest.approx(meta["temperature"])
    assert meta["recipe"]["base"] == "ACS-WFC" and meta["recipe"]["label_rule"] == "drizcr"
    assert len(payload["history"]["epochs"]) == meta["epochs_done"]
    assert (PUBLISHED_DIR / f"{NAME}.log").read_text().startswith("epoch   1")


def test_load_by_name_is_the_bayesian_deepcr_twin():
    result = cq.load(NAME)
    assert result.bayesian and result.model.hidden == 32 and result.model.norm == "batch"
    assert isinstance(result.model.prior, CentredNormalPrior)
    assert result.model.prior.to_dict()["source"] == "deepCR:ACS-WFC"
    assert result.weights_file == PUBLISHED_DIR / f"{NAME}.pth"
    assert 0.1 < result.temperature < 10


def test_predict_facade_and_cli_give_the_same_maps(image, tmp_path, capsys):
    pred = cq.predict(cq.load(NAME), image, T=4, seed=3)
    assert pred.T == 4 and pred.prob[30, 20:27].min() > 0.5  # the streak is found
    assert (pred.prob > 0.5).sum() < 20
    mdl = deepCR(mask=NAME)
    assert mdl.bayesian
    prob, entropy = mdl.clean_vi(image, T=4, seed=3, return_entropy=True)
    np.testing.assert_allclose(prob, pred.prob, atol=1e-6)
    np.testing.assert_allclose(entropy, pred.entropy, atol=1e-6)
    # the CLI's default model ("auto") picks the shipped one for an ACS/WFC frame
    assert build_parser().parse_args(["predict", "x.fits"]).model == "auto"
    source = tmp_path / "frame_flc.fits"
    header = fits.Header({"BUNIT": "ELECTRONS"})
    primary = fits.PrimaryHDU(header=fits.Header({"TELESCOP": "HST", "INSTRUME": "ACS", "DETECTOR": "WFC"}))
    fits.HDUList([primary, fits.ImageHDU(image, header=header, name="SCI", ver=1)]).writeto(source)
    assert main(["predict", str(source), "-o", str(tmp_path), "-T", "4", "--seed", "3"]) == 0
    with fits.open(tmp_path / "frame_flc_cosmiq.fits") as hdul:
        assert hdul[0].header["CQKIND"] == "UNet2SigmoidVI" and hdul[0].header["CQMNAME"] == NAME
        assert hdul[0].header["CQMWHY"] == "header TELESCOP=HST INSTRUME=ACS DETECTOR=WFC"
        names = [h.name for h in hdul]
        prob_ext = next(h for h in hdul if h.name.startswith("PROB"))
        assert prob_ext.data.shape == image.shape, names
        assert (prob_ext.data > 0.5).sum() == (pred.prob > 0.5).sum()


@pytest.mark.parametrize("name", list(published_by_camera()))
def test_every_model_a_camera_spec_names_is_shipped_and_loads_by_name_everywhere(name, image, tmp_path):
    path = PUBLISHED_DIR / f"{name}.pth"
    assert path.is_file() and path.stat().st_size <= 2_000_000
    result = cq.load(name)
    assert result.bayesian and result.novelty is not None and result.weights_file == path
    pred = cq.predict(result, image, T=2, seed=1)
    # the facade takes the frame in the units the model takes, as deepCR does (DECam-VI: ADU, as decam)
    gain = (result.input_transform or {}).get("divide_by", 1.0)
    facade = deepCR(mask=name)
    assert facade.input_unit == ("ADU" if gain != 1.0 else None)
    prob, novelty = facade.clean_vi(image / gain, T=2, seed=1, return_novelty=True)
    np.testing.assert_allclose(prob, pred.prob, rtol=0, atol=1e-6)
    assert novelty.score == pytest.approx(pred.novelty, abs=1e-4)
    source = tmp_path / "frame.fits"
    fits.PrimaryHDU(image, header=fits.Header({"BUNIT": "ELECTRONS"})).writeto(source)
    assert main(["predict", str(source), "--model", name, "-T", "2", "--seed", "1", "-o", str(tmp_path)]) == 0
    with fits.open(tmp_path / "frame_cosmiq.fits") as hdul:
        header = hdul[0].header
        assert (header["CQMNAME"], header["CQMREQ"], header["CQMWHY"]) == (name, name, "given")
        assert header["CQMSHA"] == hashlib.sha256(path.read_bytes()).hexdigest()
        np.testing.assert_allclose(hdul["PROB"].data, pred.prob, rtol=0, atol=2e-5)


def test_a_spec_naming_a_model_whose_file_is_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "PUBLISHED_DIR", tmp_path)  # an installation without the model files
    with pytest.raises(FileNotFoundError, match=r"'ACS-WFC-VI' \(named by the ACS-WFC spec's \[models\] published\) "
                                                r"has no checkpoint ACS-WFC-VI.pth"):
        cq.load(NAME)
