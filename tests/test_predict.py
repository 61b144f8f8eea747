"""Monte Carlo prediction: shapes, the entropy decomposition, tiling, seeds and input checks."""
import math

import numpy as np
import pytest
import torch

from cosmiq_pyro import UNet2Sigmoid, UNet2SigmoidVI, fit_svi, predict
from cosmiq_pyro.models.bayesian import draw_weights
from cosmiq_pyro.utils.torchtools import binary_entropy


@pytest.fixture(scope="module")
def vi_fit():
    """An untrained VI model with a wide posterior, so draws differ visibly.

    No normalisation layers: tiles must be independent of each other (group norm is not local:
    its statistics span the whole input, so tiled and untiled maps differ with it).
    """
    image = sky((4, 16, 16))
    mask = np.zeros_like(image, dtype=bool)
    return fit_svi(UNet2SigmoidVI(hidden=4, norm="none"), (image, mask, None), epochs=0, init_scale=0.05,
                   progress=False)


def sky(shape, seed=1):
    """Unit-variance noise: keeps an untrained net's logits O(1), so probabilities are not saturated."""
    return np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)


def test_binary_entropy_by_hand():
    p = torch.tensor([0.0, 0.5, 1.0, 0.1], dtype=torch.float64)
    expected = [0.0, math.log(2), 0.0, -(0.1 * math.log(0.1) + 0.9 * math.log(0.9))]
    torch.testing.assert_close(binary_entropy(p), torch.tensor(expected, dtype=torch.float64))


def test_odd_sized_image_gives_maps_of_its_size(vi_fit):
    pred = predict(vi_fit, sky((301, 517)), T=2)
    for name in ("prob", "entropy", "aleatoric", "epistemic"):
        arr = getattr(pred, name)
        assert arr.shape == (301, 517) and arr.dtype == np.float32, name
    assert pred.T == 2


def test_entropy_decomposition(vi_fit):
    image = sky((40, 44))
    image[10, 5:20] += 5
    pred = predict(vi_fit, image, T=8)
    np.testing.assert_allclose(pred.entropy, pred.aleatoric + pred.epistemic, atol=1e-6)
    assert np.all(pred.epistemic >= 0)
    assert np.all(pred.entropy <= math.log(2) + 1e-6)
    assert pred.epistemic.max() > 1e-4  # a wide posterior disagrees somewhere
    np.testing.assert_allclose(pred.entropy, binary_entropy(torch.from_numpy(pred.prob).double()).numpy(),
                               atol=1e-6)


def test_mc_mean_equals_mean_over_plain_nets_with_the_drawn_weights(vi_fit):
    """prob / aleatoric are the means over T draws of a *plain* UNet2Sigmoid loaded with each draw."""
    image = sky((16, 24))
    pred = predict(vi_fit, image, T=6, seed=11)
    torch.manual_seed(11)
    draws = draw_weights(vi_fit.model, vi_fit.guide, 6)
    plain = UNet2Sigmoid(hidden=4, norm="none").eval()
    per_draw = []
    for t in range(6):
        plain.load_state_dict({site: w[t] for site, w in draws.items()})
        with torch.no_grad():
            per_draw.append(plain(torch.from_numpy(image)[None, None])[0, 0].double())
    per_draw = torch.stack(per_draw)
    np.testing.assert_allclose(pred.prob, per_draw.mean(0).numpy(), atol=1e-6)
    np.testing.assert_allclose(pred.aleatoric, binary_entropy(per_draw).mean(0).numpy(), atol=1e-6)


def test_seeded_draws_repeat_and_leave_the_global_rng_alone(vi_fit):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = draw_weights(vi_fit.model, vi_fit.guide, 3, seed=7)
    assert torch.equal(torch.rand(3), expected_next)  # the global stream did not move
    b = draw_weights(vi_fit.model, vi_fit.guide, 3, seed=7)
    c = draw_weights(vi_fit.model, vi_fit.guide, 3, seed=8)
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["head.weight"], c["head.weight"])
    torch.manual_seed(7)
    unseeded = draw_weights(vi_fit.model, vi_fit.guide, 3)  # the global stream, seeded by hand
    assert all(torch.equal(a[k], unseeded[k]) for k in a)


