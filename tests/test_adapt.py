"""`cosmiq_pyro.adapt` / ``cosmiq adapt``: a Bayesian model for a camera with the ACS-WFC-VI recipe."""
import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import cosmiq_pyro as cq
from cosmiq_pyro.app.cli import main
from cosmiq_pyro.data.datasets import SimulatedDataset
from cosmiq_pyro.data.seeds import HELD_OUT_SEED
from cosmiq_pyro.inference.adaptation import ACS_WFC_VI
from cosmiq_pyro.inference.prior_shift import with_prior_shift
from cosmiq_pyro.model import deepCR
from cosmiq_pyro.models.registry import PUBLISHED_DIR, load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Smoke scale: 64 px frames (one novelty block each), 4 training / 2 validation frames.
SMOKE = {"n_val": 2, "batch_size": 2, "n_novelty": 3, "n_novelty_cal": 3}


def test_the_recipe_is_the_one_acs_wfc_vi_was_trained_with():
    """Every value the shipped model's JSON records is the package recipe's (the keys it lacks were
    fit_svi / calibrate defaults then: those values)."""
    shipped = json.loads((PUBLISHED_DIR / "ACS-WFC-VI.json").read_text())["recipe"]
    assert {k: ACS_WFC_VI[k] for k in shipped} == shipped
    assert ACS_WFC_VI["kl_beta"] == 1 / 256 ** 2  # the exact ELBO per pixel of 256 x 256 frames
    # the values that were implicit when ACS-WFC-VI was trained (fit.py at commit eebcf90)
    assert (ACS_WFC_VI["num_particles"], ACS_WFC_VI["lr_decay_factor"], ACS_WFC_VI["lr_decay_patience"],
            ACS_WFC_VI["save_after"]) == (1, 0.1, 4, 0)


