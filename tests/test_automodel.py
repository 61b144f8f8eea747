"""``model="auto"`` (the default): the camera recognised from the header picks its spec's model;
any other frame gets the shipped model with the lowest novelty margin (novelty less the model's
own threshold), checked against margins computed here with `predict`; provenance, resume and the
command line say which model was used and why."""
import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData

import cosmiq_pyro as cq
from cosmiq_pyro.app import automodel
from cosmiq_pyro.app.automodel import camera_choice, choose_model, novelty_choice
from cosmiq_pyro.app.cli import main
from cosmiq_pyro.instruments import get_instrument, list_instruments, spec_path
from cosmiq_pyro.instruments.schema import MATCH_KEYWORDS
from cosmiq_pyro.models.registry import PUBLISHED_DIR

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIDE = 128  # two novelty blocks a side


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def flat(sky_e, seed=0, side=SIDE):
    """A flat sky of ``sky_e`` electrons with Poisson and 5 e- read noise."""
    rng = np.random.default_rng(seed)
    return (rng.poisson(sky_e, (side, side)) + rng.normal(0.0, 5.0, (side, side))).astype(np.float32)


def match_header(spec) -> fits.Header:
    """A primary header carrying the values ``spec`` matches on (its first accepted value of each)."""
    return fits.Header({key: getattr(spec.match, key.lower())[0] for key in MATCH_KEYWORDS
                        if getattr(spec.match, key.lower())})


def camera_file(path, header, sky_e=100.0, extname="SCI"):
    """A one-extension FITS file in electrons with ``header`` as its primary header."""
    science = fits.ImageHDU(flat(sky_e), name=extname, ver=1)
    science.header["BUNIT"] = "ELECTRONS"
    fits.HDUList([fits.PrimaryHDU(header=header), science]).writeto(path)
    return Path(path)


def margin(model, image, ignore=None) -> float:
    """The novelty margin computed directly: `predict`'s novelty less the model's threshold."""
    return cq.predict(model, image, T=1, ignore=ignore, progress=False).novelty - model.novelty["threshold"]


@pytest.fixture(scope="module")
def high_sky_model(tmp_path_factory):
    """ACS-WFC-VI's weights with a novelty model fitted on flat 3000 e- skies: a second candidate
    that is at home where ACS-WFC-VI is not."""
    from cosmiq_pyro.inference.novelty import fit_novelty

    acs = cq.load("ACS-WFC-VI")
    novelty = fit_novelty(acs, [flat(3000, seed=s) for s in range(8)], [flat(3000, seed=s) for s in range(8, 16)])
    return cq.save(tmp_path_factory.mktemp("high_sky") / "high_sky.pth",
                   dataclasses.replace(acs, novelty=novelty.state_dict()))


# ---------------------------------------------------------------- rule 1: the camera's model


@pytest.mark.parametrize("camera", list_instruments())
def test_a_header_recognised_frame_gets_its_cameras_model_without_reading_pixels(camera):
    spec = get_instrument(camera)
    header = match_header(spec)

    def no_pixels():
        raise AssertionError("the header decides: the pixels are not read")

    if spec.models.published is None:  # a camera without a model of its own: the novelty rule decides
        assert camera_choice(header) is None
        return
    choice = choose_model("auto", header=header, images=no_pixels)
    assert choice.name == spec.models.published and choice.requested == "auto"
    assert choice.sha256 == sha256(PUBLISHED_DIR / f"{spec.models.published}.pth")  # the shipped file
    assert choice.reason == "header " + " ".join(f"{key}={value}" for key, value in header.items())
    assert choice.bayesian and choice.result.novelty is not None
    # a given camera spec decides instead of the header
    given = camera_choice(fits.Header({"INSTRUME": "GMOS-S"}), instrument=camera)
    assert given.name == spec.models.published and given.reason == f"instrument={spec.name} given"


