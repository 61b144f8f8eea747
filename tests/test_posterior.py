"""The ArviZ bridge and the per-layer posterior table: KL by hand and by Monte Carlo, draws
against the guide's moments, posterior-predictive values against `predict`, input checks."""
import math
import re
from pathlib import Path

import arviz as az
import numpy as np
import pytest
import torch

import cosmiq_pyro
from cosmiq_pyro import UNet2Sigmoid, UNet2SigmoidVI, fit_deterministic, fit_svi, predict
from cosmiq_pyro.models.bayesian import weight_state
from cosmiq_pyro.models.guides import make_guide
from cosmiq_pyro.models.results import FitResult
from cosmiq_pyro.evaluation.posterior import DEFAULT_SITES, posterior_table, to_inference_data


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def inv_softplus(s):
    """softplus^-1: AutoNormal stores ``scales.<site>_unconstrained`` with sigma = softplus(.)."""
    return math.log(math.expm1(s))


def vi_with(hidden=2, norm="batch", prior_scale=1.0, loc=None, scale=None, seed=0):
    """An untrained VI model and its guide with every mu = ``loc`` and sigma = ``scale``
    (None: Kaiming-initialised means / sigma 0.05)."""
    model = UNet2SigmoidVI(hidden=hidden, norm=norm, prior_scale=prior_scale)
    torch.manual_seed(seed)
    init = weight_state(UNet2Sigmoid(hidden=hidden, norm=norm), model.weight_sites)
    if loc is not None:
        init = {k: torch.full_like(v, loc) for k, v in init.items()}
    guide = make_guide(model, init, init_scale=0.05 if scale is None else scale)
    return FitResult(model=model.eval(), guide=guide)


def set_site(fit, site, mu, sigma):
    state = fit.guide.state_dict()
    shape = state[f"locs.{site}_unconstrained"].shape
    state[f"locs.{site}_unconstrained"] = torch.tensor(mu, dtype=torch.float32).reshape(shape)
    state[f"scales.{site}_unconstrained"] = torch.tensor([inv_softplus(s) for s in sigma],
                                                         dtype=torch.float32).reshape(shape)
    fit.guide.load_state_dict(state)


# --------------------------------------------------------------------------- posterior_table

def test_table_by_hand_uniform_posterior():
    """mu = 0.3, sigma = 0.5, prior sd 1 on every weight:
    KL per weight = log(1/0.5) + (0.25 + 0.09)/2 - 1/2 = 0.363147..."""
    table = posterior_table(vi_with(hidden=2, loc=0.3, scale=0.5, prior_scale=1.0))
    assert list(table.index) == ["inc.conv1", "inc.conv2", "down.block.conv1", "down.block.conv2",
                                 "up.upsample", "up.block.conv1", "up.block.conv2", "head"]
    # hidden 2: conv1 1->2 (3x3), conv2 2->2, down 2->4, 4->4, convT 4->2 (2x2), up 4->2, 2->2, head 2->1
    expected_n = [2 * 9 + 2, 4 * 9 + 2, 8 * 9 + 4, 16 * 9 + 4, 8 * 4 + 2, 8 * 9 + 2, 4 * 9 + 2, 2 + 1]
    assert table["n_weights"].tolist() == expected_n
    per_weight = math.log(2.0) + 0.34 / 2 - 0.5
    np.testing.assert_allclose(table["kl_nats"], np.array(expected_n) * per_weight, rtol=1e-5)
    np.testing.assert_allclose(table["mean_abs_mu"], 0.3, rtol=1e-6)
    np.testing.assert_allclose(table["median_sigma"], 0.5, rtol=1e-5)
    assert (table["frac_switched_off"] == 1.0).all()  # |mu|/sigma = 0.6 < 1
    assert table.loc["up.upsample", "kind"] == "ConvTranspose2d 2x2"
    assert table.loc["head", "kind"] == "Conv2d 1x1"