def toy_spec(folder):
    """A user's TOML spec of a ground-based toy camera: DECam's spec under another name."""
    from cosmiq_pyro.instruments import get_instrument

    text = re.sub(r'(?m)^name = "DECam"$', 'name = "TOY-CAM"', get_instrument("DECam").to_toml(), count=1)
    assert 'name = "TOY-CAM"' in text
    path = folder / "toy_cam.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    """A model for the toy camera adapted in two resumed chunks of one epoch; the card after the
    first chunk."""
    folder = tmp_path_factory.mktemp("adapt")
    spec, out = toy_spec(tmp_path_factory.mktemp("spec")), folder / "toy.pth"
    first = cq.adapt(spec, "ACS-WFC", out, n_frames=4, size=64, epochs=2, chunk_epochs=1, recipe=SMOKE,
                     progress=False)
    after_first = {"card": first.card, "work": sorted(p.name for p in (folder / "toy.adapt").iterdir())}
    second = cq.adapt(spec, "ACS-WFC", out, n_frames=4, size=64, epochs=2, chunk_epochs=1, recipe=SMOKE,
                      progress=False)
    return out, after_first, second, spec


def test_adapt_resumes_in_chunks_and_writes_one_complete_checkpoint(adapted):
    out, after_first, second, _ = adapted
    assert after_first["card"]["training"]["epochs_done"] == 1 and after_first["work"] == ["adapt.json", "run.pth"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["toy.pth"]  # the work directory is gone when done
    card = second.card
    assert card["training"]["epochs_done"] == 2 and [c["epochs"] for c in card["training"]["chunks"]] == [[1, 1], [2, 2]]
    # the first epoch was not run again: its record is the first chunk's
    assert card["validation"]["val_loss"][0] == after_first["card"]["validation"]["val_loss"][0]
    payload = torch.load(out, map_location="cpu", weights_only=True)  # one file, tensors and plain Python
    assert payload["sections"]["card"] == card and "novelty" in payload["sections"]


def test_adapted_model_loads_with_temperature_card_and_novelty_and_predicts(adapted):
    out, _, _, spec = adapted
    model = cq.load(out)
    assert model.bayesian and model.novelty is not None and model.input_transform is None
    card = model.card
    assert card["recipe"]["kl_beta"] == 1 / 64 ** 2 and card["recipe"]["size"] == 64  # exact ELBO of 64 px frames
    assert card["recipe"]["prior_scale"] == 0.1
    assert card["instrument"] == {"name": "TOY-CAM", "source": str(spec)}
    # the camera's own frames: its label rule, exposure times and training CR-rate factor (DECam's spec)
    assert card["recipe"]["label_rule"] == "sigma" and card["recipe"]["cr_rate_multiplier"] == 50.0
    assert card["recipe"]["exptime_s"] == [30.0, 600.0]
    assert model.novelty["read_noise_e"] == 7.5  # the spec's read noise, 6-9 e-
    # the novelty frames: 3 fit, 3 calibration (the smoke recipe), the package's quantile, ignored pixels out
    assert card["data"]["novelty"] == {"n_fit": 3, "fit_seed": 15, "n_cal": 3, "cal_seed": 16,
                                       "false_alarm": ACS_WFC_VI["novelty_false_alarm"], "cr_rate_multiplier": 1.0,
                                       "ignored_pixels": "left out"}
    assert card["validation"]["temperature"] == model.temperature != 1.0
    # trained at 50x the real CR rate: predicts at the real rate (prior shift -ln 50)
    assert model.sections["prior_shift"]["logit_shift"] == pytest.approx(-math.log(50.0))
    assert card["validation"]["prior_logit_shift"] == model.sections["prior_shift"]["logit_shift"]
    assert model.model.prior.to_dict() == {"kind": "CentredNormalPrior", "scale": 0.1, "source": "deepCR:ACS-WFC"}
    # the start file by name and digest, not by the training machine's path
    start_file = Path(load_model(card["start"]["model"]).weights_file)
    assert card["start"]["weights_file"] == start_file.name
    assert card["start"]["weights_file_sha256"] == hashlib.sha256(start_file.read_bytes()).hexdigest()
    assert len(card["validation"]["val_loss"]) == 2 and card["training"]["best_epoch"] in (1, 2)
    text = str(model)
    assert "model card: toy" in text and "camera: TOY-CAM" in text and "started from ACS-WFC" in text
    frame = SimulatedDataset(1, size=256, instrument=spec, cr_rate_multiplier=50.0, seed=HELD_OUT_SEED).frame(0)
    with_prior_shift(model, 50.0, 50.0)  # told the frame's CR rate, the training one
    assert "prior_shift" not in model.sections
    pred = cq.predict(model, frame.image, T=4, seed=0)
    assert pred.novelty is not None and math.isfinite(pred.novelty)
    # two tiny epochs from deepCR's weights under a prior centred there: its detections stay deepCR's
    start = cq.predict(cq.load("ACS-WFC"), frame.image).prob > 0.5
    found = pred.prob > 0.5
    assert (found & frame.mask).sum() >= 0.8 * (start & frame.mask).sum() > 0
    assert (found & ~frame.mask).sum() <= 1.5 * (start & ~frame.mask).sum() + 10


def test_adapt_again_with_the_same_recipe_does_nothing_and_another_is_refused(adapted):
    out, _, second, spec = adapted
    before = out.stat().st_mtime_ns
    again = cq.adapt(spec, "ACS-WFC", out, n_frames=4, size=64, epochs=2, recipe=SMOKE, progress=False)
    assert again.card == second.card and out.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match=r"another recipe \(differs in \['batch_size'\]\)"):
        cq.adapt(spec, "ACS-WFC", out, n_frames=4, size=64, epochs=2, recipe={**SMOKE, "batch_size": 4},
                 progress=False)


@pytest.mark.parametrize("args, message", [
    (["--instrument", "missing.toml", "--from", "ACS-WFC"], r"instrument spec '\S*missing.toml' does not exist"),
    (["--instrument", "NO-CAMERA", "--from", "ACS-WFC"], r"NO-CAMERA"),
    (["--instrument", "ACS-WFC", "--from", "missing.pth"], r"checkpoint 'missing.pth' does not exist"),
    (["--instrument", "ACS-WFC", "--from", "no-such-model"], r"unknown deepCR mask model 'no-such-model'"),
    (["--instrument", "ACS-WFC", "--from", "ACS-WFC", "--recipe", "no_such_key=1"],
     r"recipe: unknown key\(s\) \['no_such_key'\]"),
    (["--instrument", "ACS-WFC", "--from", "ACS-WFC", "--recipe", "star_core_weight=-3"],
     r"star_core_weight must be .*> 0"),
    (["--instrument", "ACS-WFC", "--from", "ACS-WFC", "--recipe", "star_core_weight=[1, 2, 3]"],
     r"star_core_weight must be a number > 0 or a pair"),
    (["--instrument", "ACS-WFC", "--from", "ACS-WFC", "--recipe", "lr=1e-3", "--recipe", "lr=2e-3"],
     r"--recipe gives lr more than once"),
    (["--instrument", "ACS-WFC", "--from", "ACS-WFC", "--recipe", "epochs=3"], r"--recipe epochs: use --epochs"),
    (["--instrument", "ACS-WFC", "--from", "ACS-WFC", "--recipe", "base=decam"],
     r"recipe: \['base'\] cannot be overridden"),
])
def test_a_missing_spec_or_model_is_one_line_and_nothing_is_written(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["adapt", *args, "--out", "new.pth"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and err.count("\n") == 1 and err.startswith("cosmiq adapt: error: ")
    assert list(tmp_path.iterdir()) == []


def test_cosmiq_adapt_takes_recipe_overrides_as_json_values(tmp_path):
    """``--recipe KEY=VALUE`` reaches the recipe the card records, VALUE read as JSON (a number, a
    list for the (clean, cr) pair), as ``recipe={...}`` in Python would."""
    spec = toy_spec(tmp_path)
    out = tmp_path / "weighted.pth"
    args = ["adapt", "--instrument", str(spec), "--from", "ACS-WFC", "--out", str(out), "--n-frames", "4",
            "--size", "64", "--epochs", "1", "--quiet", "--recipe", "star_core_weight=[90, 30]",
            "--recipe", "prior_scale=0.3"]
    args += [item for key, value in SMOKE.items() for item in ("--recipe", f"{key}={value}")]
    assert main(args) == 0
    recipe = load_model(out).card["recipe"]
    assert recipe["star_core_weight"] == [90, 30] and recipe["prior_scale"] == 0.3
    assert {key: recipe[key] for key in SMOKE} == SMOKE
    assert recipe["lr"] == ACS_WFC_VI["lr"]  # what was not given keeps the recipe's value


def test_a_recipe_item_without_a_value_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["adapt", "--instrument", "ACS-WFC", "--from", "ACS-WFC", "--out", "new.pth",
                 "--recipe", "star_core_weight"]) == 2
    err = capsys.readouterr().err
    assert err == ("cosmiq adapt: argument --recipe: expected KEY=VALUE, got 'star_core_weight' "
                   "(see cosmiq adapt --help)\n")
    assert list(tmp_path.iterdir()) == []


def test_a_standardised_start_model_is_standardised_by_predict_as_by_the_facade():
    """deepCR's WFC3-UVIS takes standardised frames: the loaded model carries that transform and
    `predict` applies it to the whole frame, as the deepCR facade (checked against deepCR itself in
    test_model.py) does."""
    pytest.importorskip("deepCR")
    model = cq.load("WFC3-UVIS")
    assert model.input_transform == {"kind": "standardise"}
    rng = np.random.default_rng(3)
    image = rng.normal(300.0, 20.0, (64, 64)).astype(np.float32)
    image[20, 10:30] += 3000.0
    prob = cq.predict(model, image, novelty=False).prob
    np.testing.assert_allclose(prob, deepCR(mask="WFC3-UVIS").clean(image, binary=False), atol=1e-5)
    z = (image - image.mean()) / image.std()
    model.input_transform = None
    np.testing.assert_allclose(prob, cq.predict(model, z, novelty=False).prob, atol=1e-6)


def _old_train_published_first_epoch(checkpoint, recipe):
    """benchmarks/train_published.py before it called adapt (commit eebcf90), at a small scale:
    its datasets and its fit_svi call, kept here as the reference, with fit_svi's defaults of that
    time written out (num_particles 1, lr decay 0.1 after 4 epochs: fit_svi's defaults changed since)."""
    from cosmiq_pyro.inference.fit import fit_svi
    from cosmiq_pyro.models.bayesian import UNet2SigmoidVI

    common = dict(size=recipe["size"], fields=recipe["fields"], filters=recipe["filters"],
                  exptime_s=tuple(recipe["exptime_s"]), label_rule=recipe["label_rule"])
    train = SimulatedDataset(recipe["n_train"], seed=recipe["train_seed"], augment=True, **common)
    val = SimulatedDataset(recipe["n_val"], seed=recipe["val_seed"], **common)
    model = UNet2SigmoidVI.from_deepcr(recipe["base"], prior_scale=recipe["prior_scale"])
    return fit_svi(model, train, val, epochs=recipe["epochs"], batch_size=recipe["batch_size"], lr=recipe["lr"],
                   scale_lr=recipe["scale_lr"], kl_beta=recipe["kl_beta"], init_scale=recipe["init_scale"],
                   phase0_epochs=recipe["phase0_epochs"], val_samples=recipe["val_samples"],
                   seed=recipe["fit_seed"], checkpoint=checkpoint, resume=True, calibrate=True,
                   device="cpu", progress=False, num_particles=1, lr_decay_factor=0.1, lr_decay_patience=4,
                   save_after=0)


def test_train_published_through_adapt_gives_the_old_first_epoch(tmp_path):
    """Same seeds, same first epoch: per-step losses, validation record, posterior and temperature
    of the old train_published path and of adapt (what train_published now calls) are equal."""
    small = {"n_train": 4, "n_val": 2, "size": 64, "epochs": 1, "batch_size": 2, "kl_beta": 1 / 256 ** 2}
    old = _old_train_published_first_epoch(tmp_path / "old.pth", {**ACS_WFC_VI, **small})
    new = cq.adapt("ACS-WFC", "ACS-WFC", tmp_path / "ACS-WFC-VI.pth", n_frames=4, size=64, epochs=1, device="cpu",
                   recipe={"n_val": 2, "batch_size": 2, "kl_beta": 1 / 256 ** 2, "n_novelty": 3,
                           "n_novelty_cal": 3}, progress=False)
    assert new.history["loss"] == old.history["loss"] and len(old.history["loss"]) == 2
    drop = ("seconds",)
    assert [{k: v for k, v in e.items() if k not in drop} for e in new.history["epochs"]] == \
        [{k: v for k, v in e.items() if k not in drop} for e in old.history["epochs"]]
    new_state, old_state = new.guide.state_dict(), old.guide.state_dict()
    assert new_state.keys() == old_state.keys()
    assert all(torch.equal(new_state[k], old_state[k]) for k in old_state)
    assert new.temperature == old.temperature


def _own_frames(folder, n, size=64, seed=0):
    """CR-free images (sky + Poisson noise + a few stars, e-) and darks [CR charge, CR mask] as .npy files."""
    rng = np.random.default_rng(seed)
    images, darks = folder / "images", folder / "darks"
    images.mkdir()
    darks.mkdir()
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        sky = rng.poisson(150.0, (size, size)).astype(np.float32)
        for _ in range(3):
            r, c = rng.uniform(5, size - 5, 2)
            sky += np.float32(2000.0) * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / 4.0).astype(np.float32)
        np.save(images / f"img{i:02d}.npy", sky)
        charge, mask = np.zeros((size, size), np.float32), np.zeros((size, size), np.float32)
        for _ in range(6):
            r, c = rng.integers(2, size - 8, 2)
            charge[r, c:c + rng.integers(2, 7)] = rng.uniform(500, 3000)
        mask[charge > 0] = 1.0
        np.save(darks / f"dark{i:02d}.npy", np.stack([charge, mask]))
    return images, darks