def test_a_spec_without_model_leaves_it_to_novelty_and_a_spec_naming_an_unknown_model_is_an_error(tmp_path):
    text = spec_path("ACS-WFC").read_text()
    no_model = tmp_path / "mine.toml"
    no_model.write_text(text.replace('name = "ACS-WFC"', 'name = "MINE"')
                        .replace('published = "ACS-WFC-VI"', ""))
    assert get_instrument(no_model).models.published is None
    assert camera_choice(None, instrument=no_model) is None
    choice = novelty_choice([(flat(100), None)], instrument=no_model, candidates=("ACS-WFC-VI",))
    assert choice.reason == "lowest novelty of 1 model; camera MINE has no model"
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(text.replace('published = "ACS-WFC-VI"', 'published = "NOPE-VI"'))
    with pytest.raises(ValueError, match="names published model 'NOPE-VI', which is not one"):
        camera_choice(None, instrument=unknown)


# ---------------------------------------------------------------- rule 2: the lowest novelty margin


def test_an_unrecognised_frame_gets_the_model_with_the_lowest_novelty_margin(high_sky_model):
    candidates = ("ACS-WFC-VI", str(high_sky_model))
    models = [cq.load(c) for c in candidates]
    header = fits.Header({"INSTRUME": "GMOS-S"})
    low, high = flat(100, seed=20), flat(3000, seed=21)
    ignore = np.zeros(high.shape, bool)
    ignore[:40, :30] = True
    high_bad = np.where(ignore, np.nan, high).astype(np.float32)  # ignored pixels are left out, as predict does
    chosen = []
    for images in ([(low, None)], [(high_bad, ignore)], [(low, None), (high, None)]):
        expected = [max(margin(m, x, ig) for x, ig in images) for m in models]  # the worst extension counts
        choice = novelty_choice(images, header=header, candidates=candidates)
        np.testing.assert_allclose([m for _, m in choice.margins], expected, rtol=0, atol=1e-4)
        best = int(np.argmin(expected))
        assert choice.sha256 == sha256(cq.load(candidates[best]).weights_file)
        assert choice.reason == "lowest novelty of 2 models; camera GMOS-S has no model"
        chosen.append(choice.name)
    assert chosen == ["ACS-WFC-VI", "high_sky.pth", "ACS-WFC-VI"]  # the frame decides
    assert novelty_choice([(low, None)], candidates=candidates).reason.endswith("; no header")
    assert novelty_choice([(low, None)], header=fits.Header({"OBSERVER": "x"}),
                          candidates=candidates).reason.endswith("; no camera in the header")


def test_a_frame_smaller_than_a_novelty_block_gets_the_first_candidate(high_sky_model):
    choice = novelty_choice([(flat(100, side=32), None)], candidates=(str(high_sky_model), "ACS-WFC-VI"))
    assert choice.name == "high_sky.pth" and choice.reason == "first shipped model, no novelty score; no header"
    assert all(np.isnan(m) for _, m in choice.margins)


def test_a_frame_every_model_finds_novel_gets_the_least_novel_and_the_warning(high_sky_model, monkeypatch):
    candidates, names = (str(high_sky_model), "ACS-WFC-VI"), ("high_sky.pth", "ACS-WFC-VI")
    monkeypatch.setattr(automodel, "candidate_models", lambda: candidates)
    image = flat(30000, seed=3)  # far brighter than either model's frames
    expected = [margin(cq.load(c), image) for c in candidates]
    assert min(expected) > 0  # novel for both
    best = int(np.argmin(expected))
    ccd = CCDData(image / 2, unit="adu", meta=fits.Header({"INSTRUME": "GMOS-S"}))
    with pytest.warns(UserWarning, match=f"unlike the training frames of {names[best]}"):
        out = cq.cosmicray_cosmiq(ccd, gain=2 * u.electron / u.adu, T=1)
    assert out.meta["CQMNAME"] == names[best] and out.meta["CQMREQ"] == "auto" and out.meta["CQISNOV"] is True
    assert out.meta["CQMWHY"] == "lowest novelty of 2 models; camera GMOS-S has no model"
    threshold = cq.load(candidates[best]).novelty["threshold"]
    assert out.meta["CQNOVEL"] - threshold == pytest.approx(expected[best], abs=1e-4)


# ---------------------------------------------------------------- provenance, resume, the command line


