"""Learned posterior widths (scale learning rate), starting from published weights, and the
temperature stored with a fitted model."""
import math

import numpy as np
import pytest
import torch

from cosmiq_pyro.evaluation.plots import plot_sigma_history
from cosmiq_pyro.inference.fit import fit_deterministic, fit_svi
from cosmiq_pyro.inference.predictive import predict
from cosmiq_pyro.models.bayesian import PRETRAINED_PRIOR_SCALE, UNet2SigmoidVI
from cosmiq_pyro.models.guides import guide_locs, guide_scales
from cosmiq_pyro.models.priors import CentredNormalPrior
from cosmiq_pyro.models.registry import load_model
from cosmiq_pyro.models.unet import UNet2Sigmoid

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _widths(tiny_set, init_scale, scale_lr):
    image, mask, ignore = (a[:12] for a in tiny_set)
    result = fit_svi(UNet2SigmoidVI(hidden=4), (image, mask, ignore), epochs=8, batch_size=2, lr=5e-3,
                     kl_beta=1.0 / 32 ** 2, init_scale=init_scale, scale_lr=scale_lr,
                     seed=0, progress=False)
    return result, {s: float(v.median()) for s, v in guide_scales(result.guide).items() if s.endswith("weight")}


def test_scale_learning_rate_makes_width_independent_of_init(tiny_set):
    """Two fits differing only in init_scale (1e-3 vs 1e-2) end with per-layer median sigma
    within a factor 2 when the scales have their own, larger learning rate (the control, with
    the means' learning rate, is `test_without_the_scale_learning_rate_width_follows_init`)."""
    (small, a), (_, b) = _widths(tiny_set, 1e-3, 0.25), _widths(tiny_set, 1e-2, 0.25)
    ratios = [max(a[s], b[s]) / min(a[s], b[s]) for s in a]
    assert max(ratios) < 2.0, ratios
    # the history holds the initial and per-epoch medians, one line per weight site in the plot
    history = small.history
    assert history["init"]["sigma_median"]["inc.conv1.weight"] == pytest.approx(1e-3, rel=1e-4)
    assert [e["epoch"] for e in history["epochs"]] == list(range(1, 9))
    assert history["epochs"][-1]["sigma_median"]["inc.conv1.weight"] == pytest.approx(a["inc.conv1.weight"])
    ax = plot_sigma_history(small)
    assert len(ax.get_lines()) == sum(s.endswith("weight") for s in small.model.weight_sites)
    assert ax.get_lines()[0].get_xdata().tolist() == list(range(9))


@pytest.mark.slow
def test_without_the_scale_learning_rate_width_follows_init(tiny_set):
    """The control of the test above (slow: two more fits; `make test-slow` and CI run it): with
    the means' learning rate the widths stay ~10x apart, set by init_scale -- the problem the
    scale learning rate fixes."""
    (_, c), (_, d) = _widths(tiny_set, 1e-3, 5e-3), _widths(tiny_set, 1e-2, 5e-3)
    assert min(d[s] / c[s] for s in c) > 5.0


def test_bad_scale_lr(tiny_set):
    with pytest.raises(ValueError, match="scale_lr"):
        fit_svi(UNet2SigmoidVI(hidden=4), tiny_set, epochs=0, scale_lr=0.0, progress=False)


def test_plot_sigma_history_needs_widths():
    with pytest.raises(ValueError, match="sigma_median"):
        plot_sigma_history({"epochs": [{"epoch": 1, "train_loss": 0.1}]})
    with pytest.raises(TypeError, match="history"):
        plot_sigma_history([1, 2])


def test_init_from_published_name_puts_means_at_deepcr_weights(tiny_set):
    pytest.importorskip("deepCR")
    deepcr = UNet2Sigmoid.from_deepcr("ACS-WFC")
    result = fit_svi(UNet2SigmoidVI(hidden=32), tiny_set, epochs=0, init_from="ACS-WFC", init_scale=0.02,
                     progress=False)
    locs = guide_locs(result.guide)
    for site in result.model.weight_sites:
        assert torch.equal(locs[site], deepcr.state_dict()[site])
    assert torch.equal(result.model.state_dict()["inc.norm1.running_mean"], deepcr.state_dict()["inc.norm1.running_mean"])
    assert float(guide_scales(result.guide)["head.weight"].median()) == pytest.approx(0.02, rel=1e-4)


def test_from_deepcr_centres_prior_and_means_on_deepcr(tiny_set):
    pytest.importorskip("deepCR")
    deepcr = UNet2Sigmoid.from_deepcr("ACS-WFC").state_dict()
    model = UNet2SigmoidVI.from_deepcr("ACS-WFC")
    assert isinstance(model.prior, CentredNormalPrior)
    assert model.prior.to_dict() == {"kind": "CentredNormalPrior", "scale": PRETRAINED_PRIOR_SCALE,
                                     "source": "deepCR:ACS-WFC"}
    prior = model.prior_distribution("up.block.conv1.weight")
    assert torch.equal(prior.loc, deepcr["up.block.conv1.weight"])
    assert float(prior.scale.max()) == pytest.approx(PRETRAINED_PRIOR_SCALE)
    # fit_svi without init_from starts the means at the prior's centre
    result = fit_svi(model, tiny_set, epochs=0, progress=False)
    assert torch.equal(guide_locs(result.guide)["inc.conv2.weight"], deepcr["inc.conv2.weight"])
    assert UNet2SigmoidVI(hidden=4).prior_centre() is None


