"""Peers behind one interface: deepCR's own output, astroscrappy's own masks, our models."""
import math

import numpy as np
import pytest

from cosmiq_pyro import UNet2Sigmoid, UNet2SigmoidVI, fit_svi, predict
from cosmiq_pyro.evaluation.metrics import binary_entropy
from cosmiq_pyro.evaluation.peers import DeepCRPeer, LACosmicPeer, ModelPredictor
from cosmiq_pyro.data.simulate import simulate_frame


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def frame():
    """A 64x64 globular-cluster frame: stars, CRs, hot pixels and bad columns in ignore."""
    return simulate_frame(64, "GC", "F606W", 600.0, seed=12345)


def test_binary_entropy_by_hand():
    p = np.array([0.0, 0.5, 1.0, 0.1])
    expected = [0.0, math.log(2), 0.0, -(0.1 * math.log(0.1) + 0.9 * math.log(0.9))]
    np.testing.assert_allclose(binary_entropy(p), expected, rtol=1e-12)
    assert binary_entropy(p).dtype == np.float64 and binary_entropy(0.5).shape == ()


def test_deepcr_peer_is_deepcrs_own_clean(frame):
    deepcr = pytest.importorskip("deepCR")
    pred = DeepCRPeer().predict(frame.image, frame.ignore)
    expected = deepcr.deepCR(mask="ACS-WFC", device="CPU").clean(frame.image, binary=False, inpaint=False)
    assert pred.prob.shape == frame.image.shape and pred.prob.dtype == np.float32
    np.testing.assert_allclose(pred.prob, expected, atol=1e-7)
    assert pred.is_probability and pred.epistemic is None and pred.T == 1
    np.testing.assert_allclose(pred.entropy, binary_entropy(expected), atol=1e-6)
    # the same weights in our own net, fed the same electrons, give the same probabilities
    ours = predict(UNet2Sigmoid.from_deepcr("ACS-WFC"), frame.image)
    np.testing.assert_allclose(pred.prob, ours.prob, atol=1e-5)
    assert (pred.prob[frame.mask] > 0.5).mean() > 0.5  # a real detector: finds most CR pixels


def test_deepcr_peer_replaces_non_finite_ignored_pixels(frame):
    pytest.importorskip("deepCR")
    image = frame.image.copy()
    ignore = frame.ignore.copy()
    image[3, 4], ignore[3, 4] = np.nan, True
    prob = DeepCRPeer().predict(image, ignore).prob
    assert np.isfinite(prob).all()
    with pytest.raises(ValueError, match="non-finite"):
        DeepCRPeer().predict(image)


def test_lacosmic_score_reproduces_astroscrappy_masks(frame):
    import astroscrappy

    grid = (3.0, 6.0, 12.0, 48.0)
    peer = LACosmicPeer(sigclips=grid)
    score = peer.sigclip_map(frame.image, frame.ignore, frame.meta)
    masks = {}
    for s in grid:  # the settings the peer must pass: electrons, the frame's read noise and full well
        masks[s], _ = astroscrappy.detect_cosmics(
            frame.image, inmask=frame.ignore, sigclip=s, sigfrac=0.3, objlim=5.0, gain=1.0,
            readnoise=frame.meta["read_noise_e"], satlevel=frame.meta["full_well_e"], niter=4,
            sepmed=True, cleantype="meanmask", fsmode="median")
    np.testing.assert_array_equal(score >= grid[-1], masks[grid[-1]])  # the strictest: exactly
    for k, s in enumerate(grid):
        union = np.logical_or.reduce([masks[t] for t in grid[k:]])
        np.testing.assert_array_equal(score >= s, union)  # flagged at s or any stricter sigclip
        assert np.all(score[masks[s]] >= s)
    assert set(np.unique(score)) <= {0.0, *grid}
    assert masks[grid[0]].sum() > masks[grid[-1]].sum() > 0  # the sweep does trace a curve
    pred = peer.predict(frame.image, frame.ignore, frame.meta)
    np.testing.assert_allclose(pred.prob, score / grid[-1])
    assert not pred.is_probability and pred.entropy is None and pred.epistemic is None