def test_products_record_the_request_and_resume_compares_the_model_used(models, tmp_path):
    source = camera_file(tmp_path / "j_flc.fits", match_header(get_instrument("ACS-WFC")))
    out = tmp_path / "out"
    product = out / "j_flc_cosmiq.fits"
    first = cq.predict_many(source, model="ACS-WFC-VI", outdir=out, T=2)
    assert first.loc[0, "status"] == "done" and first.loc[0, "model_reason"] == "given"
    header = fits.getheader(product)
    assert (header["CQMREQ"], header["CQMNAME"], header["CQMWHY"]) == ("ACS-WFC-VI", "ACS-WFC-VI", "given")
    assert header["CQMSHA"] == sha256(PUBLISHED_DIR / "ACS-WFC-VI.pth")
    made = product.read_bytes()
    # "auto" picks the same model for this ACS/WFC frame: the same settings, the product is reused
    again = cq.predict_many(source, outdir=out, T=2)
    assert again.loc[0, "status"] == "skipped" and product.read_bytes() == made
    assert (again.loc[0, "model"], again.loc[0, "model_reason"]) == (
        "ACS-WFC-VI", "header TELESCOP=HST INSTRUME=ACS DETECTOR=WFC")
    # a product made with another model is never taken for the one "auto" chooses
    other = cq.predict_many(source, model=models["vi"], outdir=out, T=2)
    assert other.loc[0, "status"] == "failed" and "CQMSHA" in other.loc[0, "error"]
    redo = cq.predict_many(source, outdir=out, T=2, overwrite=True)
    assert redo.loc[0, "status"] == "done"
    header = fits.getheader(product)
    assert (header["CQMREQ"], header["CQMNAME"]) == ("auto", "ACS-WFC-VI")
    assert header["CQMWHY"] == "header TELESCOP=HST INSTRUME=ACS DETECTOR=WFC"
    assert cq.predict_many(source, model="ACS-WFC-VI", outdir=out, T=2).loc[0, "status"] == "skipped"


def test_the_command_line_says_which_model_was_used_and_why(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(automodel, "candidate_models", lambda: ("ACS-WFC-VI",))
    acs = camera_file(tmp_path / "a_flc.fits", match_header(get_instrument("ACS-WFC")))
    gmos = camera_file(tmp_path / "g.fits", fits.Header({"INSTRUME": "GMOS-S"}))
    out = tmp_path / "out"
    assert main(["predict", str(acs), str(gmos), "-T", "2", "-o", str(out)]) == 0
    stdout = capsys.readouterr()[0].splitlines()
    header_why = "header TELESCOP=HST INSTRUME=ACS DETECTOR=WFC"
    novelty_why = "lowest novelty of 1 model; camera GMOS-S has no model"
    assert f"wrote {out / 'a_flc_cosmiq.fits'} [model ACS-WFC-VI: {header_why}]" in stdout
    assert f"wrote {out / 'g_cosmiq.fits'} [model ACS-WFC-VI: {novelty_why}]" in stdout
    assert stdout[-1].startswith("cosmiq predict: 2 done, 0 redone, 0 skipped, 0 failed; ")
    assert stdout[-1].endswith(f"; models ACS-WFC-VI ({header_why}) for 1 frame, "
                               f"ACS-WFC-VI ({novelty_why}) for 1 frame")
    assert fits.getheader(out / "g_cosmiq.fits")["CQMWHY"] == novelty_why
    assert main(["predict", str(acs), "-T", "2", "-o", str(tmp_path / "one")]) == 0
    assert capsys.readouterr()[0].splitlines()[-1].endswith(f"; model ACS-WFC-VI ({header_why})")


def test_auto_is_not_a_model_to_load():
    with pytest.raises(ValueError, match="'auto' is chosen per frame"):
        cq.load("auto")


def test_a_batch_refuses_a_given_spec_naming_an_unknown_model_before_any_frame(tmp_path):
    text = spec_path("ACS-WFC").read_text().replace('published = "ACS-WFC-VI"', 'published = "NOPE-VI"')
    (tmp_path / "nope.toml").write_text(text)
    source = camera_file(tmp_path / "f.fits", fits.Header())
    with pytest.raises(ValueError, match="names published model 'NOPE-VI'"):
        cq.predict_many(source, outdir=tmp_path / "out", instrument=tmp_path / "nope.toml")
    assert not (tmp_path / "out").exists()