def test_temperature_fitted_saved_and_applied(tiny_set, tmp_path):
    """fit_deterministic(calibrate=True) fits a temperature on the validation data; the checkpoint stores it;
    predict divides the logits by it (checked against the plain net's own logits)."""
    image, mask, ignore = tiny_set
    torch.manual_seed(0)
    net = UNet2Sigmoid(hidden=4)
    path = tmp_path / "det.pth"
    result = fit_deterministic(net, (image[:16], mask[:16], ignore[:16]), (image[16:], mask[16:], ignore[16:]),
                               epochs=3, batch_size=4, lr=2e-2, progress=False, checkpoint=path,
                               calibrate=True)
    t = result.temperature
    assert math.isfinite(t) and t > 0 and t != 1.0
    assert result.history["temperature"] == t
    loaded = load_model(path)
    assert loaded.temperature == pytest.approx(t)
    x = image[16]
    with torch.no_grad():
        z = loaded.model.eval().logits(torch.from_numpy(x)[None, None])[0, 0].double()
    expected = torch.sigmoid(z / t).numpy()
    np.testing.assert_allclose(predict(loaded, x, ignore=ignore[16]).prob, expected, atol=1e-5)
    np.testing.assert_allclose(predict(loaded, x, ignore=ignore[16], temperature=1.0).prob,
                               torch.sigmoid(z).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        predict(loaded, x, temperature=0.0)


def test_vi_temperature_is_fitted_and_used(tiny_set):
    image, mask, ignore = tiny_set
    result = fit_svi(UNet2SigmoidVI(hidden=4), (image[:16], mask[:16], ignore[:16]),
                     (image[16:], mask[16:], ignore[16:]), epochs=2, batch_size=4, lr=2e-2, progress=False, calibrate=True)
    t = result.temperature
    assert math.isfinite(t) and t > 0 and t != 1.0
    hot = predict(result, image[16], ignore=ignore[16], T=4, temperature=1.0)
    tempered = predict(result, image[16], ignore=ignore[16], T=4)
    assert not np.allclose(hot.prob, tempered.prob)
    np.testing.assert_allclose(tempered.entropy, tempered.aleatoric + tempered.epistemic, atol=1e-6)


def test_calibration_failure_keeps_temperature_1(tiny_set):
    image, mask, ignore = tiny_set
    no_crs = (image[16:], np.zeros_like(mask[16:]), ignore[16:])
    torch.manual_seed(0)
    with pytest.warns(RuntimeWarning, match="no temperature fitted"):
        result = fit_deterministic(UNet2Sigmoid(hidden=4), (image[:16], mask[:16], ignore[:16]), no_crs,
                                   epochs=1, batch_size=4, progress=False, calibrate=True)
    assert result.temperature == 1.0


def test_study_predictor_applies_the_temperature(tiny_set):
    from cosmiq_pyro.evaluation.peers import ModelPredictor
    from cosmiq_pyro.models.results import FitResult

    image, _, ignore = tiny_set
    torch.manual_seed(0)
    result = FitResult(model=UNet2Sigmoid(hidden=4).eval(), temperature=2.0)
    np.testing.assert_allclose(ModelPredictor(result).predict(image[0], ignore=ignore[0]).prob,
                               predict(result, image[0], ignore=ignore[0]).prob, atol=1e-6)
    assert not np.allclose(predict(result, image[0], ignore=ignore[0]).prob,
                           predict(result.model, image[0], ignore=ignore[0]).prob)


def test_resumed_fit_keeps_the_initial_widths(tiny_set, tmp_path):
    image, mask, ignore = (a[:8] for a in tiny_set)
    path = tmp_path / "vi.pth"
    common = dict(batch_size=4, init_scale=2e-3, scale_lr=0.25, progress=False, checkpoint=path)
    fit_svi(UNet2SigmoidVI(hidden=4), (image, mask, ignore), epochs=1, **common)
    resumed = fit_svi(UNet2SigmoidVI(hidden=4), (image, mask, ignore), epochs=2, resume=True, **common)
    assert [e["epoch"] for e in resumed.history["epochs"]] == [1, 2]
    assert resumed.history["init"]["sigma_median"]["inc.conv1.weight"] == pytest.approx(2e-3, rel=1e-4)
    assert load_model(path).history["init"]["sigma_median"]["head.weight"] == pytest.approx(2e-3, rel=1e-4)
