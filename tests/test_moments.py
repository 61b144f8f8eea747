"""The sampling-free predictive (issue 23, item 8): moments of each piece against hand-computed
values and large-sample Monte Carlo, batch-norm folding against the deterministic twin, the whole
net against T = 4096 MC, and the compiled pass against the eager one."""
import math

import numpy as np
import pytest
import torch

import cosmiq_pyro as cq
from cosmiq_pyro.inference.moments import MomentPass, MomentSettings, moment_predictive
from cosmiq_pyro.models.bayesian import draw_weights
from cosmiq_pyro.models.fused import fuse_weights, fused_logits
from cosmiq_pyro.models.gaussian_moments import (max2_moments, maxpool2_argmax_moments, maxpool2_moments,
                                                 relu_moments, sigmoid_moments)
from cosmiq_pyro.models.guides import guide_locs
from cosmiq_pyro.models.moment_net import conv_moments, moment_logits, moment_weights
from cosmiq_pyro.utils.tiling import tile_margin

pytestmark = pytest.mark.usefixtures("one_torch_thread")
N_MC = 2_000_000


@pytest.fixture(scope="module")
def shipped():
    return cq.load("ACS-WFC-VI")


def _mc_moments(samples):
    return samples.mean(0), samples.var(0)


def test_conv_moments_equal_hand_computed_values_on_one_3x3_window():
    # one 3x3 input window, one output pixel: mean = sum m mu + mu_b,
    # var = sum [v mu^2 + (m^2 + v) sigma^2] + sigma_b^2 (independent inputs and weights)
    m = torch.arange(9.0).reshape(1, 1, 3, 3) - 4.0
    v = torch.linspace(0.1, 0.9, 9).reshape(1, 1, 3, 3)
    mu = torch.linspace(-1.0, 1.0, 9).reshape(1, 1, 3, 3)
    sd = torch.linspace(0.05, 0.45, 9).reshape(1, 1, 3, 3)
    mu_b, sd_b = torch.tensor([0.3]), torch.tensor([0.2])
    mean, var = conv_moments(m, v, mu, mu_b, torch.cat([mu ** 2 + sd ** 2, sd ** 2], 1), sd_b ** 2, padding=0)
    hand_mean = sum(float(m.flatten()[k] * mu.flatten()[k]) for k in range(9)) + 0.3
    hand_var = sum(float(v.flatten()[k] * mu.flatten()[k] ** 2 + (m.flatten()[k] ** 2 + v.flatten()[k])
                         * sd.flatten()[k] ** 2) for k in range(9)) + 0.04
    assert mean.shape == var.shape == (1, 1, 1, 1)
    assert float(mean) == pytest.approx(hand_mean, rel=1e-6)
    assert float(var) == pytest.approx(hand_var, rel=1e-6)
    # and the same by sampling inputs and weights
    g = torch.Generator().manual_seed(0)
    n = 400_000
    xs = m.flatten() + v.flatten().sqrt() * torch.randn(n, 9, generator=g)
    ws = mu.flatten() + sd.flatten() * torch.randn(n, 9, generator=g)
    ys = (xs * ws).sum(1) + 0.3 + 0.2 * torch.randn(n, generator=g)
    assert float(ys.mean()) == pytest.approx(hand_mean, abs=4 * math.sqrt(hand_var / n))
    assert float(ys.var()) == pytest.approx(hand_var, rel=0.01)


@pytest.mark.parametrize("m, v", [(0.0, 1.0), (1.5, 0.25), (-2.0, 1.0), (-6.0, 1.0), (30.0, 4.0), (0.3, 1e-6)])
def test_relu_moments_match_large_sample_monte_carlo(m, v):
    g = torch.Generator().manual_seed(1)
    x = m + math.sqrt(v) * torch.randn(N_MC, generator=g, dtype=torch.float64)
    mc_mean, mc_var = _mc_moments(x.clamp_min(0.0))
    mean, var = relu_moments(torch.tensor(m, dtype=torch.float64), torch.tensor(v, dtype=torch.float64))
    sd = math.sqrt(v)
    assert float(mean) == pytest.approx(float(mc_mean), abs=5 * sd / math.sqrt(N_MC) + 1e-12)
    assert float(var) == pytest.approx(float(mc_var), rel=0.01, abs=1e-9 * v)


def test_relu_moments_of_an_exact_input_are_relu_and_zero():
    m = torch.tensor([-2.0, 0.0, 3.0])
    mean, var = relu_moments(m, torch.zeros(3))
    assert torch.allclose(mean, torch.tensor([0.0, 0.0, 3.0]), rtol=0, atol=1e-12)
    assert torch.allclose(var, torch.zeros(3), rtol=0, atol=1e-24)


