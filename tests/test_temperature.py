"""Temperature scaling: a known miscalibration is undone, calibrated inputs are left alone."""
import math

import numpy as np
import pytest

from cosmiq_pyro.evaluation.metrics import ece, nll
from cosmiq_pyro.inference.temperature import fit_temperature, tempered_nll


def _sigmoid(u):
    return 1.0 / (1.0 + np.exp(-u))


def _draw(true_t, n=200_000, seed=0):
    """Logits z ~ N(0, 3^2) and labels drawn from sigmoid(z / true_t): the model's logits are
    ``true_t`` times too confident."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, n)
    y = rng.random(n) < _sigmoid(z / true_t)
    return z, y


def test_hand_computed_nll():
    # one pixel, z = 0, y = 1: -log(1/2)
    assert tempered_nll([0.0], [1]) == pytest.approx(math.log(2), rel=1e-12)
    # z = 2, T = 2, y = 1: -log sigmoid(1) = log(1 + e^-1); y = 0: -log(1 - sigmoid(1)) = log(1 + e)
    assert tempered_nll([2.0], [True], 2.0) == pytest.approx(math.log1p(math.exp(-1)), rel=1e-12)
    assert tempered_nll([2.0], [0], 2.0) == pytest.approx(math.log1p(math.e), rel=1e-12)
    # two draws of one pixel, logits 0 and a huge one, y = 0: -log((1/2 + 0) / 2) = log 4
    assert tempered_nll([[0.0], [800.0]], [0]) == pytest.approx(math.log(4), rel=1e-9)


def test_overconfident_logits_recover_t2_and_improve_calibration():
    z, y = _draw(2.0)
    t = fit_temperature(z, y)
    assert t == pytest.approx(2.0, rel=0.05)
    before, after = _sigmoid(z), _sigmoid(z / t)
    assert nll(after, y) < nll(before, y) - 0.01
    assert ece(after, y) < 0.5 * ece(before, y)
    assert ece(after, y) < 0.01


def test_calibrated_logits_keep_t1():
    z, y = _draw(1.0, seed=1)
    assert fit_temperature(z, y) == pytest.approx(1.0, rel=0.05)


def test_underconfident_logits_get_t_below_1():
    z, y = _draw(0.5, seed=2)
    assert fit_temperature(z, y) == pytest.approx(0.5, rel=0.05)


def test_draws_identical_to_one_draw():
    z, y = _draw(2.0, n=20_000, seed=3)
    assert fit_temperature(np.stack([z, z, z]), y) == pytest.approx(fit_temperature(z, y), rel=1e-3)


def test_per_draw_miscalibration_recovered():
    # S = 4 draws scattered around z; labels from the mean over draws of sigmoid(z_s / 2)
    rng = np.random.default_rng(4)
    z = rng.normal(0.0, 3.0, 100_000)
    draws = z + rng.normal(0.0, 1.0, (4, z.size))
    y = rng.random(z.size) < _sigmoid(draws / 2.0).mean(0)
    assert fit_temperature(draws, y) == pytest.approx(2.0, rel=0.05)


def test_ignored_pixels_do_not_count():
    z, y = _draw(2.0, n=50_000, seed=5)
    wild = np.concatenate([z, np.full(50_000, 10.0)])  # confident CR calls ...
    labels = np.concatenate([y, np.zeros(50_000, bool)])  # ... all wrong, but ignored
    ignore = np.arange(wild.size) >= z.size
    assert fit_temperature(wild, labels, ignore=ignore) == pytest.approx(fit_temperature(z, y), rel=1e-6)
    assert tempered_nll(wild, labels, 2.0, ignore=ignore) == pytest.approx(tempered_nll(z, y, 2.0), rel=1e-12)


def test_torch_tensors_accepted():
    torch = pytest.importorskip("torch")
    z, y = _draw(2.0, n=20_000, seed=6)
    assert fit_temperature(torch.from_numpy(z).float(), torch.from_numpy(y)) == pytest.approx(
        fit_temperature(z.astype(np.float32), y), rel=1e-4)


@pytest.mark.parametrize("logits, labels, match", [
    ([0.5, 1.0], [1, 1], "one class"),
    ([0.5, 1.0, 2.0], [1, 0], "shape"),
    ([np.nan, 1.0], [1, 0], "finite"),
    ([0.5, 1.0], [2, 0], "0/1"),
])
def test_bad_input(logits, labels, match):
    with pytest.raises(ValueError, match=match):
        fit_temperature(logits, labels)


@pytest.mark.parametrize("temperature, error", [(0.0, ValueError), (-1.0, ValueError), (float("inf"), ValueError),
                                                (True, TypeError), ("1.5", TypeError)])
def test_bad_temperature(temperature, error):
    with pytest.raises(error, match="temperature"):
        tempered_nll([0.0, 1.0], [0, 1], temperature)


def test_edge_of_bounds_reported():
    # labels that disagree with the sign of every logit: T -> infinity (or negative) fits best
    with pytest.raises(ValueError, match="edge"):
        fit_temperature([5.0, -5.0, 4.0, -4.0], [0, 1, 0, 1])