def test_adapt_on_own_images_and_darks_plus_simulated_frames_from_a_standardised_model(tmp_path):
    """deepCR's WFC3-UVIS (weight-norm, standardised input) adapted on both kinds of frames: the
    checkpoint carries the input transform, the card both data sets, and the model predicts."""
    pytest.importorskip("deepCR")
    images, darks = _own_frames(tmp_path, 4)
    result = cq.adapt("ACS-WFC", "WFC3-UVIS", tmp_path / "uvis.pth", images=images, darks=darks, n_frames=4,
                      epochs=1, recipe={**SMOKE, "dark_f_val": 0.5}, progress=False)
    model = cq.load(tmp_path / "uvis.pth")
    assert model.input_transform == {"kind": "standardise"} and model.model.norm == "none"
    card = model.card
    assert card["start"]["input_transform"] == {"kind": "standardise"}
    assert card["data"]["user"]["n_images"] == 4 and card["data"]["simulated"]["n_train"] == 4
    assert card["recipe"]["size"] == 64 and model.model.prior.to_dict()["source"] == "deepCR:WFC3-UVIS"
    assert model.novelty is not None and result.temperature == model.temperature
    assert "prior_shift" not in model.sections  # the user's frames: their CR prevalence is unknown
    image = np.load(images / "img00.npy") + np.load(darks / "dark00.npy")[0]
    pred = cq.predict(model, image, T=4)
    # the transform is applied to the whole frame: predicting the standardised frame without it is the same
    bare = cq.load(tmp_path / "uvis.pth")
    bare.input_transform = None
    z = (image - image.mean()) / image.std()
    np.testing.assert_allclose(pred.prob, cq.predict(bare, z, T=4).prob, atol=1e-6)


