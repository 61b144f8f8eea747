"""The deepCR-style facade (`cosmiq_pyro.model.deepCR`) and median-mask inpainting."""
import warnings

import numpy as np
import pytest
import torch

from cosmiq_pyro import UNet2Sigmoid, UNet2SigmoidVI, fit_svi, save
from cosmiq_pyro.deepcr.inpaint import median_inpaint
from cosmiq_pyro.model import deepCR


def sky_with_crs(shape=(64, 64), seed=0):
    """Sky ~ 100 e- with noise, a few stars and bright CR streaks: no pixel is exactly 0."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 6.0, shape).astype(np.float32)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    for r, c in rng.integers(8, min(shape) - 8, (3, 2)):
        image += (3000 * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / 2.0)).astype(np.float32)
    for r, c in rng.integers(4, min(shape) - 12, (5, 2)):
        image[r, c:c + 6] += 2500.0
    return image


def binary_entropy(p):
    p = np.asarray(p, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    return np.nan_to_num(h)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A Bayesian and a deterministic checkpoint with hidden=4 (untrained but deterministic)."""
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    image = np.random.default_rng(1).normal(0, 1, (4, 16, 16)).astype(np.float32)
    vi = fit_svi(UNet2SigmoidVI(hidden=4, norm="none"), (image, image > 1, None), epochs=0,
                 init_scale=0.05, progress=False)
    det = UNet2Sigmoid(hidden=4, norm="none").eval()
    return {"vi": save(folder / "vi.pth", vi), "det": save(folder / "det.pth", det)}


# ---------------------------------------------------------------- inpainting


def test_inpaint_by_hand():
    image = np.arange(25, dtype=np.float32).reshape(5, 5) + 1  # 1..25
    mask = np.zeros((5, 5), bool)
    mask[2, 2] = True  # value 13; its 5x5 box is the whole image minus itself
    out = median_inpaint(image, mask)
    assert out[2, 2] == pytest.approx(np.median(np.delete(image.ravel(), 12)))  # 13.0
    mask[0, 0] = True  # corner: box rows 0-2, cols 0-2 minus the two masked pixels
    out = median_inpaint(image, mask)
    assert out[0, 0] == pytest.approx(np.median([2, 3, 6, 7, 8, 11, 12]))
    np.testing.assert_array_equal(out[~mask], image[~mask])


def test_inpaint_ignores_bad_neighbours_and_falls_back_to_clean_median():
    image = np.full((9, 9), 10.0, np.float32)
    image[4, 5] = 1000.0
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    ignore = np.zeros((9, 9), bool)
    ignore[4, 5] = True  # a hot pixel next to the CR must not leak into the fill
    image[4, 4] = 5000.0
    assert median_inpaint(image, mask, ignore=ignore)[4, 4] == 10.0
    # a 3x3 box with every pixel masked: the median of the clean pixels of the image
    mask[3:6, 3:6] = True
    image[0, 0] = 7.0  # clean pixels: 70 of value 10, one of 7 -> median 10
    out = median_inpaint(image, mask, size=3)
    assert out[4, 4] == 10.0


def test_inpaint_equals_deepcr_medmask():
    util = pytest.importorskip("deepCR.util")
    image = sky_with_crs((40, 52), seed=3)
    mask = np.random.default_rng(4).random(image.shape) < 0.06
    np.testing.assert_array_equal(median_inpaint(image, mask),
                                  util.medmask(image, mask.astype(np.float32)).astype(np.float32))


def test_inpaint_bad_input():
    with pytest.raises(ValueError, match="mask has shape"):
        median_inpaint(np.zeros((4, 4)), np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="odd int"):
        median_inpaint(np.zeros((4, 4)), np.zeros((4, 4), bool), size=4)
    with pytest.raises(ValueError, match="nothing to inpaint"):
        median_inpaint(np.zeros((4, 4)), np.ones((4, 4), bool))


# ---------------------------------------------------------------- deepCR's published model


