"""Refitting a checkpoint's novelty model (`inference.novelty_refit`), novelty fits that leave
ignored pixels out, and the false-alarm statistics the threshold is chosen with
(`evaluation.false_alarms`)."""
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import beta

import cosmiq_pyro as cq
from cosmiq_pyro.evaluation.false_alarms import clopper_pearson, false_alarms, threshold_design
from cosmiq_pyro.inference import novelty as nv
from cosmiq_pyro.inference.adaptation import ACS_WFC_VI, NOVELTY_KEYS, resolve_recipe
from cosmiq_pyro.inference.novelty_refit import checkpoint_recipe, refit_novelty
from cosmiq_pyro.io.checkpoint import read_payload, update_sections, weights_sha256

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- the exact binomial interval and the threshold design -------------------------------------------

def test_clopper_pearson_by_hand():
    # k = 0: the upper end solves (1 - p)^n = alpha/2; k = n: the lower end solves p^n = alpha/2
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 1 - 0.025 ** 0.1), abs=1e-9)
    assert clopper_pearson(10, 10) == pytest.approx((0.025 ** 0.1, 1.0), abs=1e-9)
    # in between: the Beta quantiles of the definition
    assert clopper_pearson(3, 20) == pytest.approx((beta.ppf(0.025, 3, 18), beta.ppf(0.975, 4, 17)), rel=1e-7)
    # the issue's bound: 23 of 500 keeps the upper end below 7 %, 25 of 500 does not
    assert clopper_pearson(23, 500)[1] < 0.07 < clopper_pearson(25, 500)[1]
    for k, n in ((-1, 5), (6, 5), (1, 0)):
        with pytest.raises(ValueError, match="must be an int"):
            clopper_pearson(k, n)


def test_false_alarms_count_scores_strictly_above_the_threshold():
    fa = false_alarms([0.0, 1.0, 2.0, 3.0], 2.0)
    assert (fa.k, fa.n, fa.rate) == (1, 4, 0.25)
    assert (fa.low, fa.high) == pytest.approx(clopper_pearson(1, 4))
    with pytest.raises(ValueError, match="finite"):
        false_alarms([0.0, np.nan], 1.0)


def test_threshold_design_mean_rate_is_the_order_statistic_formula():
    # E[1 - F(t)] = (q (n - 1) + 1) / (n + 1) for numpy.quantile's interpolation
    for n, q in ((40, 0.05), (100, 0.025)):
        design = threshold_design(n, q, draws=20_000, seed=1)
        sd = np.sqrt(q * (1 - q) / n) / np.sqrt(20_000)  # Monte Carlo error of the mean
        assert design["mean_rate"] == pytest.approx((q * (n - 1) + 1) / (n + 1), abs=5 * sd)
    # a larger calibration set and a lower quantile can only make the 7 % check safer
    assert threshold_design(768, 0.025)["p_fail"] < threshold_design(192, 0.05)["p_fail"]


# -- fits leave ignored pixels out ------------------------------------------------------------------

def _flat(seed, shape=(128, 128), level=200.0):
    rng = np.random.default_rng(seed)
    return (rng.poisson(level, shape) + rng.normal(0.0, nv.READ_NOISE_REF_E, shape)).astype(np.float32)


def test_fit_leaves_out_blocks_that_are_mostly_ignored():
    """One block of every fit frame is mostly ignored, its features absurd and its ignored pixels
    noise-free: the fit must equal one on the other blocks alone."""
    rng = np.random.default_rng(0)
    fit, clean = [], []
    for i in range(6):
        means = torch.from_numpy(rng.gamma(2.0, 1.0, (8, 2, 2)))
        image = _flat(i)
        ignore = np.zeros(image.shape, bool)
        ignore[:40, :40] = True  # 1600 of the block's 4096 px ...
        ignore[40:64, :64] = True  # ... + 1536 more: 76 % of block (0, 0)
        poisoned = means.clone()
        poisoned[:, 0, 0] = 1e6
        bad = image.copy()
        bad[ignore] = 500.0  # noise-free: a deficit that would dominate the noise reference
        fit.append((poisoned, bad, ignore))
        clean.append((means, image, ignore))
    cal = [(torch.from_numpy(rng.gamma(2.0, 1.0, (8, 2, 2))), _flat(10 + i)) for i in range(6)]
    model = nv.fit_novelty_model(fit, cal)
    kept = torch.cat([nv.features_from_block_means(m).reshape(-1, 8)[1:] for m, _, _ in clean])
    assert torch.allclose(model.density.mean[0], kept.mean(0))
    r = [nv.noise_excess(img, ignore=ign).ravel()[1:] for _, img, ign in clean]
    assert model.noise_block[0] == pytest.approx(np.concatenate(r).mean(), rel=1e-12)
    assert model.noise_frame[0] == pytest.approx(np.mean([np.median(x) for x in r]), rel=1e-12)
    with pytest.raises(ValueError, match="block_means, image"):
        nv.fit_novelty_model([(1,)] * 2, cal)


