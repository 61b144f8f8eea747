"""The linearised moment pass (`models.linear_moments`) against independent expectations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import cosmiq_pyro as cq
from cosmiq_pyro.models.fused import fused_bottleneck, fused_logits
from cosmiq_pyro.models.linear_moments import linear_logits, linear_weights, linear_weights_from
from cosmiq_pyro.models.moment_net import WEIGHT_SITES
from cosmiq_pyro.models.unet import UNet2Sigmoid
from cosmiq_pyro.inference.novelty import mean_weights


@pytest.fixture(scope="module")
def shipped():
    return cq.load("ACS-WFC-VI")


def _chain_net(seed: int = 0):
    """A hidden=1 net whose mean weights form one chain per pixel (3x3 kernels: centre tap only;
    of the two bottleneck channels and of the up-block's [skip, up] inputs only the first carries
    a mean), every weight with its own posterior width.  Then no two activations that a layer
    sums with non-zero mean weights share a random input, the independence of the propagation
    holds, and the pass's variance is the first-order (delta-method) variance
    ``sum_w sigma_w^2 (dz/dw)^2`` as the widths go to 0."""
    torch.manual_seed(seed)
    net = UNet2Sigmoid(hidden=1).double().eval()
    with torch.no_grad():  # batch norms with their own statistics, to exercise the folding
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(0.1, 0.5)
    state = dict(net.named_parameters())
    locs = {}
    for site in WEIGHT_SITES:
        shape = state[site].shape
        mu = torch.zeros(shape, dtype=torch.float64)
        if site.endswith("bias"):
            mu.uniform_(0.05, 0.3)
        elif site == "up.upsample.weight":  # (C_in = 2, C_out = 1, 2, 2)
            mu[0].uniform_(0.5, 1.5)
        elif site == "head.weight":
            mu.uniform_(0.5, 1.5)
        elif site == "up.block.conv1.weight":  # input channels [skip, up]
            mu[:, 0, 1, 1] = torch.empty(shape[0], dtype=torch.float64).uniform_(0.5, 1.5)
        else:  # centre taps, from input channel 0 only (down2: to output channel 0 only)
            rows = slice(0, 1) if site == "down.block.conv2.weight" else slice(None)
            mu[rows, 0, 1, 1] = torch.empty(mu[rows, 0, 1, 1].shape, dtype=torch.float64).uniform_(0.5, 1.5)
        locs[site] = mu
    scales = {site: torch.empty_like(mu).uniform_(0.5, 1.5) for site, mu in locs.items()}
    return net, locs, scales


def test_variance_is_the_first_order_variance_of_a_chain_net():
    net, locs, scales = _chain_net()
    x = torch.from_numpy(np.random.default_rng(1).uniform(0.5, 2.0, size=(1, 1, 8, 8)))
    eps = 1e-4  # widths scaled to 0: the second-order terms (sigma^2 v) vanish relative to the first
    lw = linear_weights_from(net, locs, {k: eps * s for k, s in scales.items()}, channels_last=False,
                             var_dtype=torch.float64)
    with torch.no_grad():
        m, v = linear_logits(lw, x)
    # independent expectation: autograd's Jacobian of every output logit w.r.t. every weight
    params = {k: t.clone() for k, t in locs.items()}
    jac = torch.func.jacrev(lambda p: torch.func.functional_call(net, p, (x,)).flatten())(params)
    # UNet2Sigmoid.forward returns probabilities: dz/dw = dp/dw / (p (1 - p))
    with torch.no_grad():
        prob = torch.func.functional_call(net, params, (x,)).flatten()
    dz = {k: j / (prob * (1 - prob)).reshape(-1, *([1] * (j.dim() - 1))) for k, j in jac.items()}
    first_order = sum((d ** 2 * (eps * scales[k]) ** 2).flatten(1).sum(1) for k, d in dz.items())
    assert torch.allclose(m.flatten(), torch.logit(prob), rtol=1e-9, atol=1e-9)
    assert torch.allclose(v.flatten().double(), first_order, rtol=1e-4)


def test_relu_and_pool_rules_by_hand():
    """Where the mean of a unit is <= 0 its variance is 0 (the ReLU's derivative); the pooled
    variance is the variance of the member with the largest mean."""
    net, locs, scales = _chain_net(seed=3)
    locs["inc.conv1.bias"] = torch.tensor([-1.0e3], dtype=torch.float64)  # inc1 off everywhere
    lw = linear_weights_from(net, locs, scales, channels_last=False, var_dtype=torch.float64)
    x = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        m, v = linear_logits(lw, x)
    # inc1 off: inc2 sees mean 0 and variance 0 from it, so only weights after inc1 contribute;
    # switching inc1's widths off changes nothing
    lw0 = linear_weights_from(net, locs, {**scales, "inc.conv1.weight": 0 * scales["inc.conv1.weight"],
                                          "inc.conv1.bias": 0 * scales["inc.conv1.bias"]},
                              channels_last=False, var_dtype=torch.float64)
    with torch.no_grad():
        m0, v0 = linear_logits(lw0, x)
    assert torch.equal(m, m0) and torch.allclose(v, v0, rtol=1e-6)


def test_mean_stream_is_the_twin_and_its_bottleneck_the_novelty_features(shipped):
    net = shipped.model.eval()
    x = torch.from_numpy(np.random.default_rng(0).gamma(2.0, 40.0, size=(1, 1, 40, 56)).astype(np.float32))
    x[..., 10:13, 30] += 3000.0
    twin = mean_weights(shipped)
    with torch.inference_mode():
        m, v, low = linear_logits(linear_weights(net, shipped.guide), x, return_bottleneck=True)
        assert torch.equal(low, fused_bottleneck(twin, x))  # the novelty score cannot depend on the method
        assert torch.equal(m, fused_logits(twin, x)[:, 0])
        assert bool((v > 0).all())


def test_bfloat16_variance_stream_within_one_percent(shipped):
    net = shipped.model.eval()
    x = torch.from_numpy(np.random.default_rng(2).gamma(2.0, 40.0, size=(1, 1, 32, 32)).astype(np.float32))
    with torch.inference_mode():
        m, v = linear_logits(linear_weights(net, shipped.guide), x)
        mb, vb = linear_logits(linear_weights(net, shipped.guide, var_dtype=torch.bfloat16), x)
    assert torch.equal(m, mb) and vb.dtype == torch.float32
    assert float(((vb - v).abs() / v).max()) < 0.02


def test_bad_input_is_refused(shipped):
    lw = linear_weights(shipped.model, shipped.guide)
    with pytest.raises(ValueError, match="H and W even"):
        linear_logits(lw, torch.zeros(1, 1, 7, 8))
    with pytest.raises(TypeError, match="UNet2Sigmoid"):
        linear_weights(torch.nn.Conv2d(1, 1, 3), shipped.guide)


def test_moment_pass_runs_the_linearised_propagation(shipped):
    from dataclasses import replace

    from cosmiq_pyro.inference.moments import MomentPass, MomentSettings, moment_settings

    settings = replace(moment_settings(shipped), propagation="linear")
    assert MomentSettings(**settings.to_section()) == settings  # travels in a checkpoint section
    x = torch.from_numpy(np.random.default_rng(4).gamma(2.0, 40.0, size=(1, 1, 32, 48)).astype(np.float32))
    x[..., 8:11, 20] += 2500.0
    mp = MomentPass(shipped, settings=settings)
    prob, alea, epi = mp(x)
    m, v = mp.logit_moments(x)
    with torch.inference_mode():
        lm, lv = linear_logits(linear_weights(shipped.model.eval(), shipped.guide), x)
    t = shipped.temperature
    assert torch.allclose(m, lm / t) and torch.allclose(v, settings.calibrate(lv / t ** 2))
    entropy = -(torch.xlogy(prob, prob) + torch.xlogy(1 - prob, 1 - prob))
    assert bool((epi >= 0).all()) and torch.allclose(alea + epi, entropy, atol=1e-6)
    assert torch.equal(mp.bottleneck, fused_bottleneck(mean_weights(shipped), x))
    with pytest.raises(ValueError, match="propagation must be one of"):
        MomentSettings(propagation="quadratic")