def test_table_by_hand_mixed_head_layer():
    """head of hidden=2: weights mu (0.1, -2.0), sigma (1.0, 0.5); bias mu 0.5, sigma 0.25; prior sd 2.

    |mu|/sigma = 0.1, 4, 2 -> one of three switched off; mean |mu| = 2.6/3; median sigma 0.5;
    KL = [log 2 + 1.01/8 - .5] + [log 4 + 4.25/8 - .5] + [log 8 + 0.3125/8 - .5]."""
    fit = vi_with(hidden=2, prior_scale=2.0)
    set_site(fit, "head.weight", [0.1, -2.0], [1.0, 0.5])
    set_site(fit, "head.bias", [0.5], [0.25])
    row = posterior_table(fit).loc["head"]
    assert row["n_weights"] == 3
    assert row["frac_switched_off"] == pytest.approx(1 / 3)
    assert row["mean_abs_mu"] == pytest.approx(2.6 / 3, rel=1e-6)
    assert row["median_sigma"] == pytest.approx(0.5, rel=1e-5)
    assert row["prior_sd"] == 2.0
    kl = (math.log(2) + 1.01 / 8 - 0.5) + (math.log(4) + 4.25 / 8 - 0.5) + (math.log(8) + 0.3125 / 8 - 0.5)
    assert row["kl_nats"] == pytest.approx(kl, rel=1e-5)


def test_table_kl_is_zero_when_posterior_equals_prior():
    table = posterior_table(vi_with(hidden=2, loc=0.0, scale=0.7, prior_scale=0.7))
    np.testing.assert_allclose(table["kl_nats"], 0.0, atol=1e-4)


def test_table_kl_matches_a_monte_carlo_estimate():
    """KL(q||p) = E_q[log q(w) - log p(w)], estimated per layer (weight + bias) from draws
    w = mu + sigma * eps of the guide's parameters (read from its state dict)."""
    fit = vi_with(hidden=2, prior_scale=0.5)
    rng = np.random.default_rng(3)
    for site in fit.model.weight_sites:  # heterogeneous means and sigmas (0.05 .. 0.6)
        n = fit.guide.state_dict()[f"locs.{site}_unconstrained"].numel()
        set_site(fit, site, rng.normal(0, 0.4, n).tolist(), rng.uniform(0.05, 0.6, n).tolist())
    table = posterior_table(fit)
    gen = torch.Generator().manual_seed(0)
    n_draws = 4000
    state = fit.guide.state_dict()
    per_layer = {}
    for site in fit.model.weight_sites:
        mu = state[f"locs.{site}_unconstrained"].double().flatten()
        sigma = torch.nn.functional.softplus(state[f"scales.{site}_unconstrained"].double()).flatten()
        w = mu + sigma * torch.randn((n_draws, mu.numel()), generator=gen, dtype=torch.float64)
        log_q = torch.distributions.Normal(mu, sigma).log_prob(w).sum(1)
        log_p = torch.distributions.Normal(0.0, 0.5).log_prob(w).sum(1)
        layer = site.rsplit(".", 1)[0]
        per_layer[layer] = per_layer.get(layer, 0) + (log_q - log_p)  # (n_draws,)
    assert set(per_layer) == set(table.index)
    for layer, diff in per_layer.items():
        estimate, se = float(diff.mean()), float(diff.std()) / math.sqrt(n_draws)
        assert abs(table.loc[layer, "kl_nats"] - estimate) < 5 * se, (layer, estimate, se)


def test_table_accepts_a_guide_with_its_model():
    fit = vi_with(hidden=2, loc=0.3, scale=0.5)
    from_guide = posterior_table(fit.guide, model=fit.model)
    assert from_guide.equals(posterior_table(fit))


# --------------------------------------------------------------------------- to_inference_data

@pytest.fixture(scope="module")
def fit4():
    return vi_with(hidden=4, prior_scale=0.5, seed=1)