# -- the level component ---------------------------------------------------------------------------

def test_block_level_by_hand():
    image = np.full((128, 192), 400.0, np.float32)
    image[:64, 64:128] = -50.0  # a sky-subtracted block: floored at the read-noise term
    image[64:, 128:] = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)  # median over every 2nd row
    level = nv.block_level(image, 64, read_noise_e=3.0)
    rows = np.arange(64 * 64, dtype=np.float64).reshape(64, 64)[::2]
    expected = np.log(np.array([[400.0, 0.0, 400.0], [400.0, 400.0, np.median(rows)]]) + 9.0)
    np.testing.assert_allclose(level, expected, rtol=1e-6)
    ignore = np.zeros(image.shape, bool)
    ignore[:64, :64] = True
    assert np.isnan(nv.block_level(image, 64, 3.0, ignore=ignore)[0, 0])


def test_level_component_flags_a_frame_far_brighter_than_the_training_frames():
    rng = np.random.default_rng(3)
    feats = lambda: torch.from_numpy(rng.gamma(2.0, 1.0, (8, 2, 2)))  # noqa: E731 (features alike)
    fit = [(feats(), _flat(i, level=200.0 * 1.5 ** (i % 5))) for i in range(10)]  # 200-1000 e-
    cal = [(feats(), _flat(20 + i, level=200.0 * 1.5 ** (i % 5))) for i in range(20)]
    model = nv.fit_novelty_model(fit, cal)
    assert model.components == ("features", "noise", "level")
    levels = [np.median(nv.block_level(img)) for _, img in fit]
    assert model.level_frame == pytest.approx((np.mean(levels), np.std(levels, ddof=1)), rel=1e-9)
    bright = _flat(99, level=50_000.0)  # a ground-based sky: noise and features as in training
    score, parts, block_map = model.score(feats(), bright)
    assert parts["level"] > 5 and score == max(parts.values()) > model.threshold
    assert block_map.min() > 1  # every block is far from the training levels
    # a novelty model stored before the level component is scored with features and noise only
    old = {k: v for k, v in model.state_dict().items() if k not in ("level_block", "level_frame")}
    old["frame_ref"] = {k: old["frame_ref"][k] for k in ("features", "noise")}
    old["block_ref"] = {k: old["block_ref"][k] for k in ("features", "noise")}
    again = nv.NoveltyModel.from_state_dict(old)
    assert again.components == ("features", "noise") and "level" not in again.score(feats(), bright)[1]


# -- refit_novelty ----------------------------------------------------------------------------------

def _digest(payload):
    """The weights' digest computed here (net_state then guide_state, keys sorted)."""
    h = hashlib.sha256()
    for part in ("net_state", "guide_state"):
        for key in sorted(payload[part] or {}):
            h.update(f"{part}/{key}".encode())
            h.update(payload[part][key].contiguous().numpy().tobytes())
    return h.hexdigest()


SMALL = {"n_novelty": 3, "n_novelty_cal": 4}


@pytest.fixture()
def carded(models, tmp_path):
    """The tiny VI model with a DECam model card (64 px frames), as adapt would have written it."""
    from cosmiq_pyro.data.camera_sets import resolve_camera
    camera = resolve_camera("DECam")
    recipe = resolve_recipe(camera, "decam", Path("toy.pth"), {"novelty_false_alarm": 0.05}, size=64)
    card = {"name": "toy", "instrument": camera.describe(), "recipe": recipe,
            "data": {"user": None, "novelty": {"n_fit": 192}}, "validation": {"novelty_threshold": 1.0}}
    path = tmp_path / "toy.pth"
    update_sections(models["vi"], {"card": card}, out=path)
    return path


def test_refit_rewrites_the_novelty_section_and_card_and_keeps_the_weights_bit_for_bit(carded, tmp_path):
    before = read_payload(carded)
    out = tmp_path / "refitted" / "toy.pth"
    report = refit_novelty(carded, out, novelty=SMALL)
    after = read_payload(out)
    assert _digest(after) == _digest(before) == report["weights_sha256"] == weights_sha256(after)
    for part in ("net_state", "guide_state"):
        assert all(torch.equal(after[part][k], before[part][k]) for k in before[part])
    assert after["temperature"] == before["temperature"] and after["history"] == before["history"]
    novelty = after["sections"]["novelty"]
    assert report["threshold"] == novelty["threshold"] and report["camera"] == "DECam"
    assert novelty["read_noise_e"] == 7.5  # DECam's spec: the middle of 6-9 e-
    card = after["sections"]["card"]
    assert card["recipe"]["novelty_false_alarm"] == ACS_WFC_VI["novelty_false_alarm"]  # the package's now
    assert card["recipe"]["n_novelty_cal"] == 4 and card["recipe"]["size"] == 64
    assert card["data"]["novelty"]["n_cal"] == 4 and card["data"]["novelty"]["ignored_pixels"] == "left out"
    assert card["validation"]["novelty_threshold"] == novelty["threshold"]
    # the model refitted equals what adapt's own novelty step gives for that recipe
    assert cq.load(out).novelty["threshold"] == novelty["threshold"]
    assert read_payload(carded)["sections"]["card"]["recipe"]["novelty_false_alarm"] == 0.05  # input untouched


