"""Fast inference: batch-norm folding, the fused forward, grouped draws, and `predict`'s fast
path against the sequential Pyro reference."""
import numpy as np
import pytest
import torch
from pyro.infer.autoguide import AutoDelta
from pyro.infer.autoguide.initialization import init_to_value
from torch import nn

from cosmiq_pyro import UNet2Sigmoid, UNet2SigmoidVI, fit_svi, predict
from cosmiq_pyro.inference import predictive
from cosmiq_pyro.utils.tiling import TILE_ALIGN, receptive_radius, tile_margin
from cosmiq_pyro.models import fused as fastnet
from cosmiq_pyro.models.bayesian import draw_weights, probs_given_weights, weight_state
from cosmiq_pyro.utils.torchtools import binary_entropy


def reference_moments(net, draws, x):
    """The reference for predict's fused moments: one pass of the (Pyro) model per draw, unfused.

    ``draws`` is None for the deterministic twin.  Returns the MC means of ``p_t`` and
    ``H[p_t]`` over the whole tile ``x`` (1, 1, h, w), each (h, w) float64.
    """
    if draws is None:
        p = net(x)[0, 0].double()
        return p, binary_entropy(p)
    T = len(next(iter(draws.values())))
    sum_p = torch.zeros(x.shape[-2:], dtype=torch.float64, device=x.device)
    sum_h = torch.zeros_like(sum_p)
    for t in range(T):
        p = probs_given_weights(net, x, {site: w[t] for site, w in draws.items()})[0, 0].double()  # (h, w)
        sum_p += p
        sum_h += binary_entropy(p)
    return sum_p / T, sum_h / T