def test_own_images_only_need_two_validation_images(tmp_path):
    images, darks = _own_frames(tmp_path, 4)
    with pytest.raises(ValueError, match="validation part .* holds 1 image"):
        cq.adapt("ACS-WFC", "ACS-WFC", tmp_path / "own.pth", images=images, darks=darks, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["darks", "images"]
    result = cq.adapt("ACS-WFC", "ACS-WFC", tmp_path / "own.pth", images=images, darks=darks, epochs=1,
                      recipe={**SMOKE, "dark_f_val": 0.5}, progress=False)
    assert result.card["data"]["simulated"] is None and result.novelty is not None
    assert result.card["data"]["user"]["n_darks"] == 4 and len(result.card["validation"]["val_loss"]) == 1


def test_deepcr_decam_takes_adu_so_predict_divides_electrons_by_the_specs_gain():
    """deepCR's decam model takes ADU (DECam spec: deepcr_input_unit = "ADU", gain 4 e-/ADU):
    `predict` on electrons equals the deepCR facade (deepCR's semantics) on the frame in ADU."""
    pytest.importorskip("deepCR")
    model = cq.load("decam")
    assert model.input_transform == {"kind": "scale", "divide_by": 4.0}
    rng = np.random.default_rng(4)
    electrons = rng.normal(1000.0, 30.0, (64, 64)).astype(np.float32)
    electrons[10, 5:12] += 8000.0
    np.testing.assert_allclose(cq.predict(model, electrons).prob,
                               deepCR(mask="decam").clean(electrons / 4.0, binary=False), atol=1e-6)


def test_a_bayesian_start_model_gives_its_posterior_means():
    """`plain_net` of a Bayesian model is the net of its posterior means: the same probabilities as
    the Pyro model run with every weight site fixed at the guide's means."""
    from cosmiq_pyro.inference.adaptation import plain_net
    from cosmiq_pyro.models.bayesian import probs_given_weights
    from cosmiq_pyro.models.guides import guide_locs

    vi = cq.load("ACS-WFC-VI")
    net = plain_net(vi)
    x = torch.from_numpy(SimulatedDataset(1, size=64, seed=HELD_OUT_SEED).frame(0).image)[None, None]
    with torch.no_grad():
        expected = probs_given_weights(vi.model.eval(), x, guide_locs(vi.guide, vi.model.weight_sites))
        torch.testing.assert_close(net.eval()(x), expected, rtol=0, atol=1e-6)