def test_acs_wfc_clean_matches_deepcr_package():
    """Our facade on deepCR's weights gives deepCR's own probabilities, masks and inpainting."""
    pytest.importorskip("deepCR")
    from deepCR import deepCR as TheirDeepCR

    image = sky_with_crs((64, 64))  # a multiple of 4: neither implementation pads
    ours, theirs = deepCR(mask="ACS-WFC", device="CPU"), TheirDeepCR(mask="ACS-WFC", device="CPU")
    p_ours = ours.clean(image, binary=False)
    p_theirs = theirs.clean(image, binary=False)
    assert p_ours.dtype == np.float32 and p_ours.shape == image.shape
    np.testing.assert_allclose(p_ours, p_theirs, atol=2e-5)
    mask, inpainted = ours.clean(image, threshold=0.5, inpaint=True)
    their_mask, their_inpainted = theirs.clean(image, threshold=0.5, inpaint=True)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert mask.sum() > 0  # the streaks are found
    np.testing.assert_array_equal(mask, their_mask)
    np.testing.assert_allclose(inpainted, their_inpainted, rtol=1e-6)


def test_segment_and_patch_do_not_change_the_mask():
    pytest.importorskip("deepCR")
    image = sky_with_crs((72, 60), seed=5)
    model = deepCR("ACS-WFC")
    whole = model.clean(image, binary=False, segment=False)
    tiled = model.clean(image, binary=False, segment=True, patch=32)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


# ---------------------------------------------------------------- our checkpoints


def test_clean_vi_outputs(checkpoints):
    model = deepCR(mask=str(checkpoints["vi"]), device="CPU")
    assert model.bayesian and model.result.model.hidden == 4
    image = np.random.default_rng(2).normal(0, 1, (20, 28)).astype(np.float32)
    prob = model.clean_vi(image, T=6, seed=3)
    assert prob.dtype == np.float32 and prob.shape == image.shape
    prob2, entropy, epistemic = model.clean_vi(image, T=6, seed=3, return_entropy=True, return_epistemic=True)
    np.testing.assert_array_equal(prob, prob2)  # same seed, same draws
    np.testing.assert_allclose(entropy, binary_entropy(prob), atol=1e-5)
    assert np.all(epistemic >= 0) and np.all(epistemic <= entropy + 1e-6) and epistemic.max() > 0
    other = model.clean_vi(image, T=6, seed=4)
    assert not np.array_equal(prob, other)
    binary = model.clean_vi(image, T=6, seed=3, threshold=0.4)
    assert binary.dtype == np.uint8
    np.testing.assert_array_equal(binary, (prob > 0.4).astype(np.uint8))
    _, epi_only = model.clean_vi(image, T=6, seed=3, return_epistemic=True)
    np.testing.assert_array_equal(epi_only, epistemic)


def test_clean_on_a_bayesian_model_is_the_thresholded_posterior_mean(checkpoints):
    model = deepCR(mask=checkpoints["vi"])
    image = np.random.default_rng(6).normal(0, 1, (24, 24)).astype(np.float32)
    prob = model.clean_vi(image, T=5, seed=1)
    np.testing.assert_array_equal(model.clean(image, threshold=0.45, T=5, seed=1), prob > 0.45)