def test_weight_draws_follow_the_guide(vi_fit):
    """Draws have the guide's means and standard deviations (500 draws: 5-sigma bounds)."""
    guide = vi_fit.guide
    draws = draw_weights(vi_fit.model, guide, 500)
    loc, scale = guide._get_loc_and_scale("inc.conv1.weight")
    w = draws["inc.conv1.weight"]  # (500, 4, 1, 3, 3)
    assert w.shape == (500,) + tuple(loc.shape)
    assert torch.all((w.mean(0) - loc).abs() < 5 * scale / 500 ** 0.5)
    assert torch.all((w.std(0) / scale - 1).abs() < 0.25)


def test_seeds(vi_fit):
    image = sky((24, 24))
    a, b = predict(vi_fit, image, T=3, seed=1), predict(vi_fit, image, T=3, seed=1)
    c = predict(vi_fit, image, T=3, seed=2)
    np.testing.assert_array_equal(a.prob, b.prob)
    assert not np.array_equal(a.prob, c.prob)


def test_deterministic_twin_structure():
    net = UNet2Sigmoid(hidden=4).eval()
    image = sky((20, 20))
    pred = predict(net, image, T=16)
    assert pred.T == 1
    assert np.all(pred.epistemic == 0)
    with torch.no_grad():
        expected = net(torch.from_numpy(image)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(pred.prob, expected, atol=1e-6)
    np.testing.assert_allclose(pred.aleatoric, pred.entropy, atol=1e-7)


def test_tiled_equals_untiled_on_1024_image(vi_fit):
    image = sky((1024, 1024), seed=4)
    image[500:503, 100:400] += 5
    whole = predict(vi_fit, image, T=2, tile=1024)
    tiled = predict(vi_fit, image, T=2, tile=256, progress=False)
    for name in ("prob", "entropy", "aleatoric", "epistemic"):
        np.testing.assert_allclose(getattr(tiled, name), getattr(whole, name), atol=1e-5, err_msg=name)
    net = UNet2Sigmoid(hidden=4, norm="batch").eval()
    np.testing.assert_allclose(predict(net, image, tile=200).prob, predict(net, image, tile=1024).prob, atol=1e-5)


def test_predict_leaves_batch_norm_statistics_alone():
    model = UNet2SigmoidVI(hidden=4, norm="batch")
    result = fit_svi(model, (sky((2, 8, 8)), np.zeros((2, 8, 8), bool), None), epochs=0, progress=False)
    model.train()
    before = model.inc.norm1.running_mean.clone()
    predict(result, sky((32, 32)) * 50, T=2)
    assert torch.equal(model.inc.norm1.running_mean, before)
    assert model.training  # the caller's mode is restored


def test_input_errors(vi_fit):
    with pytest.raises(ValueError, match="2-D"):
        predict(vi_fit, np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="empty"):
        predict(vi_fit, np.zeros((0, 8)))
    image = sky((16, 16))
    image[3, 4] = np.nan
    with pytest.raises(ValueError, match="row 3, column 4"):
        predict(vi_fit, image)
    ignore = np.zeros((16, 16), bool)
    ignore[3, 4] = True
    assert np.isfinite(predict(vi_fit, image, ignore=ignore, T=1).prob).all()
    with pytest.raises(ValueError, match="ignore has shape"):
        predict(vi_fit, image, ignore=np.zeros((4, 4), bool))
    filled = sky((16, 16))
    filled[5, 6] = 1e30  # a FITS fill value: not charge (a CCD pixel holds ~1e5 e-)
    with pytest.raises(ValueError, match=r"fill-value.*row 5, column 6, value 1e\+30"):
        predict(vi_fit, filled)
    ignore_fill = np.zeros((16, 16), bool)
    ignore_fill[5, 6] = True
    masked = predict(vi_fit, filled, ignore=ignore_fill, T=1)
    clean = sky((16, 16))
    clean[5, 6] = np.median(np.delete(filled.ravel(), 5 * 16 + 6))  # what the fill value is replaced by
    np.testing.assert_allclose(masked.prob, predict(vi_fit, clean, T=1).prob, atol=1e-6)
    with pytest.raises(ValueError, match="needs its guide"):
        predict(vi_fit.model, image, ignore=ignore)
    with pytest.raises(ValueError, match="T must be"):
        predict(vi_fit, image, ignore=ignore, T=0)
    with pytest.raises(TypeError, match="model must be"):
        predict("model.pth", image)