def test_refit_that_would_change_the_weights_replaces_nothing(carded, monkeypatch):
    import cosmiq_pyro.inference.novelty_refit as refit
    import cosmiq_pyro.io.checkpoint as checkpoint

    def corrupting(path, sections, out=None):
        written = update_sections(path, sections, out=out)
        payload = torch.load(written, weights_only=True)
        key = sorted(payload["net_state"])[0]
        payload["net_state"][key] = payload["net_state"][key] + 1.0
        torch.save(payload, written)
        return written

    original = carded.read_bytes()
    monkeypatch.setattr(checkpoint, "update_sections", corrupting)  # what replace_sections writes with
    with pytest.raises(RuntimeError, match="changed its weights"):
        refit.refit_novelty(carded, novelty=SMALL)
    assert carded.read_bytes() == original
    assert [p.name for p in carded.parent.iterdir() if p.name.startswith(".")] == []


def test_checkpoint_recipe_errors(models, carded):
    bare = cq.load(models["det"])
    with pytest.raises(ValueError, match="instrument: the model has no model card"):
        checkpoint_recipe(bare)
    camera, full = checkpoint_recipe(bare, "ACS-WFC")  # no card: the package recipe
    assert camera.name == "ACS-WFC" and full["filters"] == ACS_WFC_VI["filters"] and full["size"] == 256
    with pytest.raises(ValueError, match="the model card says 'DECam'"):
        checkpoint_recipe(cq.load(carded), "ACS-WFC")
    with pytest.raises(ValueError, match="unknown key"):
        checkpoint_recipe(cq.load(carded), novelty={"epochs": 3})


@pytest.mark.parametrize("name", ["ACS-WFC-VI", "WFC3-UVIS-VI", "DECam-VI"])
def test_shipped_models_record_their_refit_and_keep_their_digest(name):
    import json
    from cosmiq_pyro.models.registry import PUBLISHED_DIR
    meta = json.loads((PUBLISHED_DIR / f"{name}.json").read_text())
    payload = read_payload(PUBLISHED_DIR / f"{name}.pth")
    # refitted after training (novelty_refit), or fitted by adapt with today's novelty keys
    refit = meta.get("novelty_refit") or {**{k: meta["recipe"][k] for k in NOVELTY_KEYS},
                                          "weights_sha256": meta["weights_sha256"],
                                          "threshold": meta["validation"]["novelty_threshold"]}
    assert _digest(payload) == meta["weights_sha256"] == refit["weights_sha256"]
    novelty = payload["sections"]["novelty"]
    assert novelty["threshold"] == refit["threshold"] and "level" in novelty["frame_ref"]
    assert {k: refit[k] for k in ("novelty_false_alarm", "n_novelty_cal", "novelty_cr_rate_multiplier")} == \
        {k: ACS_WFC_VI[k] for k in ("novelty_false_alarm", "n_novelty_cal", "novelty_cr_rate_multiplier")}
    card = payload["sections"].get("card")
    if card is not None:  # adapt's models: the card (and the JSON copying it) say how it was refitted
        assert card["validation"]["novelty_threshold"] == novelty["threshold"] == meta["validation"]["novelty_threshold"]
        assert card["data"]["novelty"]["n_cal"] == ACS_WFC_VI["n_novelty_cal"]


def test_gmos_is_read_in_electrons_as_stored():
    """astroscrappy's gmos.fits is reduced by DRAGONS: SCI in electrons, VAR = SCI + 4.24^2."""
    pytest.importorskip("astroscrappy")
    pytest.importorskip("ccdproc")
    import astroscrappy
    from astropy.io import fits
    from cosmiq_pyro.evaluation.shifts import real_ground_frames
    path = Path(astroscrappy.__file__).parent / "tests" / "data" / "gmos.fits"
    with fits.open(path) as hdul:
        sci, var = hdul["SCI"].data.astype(np.float64), hdul["VAR"].data.astype(np.float64)
    sky = (sci > 20) & (sci < 200)
    slope = np.polyfit(sci[sky], var[sky], 1)[0]
    assert slope == pytest.approx(1.0, abs=0.02)  # electrons: Poisson variance = counts
    np.testing.assert_array_equal(real_ground_frames()["gmos"], sci.astype(np.float32))