def test_clean_vi_on_deterministic_model_warns_once(checkpoints):
    model = deepCR(mask=checkpoints["det"])
    assert not model.bayesian
    image = np.random.default_rng(2).normal(0, 1, (16, 16)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prob, entropy, epistemic = model.clean_vi(image, T=16, return_entropy=True, return_epistemic=True)
        model.clean_vi(image, T=16)
    messages = [str(w.message) for w in caught if "epistemic" in str(w.message)]
    assert len(messages) == 1 and "deterministic" in messages[0]
    np.testing.assert_array_equal(epistemic, 0.0)
    np.testing.assert_allclose(entropy, binary_entropy(prob), atol=1e-5)
    np.testing.assert_array_equal(prob, model.clean(image, binary=False))


def test_gpu_falls_back_to_cpu_with_a_warning(checkpoints):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.warns(RuntimeWarning, match="no CUDA device"):
        model = deepCR(mask=checkpoints["det"], device="GPU")
    assert model.device.type == "cpu"


def test_bad_arguments(checkpoints, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        deepCR(mask=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="unknown deepCR mask model"):
        deepCR(mask="ACS-WFC-typo")
    with pytest.raises(ValueError, match="hidden=32 but the model"):
        deepCR(mask=checkpoints["det"], hidden=32)
    with pytest.raises(ValueError, match="unknown deepCR inpainting model"):
        deepCR(mask=checkpoints["det"], inpaint="ACS-WFC-typo")
    with pytest.raises(ValueError, match="device must be"):
        deepCR(mask=checkpoints["det"], device="TPU")
    not_a_checkpoint = tmp_path / "notes.pth"
    not_a_checkpoint.write_text("hello")
    with pytest.raises(ValueError, match="not a cosmiq_pyro checkpoint"):
        deepCR(mask=not_a_checkpoint)
    model = deepCR(mask=checkpoints["det"])
    with pytest.raises(ValueError, match="threshold"):
        model.clean(np.zeros((8, 8), np.float32), threshold=1.5)
    with pytest.raises(ValueError, match="2-D"):
        model.clean_vi(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="n_jobs"):
        model.clean(np.zeros((8, 8), np.float32), n_jobs=0)
    with pytest.raises(ValueError, match="patch"):
        model.clean(np.zeros((8, 8), np.float32), patch=0)
    with pytest.raises(ValueError, match="mask of its shape"):
        model.inpaint(np.zeros((8, 8), np.float32), np.zeros((8, 4)))


# ---------------------------------------------------------------- deepCR's clean keywords, n_jobs, inpainting networks


@pytest.fixture(scope="module")
def deepcr_pair():
    """Our facade and the deepCR package on deepCR's ACS-WFC mask and F606W 2-32 inpainting nets."""
    pytest.importorskip("deepCR")
    from deepCR import deepCR as TheirDeepCR

    name = "ACS-WFC-F606W-2-32"
    return (deepCR(mask="ACS-WFC", inpaint=name, device="CPU"),
            TheirDeepCR(mask="ACS-WFC", inpaint=name, device="CPU"))


def test_inpainting_network_matches_deepcr_package(deepcr_pair):
    ours, theirs = deepcr_pair
    image = sky_with_crs((64, 96), seed=7)  # multiples of 4: neither pads
    mask, inpainted = ours.clean(image, threshold=0.5, inpaint=True)
    their_mask, their_inpainted = theirs.clean(image, threshold=0.5, inpaint=True)
    np.testing.assert_array_equal(mask, their_mask)
    assert mask.sum() > 0
    assert inpainted.dtype == np.float32 and inpainted.shape == image.shape
    np.testing.assert_allclose(inpainted, their_inpainted, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(inpainted[mask == 0], image[mask == 0])  # only CR pixels change
    # the network's fill is not the median fill: the loaded network is what runs
    assert not np.allclose(inpainted, median_inpaint(image, mask.astype(bool)), atol=1e-2)
    # deepCR's inpaint(img0, mask) with a given mask
    given = np.zeros(image.shape, np.float32)
    given[20:23, 30:40] = 1
    np.testing.assert_allclose(ours.inpaint(image, given), theirs.inpaint(image, given), atol=1e-4, rtol=0)


def test_deeper_inpainting_network_matches_deepcr_architecture():
    """deepCR ships ACS-WFC-F606W-3-32 (a 3-level net) but cannot load it by name; we do, and it
    equals deepCR's own UNet3BatchNorm with those weights."""
    pytest.importorskip("deepCR")
    from deepCR.unet_batchnorm import UNet3BatchNorm, WrappedModel

    from cosmiq_pyro.deepcr.inpaint_net import InpaintUNet, inpaint_with_net
    from cosmiq_pyro.models.unet import deepcr_weights_file

    ours = InpaintUNet.from_deepcr("ACS-WFC-F606W-3-32")
    assert ours.depth == 3 and ours.hidden == 32
    theirs = WrappedModel(UNet3BatchNorm(2, 1, 32))
    theirs.load_state_dict(torch.load(deepcr_weights_file("ACS-WFC-F606W-3-32", kind="inpaint"), map_location="cpu",
                                      weights_only=True))
    theirs.eval()
    image = sky_with_crs((64, 80), seed=8)  # multiples of 8
    mask = np.zeros(image.shape, np.float32)
    mask[10:14, 20:30] = mask[40, 5:60] = 1
    x, m = torch.from_numpy(image)[None, None], torch.from_numpy(mask)[None, None]
    with torch.no_grad():
        expected = (theirs(torch.cat([x * (1 - m), m], 1)) * m + x * (1 - m))[0, 0].numpy()
    np.testing.assert_allclose(inpaint_with_net(ours, image, mask), expected, atol=1e-4, rtol=0)
    # tiles and threads do not change the fill (the margin covers the receptive field)
    np.testing.assert_allclose(inpaint_with_net(ours, image, mask, tile=24, n_jobs=2), expected, atol=1e-4, rtol=0)


def test_inpainting_weights_are_read_with_weights_only(monkeypatch):
    pytest.importorskip("deepCR")
    from cosmiq_pyro.deepcr.inpaint_net import InpaintUNet

    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    InpaintUNet.from_deepcr("ACS-WFC-F606W-2-32")
    assert calls == [True]


def test_clean_takes_deepcrs_positional_order_and_return_shapes(deepcr_pair):
    """deepCR 0.3.1: clean(img0, threshold, inpaint, binary, segment, patch, n_jobs)."""
    ours, theirs = deepcr_pair
    image = sky_with_crs((36, 44), seed=9)
    out = ours.clean(image, 0.5, True, False)  # threshold, inpaint, binary
    their_out = theirs.clean(image, 0.5, True, False)
    assert isinstance(out, tuple) and len(out) == len(their_out) == 2
    assert out[0].shape == out[1].shape == their_out[0].shape == image.shape
    assert out[0].dtype == np.float32  # binary=False: probabilities
    mask = ours.clean(image, 0.5, False, True, True, 16, 2)
    assert mask.shape == image.shape and mask.dtype == np.uint8


def test_n_jobs_gives_the_same_maps_as_one_job(deepcr_pair, checkpoints):
    ours, _ = deepcr_pair
    image = sky_with_crs((72, 60), seed=5)
    one = ours.clean(image, binary=False, patch=32, n_jobs=1)
    for n_jobs in (2, -1):
        np.testing.assert_array_equal(ours.clean(image, binary=False, patch=32, n_jobs=n_jobs), one)
    np.testing.assert_allclose(one, ours.clean(image, binary=False, segment=False), atol=1e-5)
    mask, filled = ours.clean(image, inpaint=True, patch=32, n_jobs=1)
    mask2, filled2 = ours.clean(image, inpaint=True, patch=32, n_jobs=2)
    np.testing.assert_array_equal(mask, mask2)
    np.testing.assert_array_equal(filled, filled2)
    # the Bayesian model: every block sees the same posterior draws
    vi = deepCR(mask=checkpoints["vi"])
    noise = np.random.default_rng(3).normal(0, 1, (40, 48)).astype(np.float32)
    p1 = vi.clean(noise, binary=False, patch=16, n_jobs=1, T=4, seed=2)
    np.testing.assert_array_equal(vi.clean(noise, binary=False, patch=16, n_jobs=2, T=4, seed=2), p1)
    np.testing.assert_allclose(p1, vi.clean_vi(noise, T=4, seed=2), atol=1e-5)


def test_deepcr_parallel_test_as_written(deepcr_pair):
    """deepCR's own test_deepCR_parallel / test_seg shapes: a 299x299 and a 300x500 frame."""
    ours, _ = deepcr_pair
    out = ours.clean(np.ones((299, 299)), n_jobs=-1, inpaint=True)
    assert (out[0].shape, out[1].shape) == ((299, 299), (299, 299))
    out = ours.clean(np.ones((300, 500)), segment=True, inpaint=True, patch=256)
    assert (out[0].shape, out[1].shape) == ((300, 500), (300, 500))


def test_input_scale_of_example_model_matches_deepcr_package():
    """deepCR's 'example_model' divides its input by 100 (mask_dict's scale) and multiplies back."""
    pytest.importorskip("deepCR")
    from deepCR import deepCR as TheirDeepCR

    ours, theirs = deepCR(mask="example_model"), TheirDeepCR(mask="example_model")
    assert ours.scale == 100.0
    image = 30 * sky_with_crs((48, 48), seed=10)
    np.testing.assert_allclose(ours.clean(image, binary=False), theirs.clean(image, binary=False, segment=False),
                               atol=2e-5)
    mask, filled = ours.clean(image, inpaint=True)
    their_mask, their_filled = theirs.clean(image, inpaint=True)
    np.testing.assert_array_equal(mask, their_mask)
    np.testing.assert_allclose(filled, their_filled, rtol=1e-6)


def test_clean_vi_inpaints(checkpoints):
    model = deepCR(mask=checkpoints["vi"])
    image = sky_with_crs((32, 32), seed=11) / 1000.0
    prob = model.clean_vi(image, T=4, seed=1)
    threshold = float(np.quantile(prob, 0.8))  # an untrained net: mask its top 20 % of pixels
    mask, entropy, filled = model.clean_vi(image, T=4, seed=1, threshold=threshold, return_entropy=True,
                                           inpaint=True)
    np.testing.assert_array_equal(mask, prob > threshold)
    assert 0 < mask.sum() < mask.size
    np.testing.assert_array_equal(filled, median_inpaint(image, mask.astype(bool)))
    np.testing.assert_array_equal(filled, model.inpaint(image, mask))


def test_weight_normalised_wfc3_uvis_matches_deepcr_package():
    """deepCR's WFC3-UVIS mask model: weight-norm convolutions folded into plain ones, and the
    frame standardised (deepCR's norm) before the net; the inpainted image comes back in e-."""
    pytest.importorskip("deepCR")
    from deepCR import deepCR as TheirDeepCR

    ours, theirs = deepCR(mask="WFC3-UVIS", inpaint="ACS-WFC-F606W-2-32"), \
        TheirDeepCR(mask="WFC3-UVIS", inpaint="ACS-WFC-F606W-2-32")
    assert ours.standardise and ours.result.model.norm == "none"
    image = sky_with_crs((64, 96), seed=12)
    np.testing.assert_allclose(ours.clean(image, binary=False), theirs.clean(image, binary=False, segment=False),
                               atol=2e-5)
    mask, filled = ours.clean(image, threshold=0.1, inpaint=True)  # deepCR's WFC3 threshold range
    their_mask, their_filled = theirs.clean(image, threshold=0.1, inpaint=True)
    np.testing.assert_array_equal(mask, their_mask)
    assert mask.sum() > 0
    np.testing.assert_allclose(filled, their_filled, atol=1e-3, rtol=1e-6)


def test_a_model_trained_by_deepcr_itself_loads(tmp_path):
    """deepCR's tutorial: deepCR(mask='save_directory/my_model_epoch50.pth', hidden=...) on a file
    deepCR's own train wrote (a WrappedModel(UNet2Sigmoid) weight-norm state dict)."""
    pytest.importorskip("deepCR")
    from deepCR import deepCR as TheirDeepCR
    from deepCR.unet import UNet2Sigmoid as TheirUNet, WrappedModel

    torch.manual_seed(5)
    path = tmp_path / "2026-01-01_mine_epoch3.pth"
    torch.save(WrappedModel(TheirUNet(1, 1, 8)).state_dict(), path)
    ours, theirs = deepCR(mask=str(path), hidden=8), TheirDeepCR(mask=str(path), hidden=8)
    assert ours.result.model.hidden == 8 and not ours.standardise
    image = sky_with_crs((40, 48), seed=13) / 100.0
    np.testing.assert_allclose(ours.clean(image, binary=False), theirs.clean(image, binary=False, segment=False),
                               atol=2e-5)
    assert deepCR(mask=str(path)).result.model.hidden == 8  # read from the weights (deepCR needs hidden=8)
    with pytest.raises(ValueError, match="hidden=32 but the model"):
        deepCR(mask=str(path), hidden=32)