@pytest.mark.parametrize("m1, v1, m2, v2", [(0.0, 1.0, 0.0, 1.0), (1.0, 0.5, -0.5, 2.0), (5.0, 1.0, 0.0, 0.1)])
def test_clark_max_of_two_matches_monte_carlo(m1, v1, m2, v2):
    g = torch.Generator().manual_seed(2)
    a = m1 + math.sqrt(v1) * torch.randn(N_MC, generator=g, dtype=torch.float64)
    b = m2 + math.sqrt(v2) * torch.randn(N_MC, generator=g, dtype=torch.float64)
    mc_mean, mc_var = _mc_moments(torch.maximum(a, b))
    t = lambda z: torch.tensor(z, dtype=torch.float64)  # noqa: E731
    mean, var = max2_moments(t(m1), t(v1), t(m2), t(v2))
    assert float(mean) == pytest.approx(float(mc_mean), abs=5 * math.sqrt(max(v1, v2) / N_MC))
    assert float(var) == pytest.approx(float(mc_var), rel=0.01)


def test_maxpool_moments_against_monte_carlo():
    """Clark's pairwise rule treats intermediate maxima as Gaussian: within 3 % of the sd in the
    mean and 25 % in the variance of the 2x2 max of four independent Gaussians (21 % low on this
    case: the maximum of two is skewed, and the approximation is in treating it as Gaussian, not
    in Clark's formulas, which the test above checks); the argmax rule is exact when one member's
    mean dominates."""
    means = torch.tensor([[0.0, 0.5], [-0.3, 0.2]], dtype=torch.float64)
    vars_ = torch.tensor([[1.0, 0.5], [2.0, 0.3]], dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    x = means + vars_.sqrt() * torch.randn(N_MC, 2, 2, generator=g, dtype=torch.float64)
    mc_mean, mc_var = _mc_moments(x.flatten(1).max(1).values)
    mean, var = maxpool2_moments(means[None, None], vars_[None, None])
    assert mean.shape == (1, 1, 1, 1)
    assert float(mean) == pytest.approx(float(mc_mean), abs=0.03 * math.sqrt(float(mc_var)))
    assert float(var) == pytest.approx(float(mc_var), rel=0.25)
    dominant = torch.tensor([[8.0, 0.0], [0.5, -1.0]], dtype=torch.float64)
    mean, var = maxpool2_argmax_moments(dominant[None, None], vars_[None, None])
    x = dominant + vars_.sqrt() * torch.randn(N_MC, 2, 2, generator=g, dtype=torch.float64)
    mc_mean, mc_var = _mc_moments(x.flatten(1).max(1).values)
    assert float(mean) == pytest.approx(float(mc_mean), abs=0.01) and float(var) == pytest.approx(float(mc_var), rel=0.01)
    clark_mean, _ = maxpool2_moments(dominant[None, None], vars_[None, None])
    assert float(clark_mean) == pytest.approx(float(mc_mean), abs=0.01)


@pytest.mark.parametrize("m, v", [(0.0, 1.0), (-3.0, 4.0), (2.0, 0.5), (-12.0, 9.0), (1.0, 9.0)])
def test_sigmoid_moments_match_monte_carlo(m, v):
    g = torch.Generator().manual_seed(4)
    z = m + math.sqrt(v) * torch.randn(N_MC, generator=g, dtype=torch.float64)
    s = torch.sigmoid(z)
    h = torch.nn.functional.softplus(z) - z * s
    p, a = sigmoid_moments(torch.tensor(m, dtype=torch.float64), torch.tensor(v, dtype=torch.float64), 32)
    assert float(p) == pytest.approx(float(s.mean()), abs=5 * float(s.std()) / math.sqrt(N_MC) + 1e-9)
    assert float(a) == pytest.approx(float(h.mean()), abs=5 * float(h.std()) / math.sqrt(N_MC) + 1e-9)
    p16, a16 = sigmoid_moments(torch.tensor(m, dtype=torch.float64), torch.tensor(v, dtype=torch.float64), 16)
    assert abs(float(p16 - p)) < 2e-3 and abs(float(a16 - a)) < 2e-3  # 16 nodes: <= 1.5e-3 up to v = 9


def test_saturated_logits_give_probabilities_and_finite_maps(shipped):
    """Logits far beyond sigmoid's float64 range (a bright CR on a ground frame reaches ~47):
    E[sigma] is 1 (or next to 0), never one ulp above 1 (whose binary entropy is NaN), and the
    moment pass's maps stay finite (DECam-VI made a NaN epistemic pixel before the clamp)."""
    from cosmiq_pyro.inference.moments import _binary_entropy

    m = torch.tensor([46.8, 60.0, 200.0, -60.0, -200.0], dtype=torch.float64)
    v = torch.full_like(m, 0.94)
    for nodes in (16, 32):
        p, a = sigmoid_moments(m, v, nodes)
        assert torch.all((p >= 0) & (p <= 1)) and torch.all(a >= 0)
        assert torch.all(p[:3] == 1.0) and torch.all(p[3:] < 1e-20)
        assert torch.all(torch.isfinite(_binary_entropy(p)))
    x = torch.zeros(1, 1, 16, 16)
    x[..., 6:10, 6:10] = 1e7  # a CR far brighter than any training frame's
    prob, alea, epi = MomentPass(shipped)(x)
    assert torch.all(torch.isfinite(prob) & torch.isfinite(alea) & torch.isfinite(epi))


def test_zero_posterior_width_gives_the_deterministic_twin_of_the_means(shipped):
    """With every sigma set to 0 the moment pass is the twin holding the posterior means (checks
    the batch-norm folding, the concatenation and the transposed conv): variance 0, mean = logits."""
    net = shipped.model.eval()
    mw = moment_weights(net, shipped.guide)
    layers = {}
    for name, (w, b, vw, vb) in mw.layers.items():
        dim = 0 if name == "upsample" else 1
        zero = torch.zeros_like(vw) if name == "inc1" else torch.cat([w ** 2, torch.zeros_like(w)], dim)
        layers[name] = (w, b, zero, torch.zeros_like(vb))
    mw.layers = layers
    x = torch.from_numpy(np.random.default_rng(0).gamma(2.0, 40.0, size=(1, 1, 48, 64)).astype(np.float32))
    x[..., 20:23, 30] += 3000.0  # a CR-like streak
    twin = fuse_weights(net, {k: v[None] for k, v in guide_locs(shipped.guide, net.weight_sites).items()})
    with torch.inference_mode():
        expected = fused_logits(twin, x)[:, 0]  # (B, 1, H, W)
        for pool in ("argmax", "clark"):
            m, v = moment_logits(mw, x, pool=pool)
            assert float(v.abs().max()) < 1e-20  # the variance floor of relu_moments
            assert torch.allclose(m, expected, rtol=1e-4, atol=1e-3 * float(expected.abs().max()))


def test_moment_maps_invariants_and_errors(shipped):
    x = torch.from_numpy(np.random.default_rng(1).gamma(2.0, 40.0, size=(2, 1, 32, 48)).astype(np.float32))
    prob, alea, epi = moment_predictive(shipped, x)
    assert prob.shape == alea.shape == epi.shape == (2, 1, 32, 48)
    assert prob.dtype == torch.float32 and bool((epi >= 0).all()) and bool(((prob >= 0) & (prob <= 1)).all())
    p = prob.double()
    entropy = -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))
    assert torch.allclose(alea.double() + epi.double(), entropy, atol=1e-6)
    # a larger variance scale can only add epistemic uncertainty on average
    _, _, epi3 = moment_predictive(shipped, x, settings=MomentSettings(variance_scale=3.0))
    assert float(epi3.sum()) > float(epi.sum())
    with pytest.raises(ValueError, match="even"):
        moment_predictive(shipped, x[..., :31, :])
    with pytest.raises(ValueError, match="Bayesian"):
        MomentPass(cq.UNet2Sigmoid(hidden=4))
    with pytest.raises(ValueError, match="variance_scale"):
        MomentSettings(variance_scale=0.0)
    with pytest.raises(ValueError, match="pool"):
        MomentSettings(pool="mean")