def test_lacosmic_flags_an_isolated_hit_at_every_sigclip():
    rng = np.random.default_rng(0)
    image = rng.normal(200.0, math.sqrt(200.0 + 25.0), (48, 48)).astype(np.float32)  # sky 200 e-, RN 5 e-
    image[20, 30] += 5000.0  # one-pixel CR, ~330 sigma
    grid = (2.0, 5.0, 10.0, 20.0)
    score = LACosmicPeer(sigclips=grid, readnoise_e=5.0).sigclip_map(image)
    assert score[20, 30] == 20.0
    far = np.ones(image.shape, bool)
    far[15:26, 25:36] = False
    assert not np.any(score[far] >= 5.0)  # a 5-sigma cut flags no pure noise in 2000 pixels
    assert 0.005 < np.mean(score[far] > 0) < 0.1  # a 2-sigma cut flags a few % (Gaussian tail 2.3 %)


def test_lacosmic_needs_the_read_noise(frame):
    peer = LACosmicPeer(sigclips=(5.0,))
    with pytest.raises(ValueError, match="read_noise_e"):
        peer.predict(frame.image, frame.ignore, meta={"field": "GC"})
    settings = LACosmicPeer(readnoise_e=4.0, satlevel_e=5e4).detector_settings(frame.meta)
    assert settings["readnoise"] == 4.0 and settings["satlevel"] == 5e4 and settings["gain"] == 1.0
    assert LACosmicPeer().detector_settings({"read_noise_e": 4.5})["satlevel"] == math.inf
    with pytest.raises(ValueError, match="sigclips"):
        LACosmicPeer(sigclips=())
    with pytest.raises(ValueError, match="objlim"):
        LACosmicPeer(objlim=-1)


def test_model_predictor_wraps_predict():
    image = np.random.default_rng(1).normal(0, 1, (20, 20)).astype(np.float32)
    net = UNet2Sigmoid(hidden=4, norm="none").eval()
    det = ModelPredictor(net).predict(image)
    np.testing.assert_array_equal(det.prob, predict(net, image).prob)
    assert det.T == 1 and det.epistemic is None and det.entropy is not None

    fit = fit_svi(UNet2SigmoidVI(hidden=4, norm="none"), (image[None], image[None] > 1, None), epochs=0,
                  init_scale=0.05, progress=False)
    vi = ModelPredictor(fit, T=3).predict(image, seed=4)
    ref = predict(fit, image, T=3, seed=4)
    np.testing.assert_array_equal(vi.prob, ref.prob)
    np.testing.assert_array_equal(vi.epistemic, ref.epistemic)
    assert vi.T == 3
    with pytest.raises(ValueError, match="guide"):
        ModelPredictor(UNet2SigmoidVI(hidden=4))
    with pytest.raises(ValueError, match="T must"):
        ModelPredictor(net, T=0)


@pytest.mark.parametrize("name, to_net_input", [
    ("decam", lambda e: e / 4.0),                              # deepCR's decam takes DECam ADU (gain 4)
    ("WFC3-UVIS", lambda e: (e - e.mean()) / e.std()),         # deepCR's WFC3-UVIS: standardised frames
])
def test_model_predictor_applies_the_input_transform(frame, name, to_net_input):
    """deepCR's decam and WFC3-UVIS weights, through the peer interface, see the net's own units:
    the prediction equals deepCR's own clean() on the frame converted by hand."""
    deepcr = pytest.importorskip("deepCR")
    import cosmiq_pyro as cq

    image = frame.image
    ours = ModelPredictor(cq.load(name)).predict(image).prob
    theirs = deepcr.deepCR(mask=name).clean(to_net_input(image.astype(np.float64)).astype(np.float32), binary=False)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_model_predictor_moments_use_the_models_own_section(frame):
    """The moment pass behind the peer interface uses the checkpoint's fitted variance scale,
    as `predict` does on the FitResult (and unlike a pass with the default settings)."""
    import cosmiq_pyro as cq

    vi = cq.load("ACS-WFC-VI")
    assert vi.sections["moments"]["variance_scale"] != 1.0
    ours = ModelPredictor(vi, method="moments").predict(frame.image)
    ref = predict(vi, frame.image, method="moments", novelty=False)
    np.testing.assert_array_equal(ours.prob, ref.prob)
    np.testing.assert_array_equal(ours.epistemic, ref.epistemic)
    plain = predict(vi.model, frame.image, guide=vi.guide, method="moments", temperature=vi.temperature)
    assert np.abs(plain.epistemic - ref.epistemic).max() > 0