def test_idata_groups_dims_and_shapes(fit4):
    idata = to_inference_data(fit4, num_samples=30)
    assert set(idata.groups()) == {"posterior", "prior"}
    post = idata.posterior
    assert set(post.data_vars) == set(DEFAULT_SITES)
    w = post["inc.conv1.weight"]
    assert w.dims == ("chain", "draw", "inc.conv1.out_channel", "inc.conv1.in_channel",
                      "inc.conv1.ky", "inc.conv1.kx")
    assert w.shape == (1, 30, 4, 1, 3, 3)
    assert post["head.bias"].dims == ("chain", "draw", "head.out_channel")
    assert post["head.weight"].shape == (1, 30, 1, 4, 1, 1)
    assert idata.prior["head.weight"].dims == post["head.weight"].dims
    assert idata.attrs["prior"] == "IIDNormalPrior(scale=0.5)"


def test_idata_conv_transpose_dims_follow_torch_layout(fit4):
    idata = to_inference_data(fit4, num_samples=2, sites=["up.upsample.weight", "up.upsample.bias"])
    w = idata.posterior["up.upsample.weight"]
    # torch stores ConvTranspose2d(8 -> 4, k=2) weights as (in=8, out=4, 2, 2)
    assert w.dims[2:] == ("up.upsample.in_channel", "up.upsample.out_channel", "up.upsample.ky",
                          "up.upsample.kx")
    assert w.shape[2:] == (8, 4, 2, 2)
    assert idata.posterior["up.upsample.bias"].shape[2:] == (4,)


def test_idata_posterior_draws_have_the_guide_moments_and_prior_draws_the_prior():
    fit = vi_with(hidden=2, prior_scale=0.8)
    set_site(fit, "head.weight", [1.5, -0.5], [0.1, 0.3])
    n = 200  # sd of a sample sd ~ sd / sqrt(2n): 5 %; the tolerances are 5 standard errors
    idata = to_inference_data(fit, num_samples=n, sites=["head.weight"], seed=5)
    post = idata.posterior["head.weight"].values.reshape(n, 2)
    np.testing.assert_allclose(post.mean(0), [1.5, -0.5], atol=5 * 0.3 / math.sqrt(n))
    np.testing.assert_allclose(post.std(0), [0.1, 0.3], rtol=5 / math.sqrt(2 * n))
    prior = idata.prior["head.weight"].values.reshape(n, 2)
    np.testing.assert_allclose(prior.mean(0), 0.0, atol=5 * 0.8 / math.sqrt(n))
    np.testing.assert_allclose(prior.std(0), 0.8, rtol=5 / math.sqrt(2 * n))
    summary = az.summary(idata, var_names=["head.weight"], kind="stats")
    assert list(summary.index) == ["head.weight[0, 0, 0, 0]", "head.weight[0, 1, 0, 0]"]


def test_idata_same_seed_same_draws_other_seed_other_draws(fit4):
    a = to_inference_data(fit4, num_samples=5, seed=3).posterior["head.weight"].values
    b = to_inference_data(fit4, num_samples=5, seed=3).posterior["head.weight"].values
    c = to_inference_data(fit4, num_samples=5, seed=4).posterior["head.weight"].values
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("norm,shape", [("batch", (42, 50)), ("group", (24, 28))])
def test_posterior_predictive_averages_to_predicts_prob(norm, shape):
    """The per-draw probabilities at the pixels average to predict(T=num_samples, seed).prob:
    same draws, crops (batch norm) or the whole image (group norm) against predict's tiling."""
    fit = vi_with(hidden=4, norm=norm, seed=2)
    fit.guide.load_state_dict({k: v + (0.5 if k.startswith("scales") else 0.0)
                               for k, v in fit.guide.state_dict().items()})  # wider posterior
    image = np.random.default_rng(0).normal(0, 1, shape).astype(np.float32)
    image[20, 3:12] += 6.0
    pixels = {"streak": (20, 5), "corner": (shape[0] - 1, shape[1] - 1), "origin": (0, 0), "mid": (11, 17)}
    idata = to_inference_data(fit, num_samples=40, seed=7, pixels=pixels, image=image)  # two draw blocks
    prob = idata.posterior_predictive["prob"]
    assert prob.dims == ("chain", "draw", "pixel") and prob.shape == (1, 40, 4)
    assert list(prob["pixel"].values) == list(pixels)
    rows, cols = zip(*pixels.values())
    np.testing.assert_array_equal(idata.constant_data["pixel_row"].values, rows)
    reference = predict(fit, image, T=40, seed=7).prob[list(rows), list(cols)]
    np.testing.assert_allclose(prob.mean(("chain", "draw")).values, reference, atol=1e-5)
    assert prob.std("draw").values.min() > 0  # the draws differ