def test_tiles_with_the_margin_equal_the_untiled_pass(shipped):
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.gamma(2.0, 40.0, size=(1, 1, 64, 64)).astype(np.float32))
    x[0, 0, 30:34, 28:31] += 5000.0
    mp = MomentPass(shipped)
    full = mp(x)
    r = tile_margin(shipped.model)
    left = mp(x[..., :, : 32 + r])
    right = mp(x[..., :, 32 - r:])
    for whole, a, b in zip(full, left, right):
        tiled = torch.cat([a[..., :32], b[..., r:]], dim=-1)
        assert torch.allclose(tiled, whole, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_whole_net_against_t4096_monte_carlo(shipped):
    """Tolerance: on a 64x64 simulated frame the moment pass with the model's settings is within
    RMS 0.01 of T = 4096 MC in p (over all pixels) and 0.01 nats in the epistemic term, and its
    epistemic map ranks pixels like MC's (Spearman >= 0.9).  MC in chunks of 64 draws."""
    from scipy.stats import spearmanr

    from cosmiq_pyro.data.datasets import SimulatedDataset
    from cosmiq_pyro.data.seeds import HELD_OUT_SEED

    frame = SimulatedDataset(1, size=64, seed=HELD_OUT_SEED + 23_999, fields=("GC",)).frame(0)
    x = torch.from_numpy(frame.image)[None, None]
    net = shipped.model.eval()
    sum_p = sum_h = 0.0
    with torch.inference_mode():
        draws = draw_weights(net, shipped.guide, 4096, seed=0)
        for t0 in range(0, 4096, 64):
            fw = fuse_weights(net, {k: v[t0:t0 + 64] for k, v in draws.items()})
            z = fused_logits(fw, x)[0, :, 0].double() / shipped.temperature  # (64, H, W)
            s = torch.sigmoid(z)
            sum_p = sum_p + s.sum(0)
            sum_h = sum_h + (torch.nn.functional.softplus(z) - z * s).sum(0)
    p_mc, a_mc = sum_p / 4096, sum_h / 4096
    e_mc = (-(torch.xlogy(p_mc, p_mc) + torch.xlogy(1 - p_mc, 1 - p_mc)) - a_mc).clamp_min(0)
    prob, _, epi = MomentPass(shipped)(x)
    assert float(((prob[0, 0].double() - p_mc) ** 2).mean().sqrt()) < 0.01
    assert float(((epi[0, 0].double() - e_mc) ** 2).mean().sqrt()) < 0.01
    assert spearmanr(epi.flatten().numpy(), e_mc.flatten().numpy())[0] >= 0.9


@pytest.mark.slow
def test_compiled_pass_equals_the_eager_pass(shipped):
    """The eager fallback computes the numbers of the compiled pass (float rounding apart)."""
    import warnings

    x = torch.from_numpy(np.random.default_rng(3).gamma(2.0, 40.0, size=(1, 1, 48, 48)).astype(np.float32))
    x[0, 0, 20:24, 10] += 4000.0
    eager = MomentPass(shipped, compile=False)(x)
    compiled_pass = MomentPass(shipped, compile=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback to eager would make this vacuous
        compiled = compiled_pass(x)
    assert compiled_pass.compile
    for a, b in zip(compiled, eager):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_the_variance_scale_travels_in_the_checkpoint_and_bad_ones_are_refused(shipped, tmp_path):
    from cosmiq_pyro.inference.moments import moment_settings
    from cosmiq_pyro.io.checkpoint import update_sections
    from cosmiq_pyro.models.registry import PUBLISHED_DIR, load_model

    fitted = moment_settings(shipped)
    assert fitted.variance_scale > 1.0 and fitted.pool == "argmax"  # fitted against MC, stored with the model
    copy = update_sections(PUBLISHED_DIR / "ACS-WFC-VI.pth", {"moments": {"variance_scale": 3.5, "pool": "clark"}},
                           out=tmp_path / "m.pth")
    assert moment_settings(load_model(copy)) == MomentSettings(variance_scale=3.5, pool="clark")
    assert moment_settings(cq.FitResult(model=shipped.model, guide=shipped.guide)) == MomentSettings()
    for bad in ({"variance_scale": float("nan")}, {"variance_scale": -1.0}, {"variance_scale": 2.0, "pool": "mean"}):
        with pytest.raises(ValueError, match="moments"):
            update_sections(copy, {"moments": bad}, out=tmp_path / "bad.pth")
        assert not (tmp_path / "bad.pth").exists()


def test_variance_fit_passes_the_models_input_transform_to_both_passes(shipped):
    """A model that takes its frames divided by 4 (deepCR's decam convention) is calibrated on
    what its net sees: the same objective as the bare model on the frames divided by hand."""
    from cosmiq_pyro.data import simulate
    from cosmiq_pyro.inference.moments_calibration import fit_variance_scale

    image = simulate.simulate_frame(64, "GC", "F606W", 500.0, seed=3).image
    bare = cq.FitResult(model=shipped.model, guide=shipped.guide, temperature=shipped.temperature)
    scaled = cq.FitResult(model=shipped.model, guide=shipped.guide, temperature=shipped.temperature,
                          input_transform={"kind": "scale", "divide_by": 4.0})
    grid, caps = [1.0, 3.0], [None, 5.0]
    _, by_hand = fit_variance_scale(bare, [image / np.float32(4.0)], T=4, grid=grid, caps=caps)
    _, through = fit_variance_scale(scaled, [image], T=4, grid=grid, caps=caps)
    np.testing.assert_allclose(through["rms_epistemic"], by_hand["rms_epistemic"], rtol=1e-6)
    _, unscaled = fit_variance_scale(bare, [image], T=4, grid=grid, caps=caps)
    assert not np.allclose(unscaled["rms_epistemic"], by_hand["rms_epistemic"], rtol=1e-3)