def randomise_norms(net, seed=0):
    """Non-trivial batch/group-norm parameters and running statistics (defaults fold to identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm)):
                n = layer.num_features if isinstance(layer, nn.BatchNorm2d) else layer.num_channels
                layer.weight.copy_(0.5 + torch.rand(n, generator=g))
                layer.bias.copy_(0.2 * torch.randn(n, generator=g))
                if isinstance(layer, nn.BatchNorm2d):
                    layer.running_mean.copy_(0.3 * torch.randn(n, generator=g))
                    layer.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return net.eval()


def conv_draws(net, k, scale=0.1, seed=1):
    """``k`` perturbed copies of every conv weight and bias: {key: (k, *shape)}."""
    g = torch.Generator().manual_seed(seed)
    state = net.state_dict()
    keys = [key for key, layer in net.named_modules() if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d))]
    return {f"{key}.{leaf}": torch.stack([state[f"{key}.{leaf}"] + scale * torch.randn(state[f"{key}.{leaf}"].shape,
                                                                                         generator=g)
                                          for _ in range(k)])
            for key in keys for leaf in ("weight", "bias")}


def test_fold_batch_norm_by_hand():
    # s = gamma / sqrt(var + eps) = [4 / 2, 0.5 / 1] = [2, 0.5]
    w = torch.tensor([[[[2.0]]], [[[3.0]]]])  # (2, 1, 1, 1)
    b = torch.tensor([1.0, -1.0])
    mean, var = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.0])
    gamma, beta = torch.tensor([4.0, 0.5]), torch.tensor([0.5, 1.0])
    fw, fb = fastnet.fold_batch_norm(w, b, mean, var, gamma, beta, eps=1.0)
    torch.testing.assert_close(fw.flatten(), torch.tensor([4.0, 1.5]))
    torch.testing.assert_close(fb, torch.tensor([2 * (1 - 1) + 0.5, 0.5 * (-1 - 2) + 1.0]))
    # leading (draw) dimensions are kept and folded alike
    fw3, fb3 = fastnet.fold_batch_norm(w.expand(3, 2, 1, 1, 1), b.expand(3, 2), mean, var, gamma, beta, eps=1.0)
    assert fw3.shape == (3, 2, 1, 1, 1) and torch.equal(fw3[2], fw) and torch.equal(fb3[1], fb)


def test_folded_conv_equals_torch_conv_then_batch_norm():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5, eps=1e-3)
    randomise_norms(nn.Sequential(bn))
    x = torch.randn(2, 3, 9, 7)
    w, b = fastnet.fold_batch_norm(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)
    with torch.no_grad():
        torch.testing.assert_close(nn.functional.conv2d(x, w, b, padding=1), bn.eval()(conv(x)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_fused_draws_equal_plain_nets_holding_each_draw(norm):
    torch.manual_seed(0)
    net = randomise_norms(UNet2Sigmoid(n_channels=2, n_classes=2, hidden=8, norm=norm))
    draws = conv_draws(net, k=3)
    x = torch.randn(2, 2, 20, 28)
    with torch.inference_mode():
        out = fastnet.fused_logits(fastnet.fuse_weights(net, draws), x)  # (2, 3, 2, 20, 28)
        assert out.shape == (2, 3, 2, 20, 28)
        for t in range(3):
            plain = UNet2Sigmoid(n_channels=2, n_classes=2, hidden=8, norm=norm)
            plain.load_state_dict({**net.state_dict(), **{key: w[t] for key, w in draws.items()}})
            torch.testing.assert_close(out[:, t], plain.eval().logits(x), atol=1e-5, rtol=1e-5)
        # no draws: the net's own weights, one pass
        torch.testing.assert_close(fastnet.fused_logits(fastnet.fuse_weights(net), x)[:, 0], net.logits(x),
                                   atol=1e-5, rtol=1e-5)


def test_plain_conv2d_fallback_equals_onednn_path(monkeypatch):
    net = randomise_norms(UNet2Sigmoid(hidden=8))
    draws = conv_draws(net, k=2)
    x = torch.randn(1, 1, 24, 24)
    with torch.inference_mode():
        fast = fastnet.fused_logits(fastnet.fuse_weights(net, draws), x)
        monkeypatch.setattr(fastnet, "ONEDNN_FUSION", False)
        plain = fastnet.fused_logits(fastnet.fuse_weights(net, draws, channels_last=False), x)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


def test_fused_logits_rejects_odd_input():
    with pytest.raises(ValueError, match="even"):
        fastnet.fused_logits(fastnet.fuse_weights(UNet2Sigmoid(hidden=4)), torch.zeros(1, 1, 9, 8))
    with pytest.raises(ValueError, match="leading"):
        net = UNet2Sigmoid(hidden=4)
        draws = conv_draws(net, k=2)
        draws["head.bias"] = draws["head.bias"][:1]
        fastnet.fuse_weights(net, draws)


def test_receptive_field_radius_is_nine_and_within_the_tile_margin():
    """An input pixel moves the logits at most 9 px away (both pooling parities): the tiles'
    margin must be at least that."""
    torch.manual_seed(0)
    net = UNet2Sigmoid(hidden=8, norm="none").eval()
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                layer.bias.abs_()  # keep ReLUs open so every path carries the impulse
        base = net.logits(torch.zeros(1, 1, 48, 48))[0, 0]
        reach = 0
        for r, c in [(20, 20), (21, 21), (20, 21)]:
            x = torch.zeros(1, 1, 48, 48)
            x[0, 0, r, c] = 100.0
            rows, cols = torch.nonzero(net.logits(x)[0, 0] != base, as_tuple=True)
            reach = max(reach, int((rows - r).abs().max()), int((cols - c).abs().max()))
    assert reach == 9
    assert receptive_radius(net) == reach  # derived from the layers
    assert tile_margin(net) >= reach and tile_margin(net) % TILE_ALIGN == 0


@pytest.fixture(scope="module")
def bn_fit():
    """A VI twin with non-trivial batch norms and a wide posterior (draws differ visibly)."""
    plain = randomise_norms(UNet2Sigmoid(hidden=4, norm="batch"), seed=3)
    image = np.random.default_rng(0).normal(0, 1, (2, 16, 16)).astype(np.float32)
    return fit_svi(UNet2SigmoidVI(hidden=4, norm="batch"), (image, image > 9, None), epochs=0,
                   init_from=plain, init_scale=0.05, progress=False)


def sky(shape, seed=2):
    return np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)


def test_predict_equals_the_sequential_pyro_reference_on_the_whole_image(bn_fit):
    """Fused, tiled (CPU_TILE) predict == one unfused pass of the Pyro model per draw on the
    untiled image, same seed -> same draws."""
    image = sky((2 * predictive.CPU_TILE + 8, 420))
    image[100, 30:60] += 6
    pred = predict(bn_fit, image, T=4, seed=5)
    model = bn_fit.model.eval()
    with torch.random.fork_rng():
        torch.manual_seed(5)
        draws = draw_weights(model, bn_fit.guide, 4)
    with torch.no_grad():
        prob, alea = reference_moments(model, draws, torch.from_numpy(image)[None, None])
    np.testing.assert_allclose(pred.prob, prob.numpy(), atol=1e-5)
    np.testing.assert_allclose(pred.aleatoric, alea.numpy(), atol=1e-5)
    np.testing.assert_allclose(pred.entropy, binary_entropy(prob).numpy(), atol=1e-5)
    assert pred.epistemic.max() > 1e-4


def test_deterministic_twin_with_batch_norm_equals_its_forward():
    net = randomise_norms(UNet2Sigmoid(hidden=4, norm="batch"), seed=4)
    image = sky((410, 398))
    pred = predict(net, image)
    padded = np.pad(image, ((0, 2), (0, 2)), mode="symmetric")  # predict pads to a multiple of 4
    with torch.no_grad():
        expected = net(torch.from_numpy(padded)[None, None])[0, 0, :410, :398].numpy()
    np.testing.assert_allclose(pred.prob, expected, atol=1e-5)


def test_grouped_draws_equal_one_draw_per_pass(bn_fit):
    model = bn_fit.model.eval()
    torch.manual_seed(0)
    draws = draw_weights(model, bn_fit.guide, 5)
    x = torch.from_numpy(sky((36, 44)))[None, None]
    core = (slice(4, 30), slice(2, 40))
    with torch.inference_mode():
        one, grouped = np.zeros((2, 26, 38)), np.zeros((2, 26, 38))
        predictive._add_draws(predictive._fused_passes(model, draws, 1), x, core, one)
        predictive._add_draws(predictive._fused_passes(model, draws, 3), x, core, grouped)  # passes of 3 + 2
    np.testing.assert_allclose(one, grouped, atol=1e-6 * 5, rtol=0)
    assert one[0].min() > 0


def test_group_norm_images_are_not_cut_into_cpu_tiles():
    """Group norm's statistics span the input: predict keeps the caller's tile (here: whole)."""
    plain = randomise_norms(UNet2Sigmoid(hidden=8, norm="group"), seed=5)
    image = sky((predictive.CPU_TILE + 40, 64))
    fit = fit_svi(UNet2SigmoidVI(hidden=8, norm="group"), (sky((2, 16, 16)), np.zeros((2, 16, 16), bool), None),
                  epochs=0, init_from=plain, init_scale=0.02, progress=False)
    pred = predict(fit, image, T=2, seed=1)
    torch.manual_seed(1)
    draws = draw_weights(fit.model, fit.guide, 2)
    with torch.no_grad():
        prob, _ = reference_moments(fit.model.eval(), draws, torch.from_numpy(image)[None, None])
    np.testing.assert_allclose(pred.prob, prob.numpy(), atol=1e-5)


def test_draw_weights_with_another_guide_replays_the_model(bn_fit):
    """A guide that is not AutoNormal goes through Predictive(model, guide): a point-mass guide
    gives its point for every draw; the AutoNormal draws differ from each other."""
    model = bn_fit.model
    values = weight_state(randomise_norms(UNet2Sigmoid(hidden=4, norm="batch")), model.weight_sites)
    delta = AutoDelta(model, init_loc_fn=init_to_value(values=values, fallback=None))
    with torch.no_grad():
        delta(torch.zeros(1, 1, 4, 4))
    draws = draw_weights(model, delta, 3)
    for site, value in values.items():
        assert draws[site].shape == (3,) + value.shape
        torch.testing.assert_close(draws[site], value.expand_as(draws[site]))
    normal = draw_weights(model, bn_fit.guide, 2)
    assert not torch.equal(normal["head.weight"][0], normal["head.weight"][1])
    with pytest.raises(ValueError, match="num_samples"):
        draw_weights(model, bn_fit.guide, 0)
