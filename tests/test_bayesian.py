"""The Pyro twin: sample sites, priors, guide parameterisation and the scaled ELBO."""
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.distributions import constraints
from pyro.infer.autoguide import AutoNormal

from cosmiq_pyro import UNet2Sigmoid, UNet2SigmoidVI
from cosmiq_pyro.inference.objective import svi_loss
from cosmiq_pyro.models.bayesian import weight_state
from cosmiq_pyro.models.guides import make_guide


def test_every_conv_weight_and_bias_is_a_sample_site_named_by_module_path():
    model = UNet2SigmoidVI(hidden=8, norm="batch")
    plain = UNet2Sigmoid(hidden=8, norm="batch")
    conv_keys = {k for k in plain.state_dict() if k.rsplit(".", 1)[0].split(".")[-1] in
                 ("conv1", "conv2", "upsample", "head")}
    assert len(conv_keys) == 16
    assert set(model.weight_sites) == conv_keys
    trace = poutine.trace(model).get_trace(torch.zeros(1, 1, 8, 8))
    sampled = {name for name, site in trace.nodes.items()
               if site["type"] == "sample" and not site["is_observed"]}
    assert sampled == conv_keys
    # norm parameters stay point estimates (ordinary torch parameters of the module)
    params = {name for name, _ in model.named_parameters()}
    assert params == {k for k in plain.state_dict() if ".norm" in k and k.endswith(("weight", "bias"))}


def test_prior_is_normal_zero_prior_scale_over_whole_tensor_and_follows_dtype():
    model = UNet2SigmoidVI(hidden=4, prior_scale=0.3)
    trace = poutine.trace(model).get_trace(torch.zeros(1, 1, 8, 8))
    site = trace.nodes["down.block.conv1.weight"]
    assert site["fn"].event_shape == (8, 4, 3, 3)  # .to_event over the whole tensor
    value = site["value"]
    expected = torch.distributions.Normal(0.0, 0.3).log_prob(value).sum()
    torch.testing.assert_close(site["fn"].log_prob(value), expected)
    model.double()  # priors are buffers: they follow the module
    trace = poutine.trace(model).get_trace(torch.zeros(1, 1, 8, 8, dtype=torch.float64))
    assert trace.nodes["head.bias"]["value"].dtype == torch.float64


def test_probs_site_and_masked_likelihood():
    torch.manual_seed(0)
    model = UNet2SigmoidVI(hidden=4, prior_scale=0.1)  # no saturated probabilities (BCE clamps log 0)
    x = torch.randn(2, 1, 8, 8)
    y = (torch.rand(2, 1, 8, 8) > 0.7).float()
    ignore = torch.zeros_like(y)
    ignore[..., :3] = 1
    trace = poutine.trace(model).get_trace(x, y, ignore)
    probs = trace.nodes["probs"]["value"]
    obs = trace.nodes["obs"]
    assert probs.shape == (2, 1, 8, 8)
    # log-likelihood, scaled by 1 / n_valid, equals minus the mean BCE over valid pixels
    valid = ignore < 0.5
    bce = F.binary_cross_entropy(probs, y, reduction="none")[valid].mean()
    torch.testing.assert_close(obs["scale"] * obs["fn"].log_prob(y), -bce, rtol=1e-5, atol=1e-6)


def test_autonormal_scales_are_softplus_parameterised():
    model = UNet2SigmoidVI(hidden=4)
    guide = make_guide(model, weight_state(UNet2Sigmoid(hidden=4), model.weight_sites), init_scale=0.02)
    assert isinstance(guide, AutoNormal)
    assert AutoNormal.scale_constraint is constraints.softplus_positive
    raw = dict(guide.named_parameters())["scales.head.weight_unconstrained"]
    # softplus(raw) = init scale  <=>  raw = log(expm1(0.02))
    torch.testing.assert_close(raw, torch.full_like(raw, math.log(math.expm1(0.02))))
    torch.testing.assert_close(F.softplus(raw), torch.full_like(raw, 0.02))


def test_elbo_equals_bce_plus_scaled_kl_estimate():
    """Pyro's loss of one step == BCE_mean(valid) + kl_beta * (log q(w) - log p(w)) / N_train."""
    torch.manual_seed(0)
    model = UNet2SigmoidVI(hidden=4, prior_scale=0.5).train()
    guide = make_guide(model, weight_state(UNet2Sigmoid(hidden=4), model.weight_sites), init_scale=0.05)
    x = torch.randn(3, 1, 8, 8) * 20 + 100
    y = (torch.rand(3, 1, 8, 8) > 0.8).float()
    ignore = (torch.rand(3, 1, 8, 8) > 0.9).float()
    kl_beta, n_train = 1e-2, 7
    loss_fn = svi_loss(model, guide, kl_beta / n_train)

    torch.manual_seed(123)
    pyro_loss = loss_fn(x, y, ignore)

    # Replay by hand: the same seed gives the same guide draw (the guide samples first).
    torch.manual_seed(123)
    guide_trace = poutine.trace(guide).get_trace(x, y, ignore)
    log_q = 0.0
    log_p = 0.0
    for site in model.weight_sites:
        aux = guide_trace.nodes[f"{site}_unconstrained"]
        loc, scale = aux["fn"].base_dist.loc, aux["fn"].base_dist.scale
        w = guide_trace.nodes[site]["value"]
        log_q = log_q + torch.distributions.Normal(loc, scale).log_prob(w).sum()
        log_p = log_p + torch.distributions.Normal(0.0, 0.5).log_prob(w).sum()
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, y, ignore)
    probs = model_trace.nodes["probs"]["value"]
    valid = ignore < 0.5
    bce = F.binary_cross_entropy(probs, y, reduction="none")[valid].mean()
    expected = bce + kl_beta * (log_q - log_p) / n_train
    torch.testing.assert_close(pyro_loss, expected, rtol=1e-5, atol=1e-5)


def test_weight_state_reports_missing_sites():
    model = UNet2SigmoidVI(hidden=4)
    state = UNet2Sigmoid(hidden=4).state_dict()
    del state["head.bias"]
    with pytest.raises(ValueError, match="head.bias"):
        weight_state(state, model.weight_sites)


def test_two_models_do_not_share_parameters_through_the_param_store():
    a, b = UNet2SigmoidVI(hidden=4), UNet2SigmoidVI(hidden=4)
    with torch.no_grad():
        a.inc.norm1.weight.fill_(3.0)
    poutine.trace(a).get_trace(torch.zeros(1, 1, 8, 8))
    poutine.trace(b).get_trace(torch.zeros(1, 1, 8, 8))
    assert torch.all(b.inc.norm1.weight == 1.0)