def test_pixels_as_a_list_of_pairs(fit4):
    image = np.zeros((16, 16), np.float32)
    idata = to_inference_data(fit4, num_samples=2, pixels=[(1, 2), (3, 4)], image=image)
    assert list(idata.posterior_predictive["pixel"].values) == ["row 1, col 2", "row 3, col 4"]


def test_input_errors(fit4):
    image = np.zeros((16, 16), np.float32)
    with pytest.raises(ValueError, match="unknown weight site"):
        to_inference_data(fit4, sites=["inc.conv9.weight"])
    with pytest.raises(ValueError, match="num_samples"):
        to_inference_data(fit4, num_samples=0)
    with pytest.raises(ValueError, match="pixels and image"):
        to_inference_data(fit4, pixels=[(1, 1)])
    with pytest.raises(ValueError, match="outside the image"):
        to_inference_data(fit4, num_samples=1, pixels=[(16, 0)], image=image)
    with pytest.raises(ValueError, match="integer"):
        to_inference_data(fit4, num_samples=1, pixels=[(1.5, 0)], image=image)
    with pytest.raises(ValueError, match="2-D"):
        to_inference_data(fit4, num_samples=1, pixels=[(0, 0)], image=np.zeros(5))
    with pytest.raises(ValueError, match="model"):
        to_inference_data(fit4.guide)
    with pytest.raises(ValueError, match="model"):
        posterior_table(fit4.guide)
    with pytest.raises(TypeError, match="FitResult"):
        posterior_table(fit4.model)
    image_net = np.zeros((2, 8, 8), np.float32)
    det = fit_deterministic(UNet2Sigmoid(hidden=2), (image_net, image_net > 0), epochs=0, progress=False)
    with pytest.raises(ValueError, match="deterministic"):
        to_inference_data(det)
    with pytest.raises(ValueError, match="deterministic"):
        posterior_table(det)


def test_works_on_a_trained_fit_svi_result(tiny_set):
    """End to end on a briefly trained model: the table's KL total is finite and positive."""
    image, mask, ignore = tiny_set
    fit = fit_svi(UNet2SigmoidVI(hidden=4), (image[:6], mask[:6], ignore[:6]), epochs=1, batch_size=3,
                  progress=False)
    table = posterior_table(fit)
    assert np.isfinite(table["kl_nats"]).all() and table["kl_nats"].sum() > 0
    idata = to_inference_data(fit, num_samples=4, pixels={"a": (5, 5)}, image=image[0])
    assert np.isfinite(idata.posterior_predictive["prob"].values).all()


def test_posterior_is_the_only_module_that_imports_arviz():
    package = Path(cosmiq_pyro.__file__).parent
    importers = sorted(p.relative_to(package).as_posix() for p in package.rglob("*.py")
                       if re.search(r"^\s*(import arviz|from arviz)", p.read_text(), re.MULTILINE))
    assert importers == ["evaluation/posterior.py"]
