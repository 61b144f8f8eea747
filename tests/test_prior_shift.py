"""The prior-shift correction (`cosmiq_pyro.inference.prior_shift`): a model trained at ``k`` times
the real CR rate predicts at the real rate."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.special import expit, logit

import cosmiq_pyro as cq
from cosmiq_pyro.inference.moments import MomentPass
from cosmiq_pyro.inference.prior_shift import (SECTION, logit_shift, prior_shift_state, with_prior_shift,
                                               write_prior_shift)
from cosmiq_pyro.io.checkpoint import read_payload, update_sections, weights_sha256
from cosmiq_pyro.models.gaussian_moments import sigmoid_moments
from cosmiq_pyro.models.registry import PUBLISHED_DIR, load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_shift_is_log_of_the_rate_ratio():
    assert prior_shift_state(50.0)["logit_shift"] == pytest.approx(-3.912023005428146, abs=1e-15)  # -ln 50
    assert prior_shift_state(50.0, 50.0)["logit_shift"] == 0.0
    assert prior_shift_state(2.0, 8.0) == {"logit_shift": pytest.approx(math.log(4.0)), "train_cr_rate_multiplier": 2.0,
                                            "use_cr_rate_multiplier": 8.0}
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="train_rate_multiplier"):
            prior_shift_state(bad)
    with pytest.raises(TypeError, match="use_rate_multiplier"):
        prior_shift_state(50.0, True)


@pytest.mark.parametrize("pi_train,k", [(0.0096, 50.0), (0.05, 10.0), (1e-3, 4.0)])
def test_the_shift_turns_the_bayes_posterior_at_the_training_prevalence_into_the_one_at_the_real_prevalence(pi_train, k):
    """Two Gaussian classes (not CR: N(0, 1), CR: N(2, 1)): the exact posterior logit at
    prevalence pi is 2x - 2 + logit(pi) (hand-derived).  Shifting the training-prevalence logit
    by -log k gives the real-prevalence logit to within pi_train (the documented bound)."""
    x = np.linspace(-4.0, 8.0, 101)
    at_train = 2 * x - 2 + logit(pi_train)
    at_real = 2 * x - 2 + logit(pi_train / k)
    shifted = at_train + prior_shift_state(k)["logit_shift"]
    assert np.abs(shifted - at_real).max() <= pi_train


def test_a_model_without_the_section_has_none_and_a_bad_section_is_refused():
    net = cq.UNet2Sigmoid(hidden=4)
    assert logit_shift(net) == 0.0 and logit_shift(cq.FitResult(model=net)) == 0.0
    with pytest.raises(ValueError, match="'prior_shift' section must be a dict"):
        logit_shift(cq.FitResult(model=net, sections={SECTION: -3.9}))
    with pytest.raises(ValueError, match="logit_shift must be finite"):
        logit_shift(cq.FitResult(model=net, sections={SECTION: {"logit_shift": float("nan")}}))


@pytest.fixture(scope="module")
def vi(models):
    return load_model(models["vi"])


def _shifted(result, k):
    return with_prior_shift(dataclasses.replace(result, sections=dict(result.sections)), k)


@pytest.mark.parametrize("tau", [1.0, 1.7])
def test_predict_adds_the_shift_to_every_tempered_draw(vi, tau):
    """One posterior draw (T = 1) or the deterministic twin: p = sigmoid(logit(p without the shift) + shift)."""
    image = np.random.default_rng(3).normal(100, 10, (32, 32)).astype(np.float32)
    image[5, 3:9] += 900.0
    base = dataclasses.replace(vi, temperature=tau)
    plain = cq.predict(base, image, T=1, seed=4, novelty=False)
    shifted = cq.predict(_shifted(base, 50.0), image, T=1, seed=4, novelty=False)
    expected = expit(logit(plain.prob.astype(np.float64)) - math.log(50.0))
    np.testing.assert_allclose(shifted.prob, expected, rtol=2e-4, atol=1e-7)
    twin = cq.FitResult(model=cq.UNet2Sigmoid(hidden=4).eval(), temperature=tau)
    plain_twin = cq.predict(twin, image, novelty=False)
    shifted_twin = cq.predict(_shifted(twin, 0.25), image, novelty=False)  # used at 4x the training rate
    np.testing.assert_allclose(shifted_twin.prob, expit(logit(plain_twin.prob.astype(np.float64)) + math.log(4.0)),
                               rtol=2e-4, atol=1e-7)


def test_the_shift_lowers_every_mc_probability_and_keeps_the_entropy_split(vi):
    image = np.random.default_rng(5).normal(100, 10, (32, 32)).astype(np.float32)
    plain = cq.predict(vi, image, T=8, seed=1, novelty=False)
    shifted = cq.predict(_shifted(vi, 50.0), image, T=8, seed=1, novelty=False)
    assert (shifted.prob < plain.prob).all()
    np.testing.assert_allclose(shifted.aleatoric + shifted.epistemic, shifted.entropy, atol=1e-6)
    assert (shifted.epistemic >= 0).all()


def test_the_moment_pass_shifts_the_logit_mean_only(vi):
    x = torch.from_numpy(np.random.default_rng(6).normal(100, 10, (1, 1, 16, 16)).astype(np.float32))
    m, v = MomentPass(vi).logit_moments(x)
    shifted = _shifted(vi, 20.0)
    m2, v2 = MomentPass(shifted).logit_moments(x)
    torch.testing.assert_close(m2, m - math.log(20.0))
    torch.testing.assert_close(v2, v)
    prob, _ = sigmoid_moments(m.double() - math.log(20.0), v.double(), 32)
    np.testing.assert_allclose(cq.predict(shifted, x[0, 0].numpy(), method="moments", novelty=False).prob,
                               prob[0, 0].float().numpy(), atol=1e-6)


def test_the_section_travels_in_the_checkpoint_and_bad_ones_are_refused(models, tmp_path):
    copy = update_sections(models["vi"], {SECTION: prior_shift_state(50.0)}, out=tmp_path / "s.pth")
    loaded = load_model(copy)
    assert logit_shift(loaded) == pytest.approx(-math.log(50.0))
    assert "prior shift -3.912 (logit)" in loaded.summary()
    for bad in ({"logit_shift": float("nan")}, {"logit_shift": "large"}, {"shift": -1.0}, -3.9):
        with pytest.raises(ValueError, match="prior_shift"):
            update_sections(copy, {SECTION: bad}, out=tmp_path / "bad.pth")
        assert not (tmp_path / "bad.pth").exists()


def test_write_prior_shift_reads_the_cards_rate_and_keeps_the_weights(models, tmp_path):
    shipped = PUBLISHED_DIR / "DECam-VI.pth"
    out = write_prior_shift(shipped, use_rate_multiplier=50.0, out=tmp_path / "d.pth")
    before, after = read_payload(shipped), read_payload(tmp_path / "d.pth")
    assert out["weights_sha256"] == weights_sha256(before) == weights_sha256(after)
    assert after["sections"][SECTION] == {"logit_shift": 0.0, "train_cr_rate_multiplier": 50.0,
                                          "use_cr_rate_multiplier": 50.0}
    assert after["sections"]["card"]["validation"]["prior_logit_shift"] == 0.0
    with pytest.raises(ValueError, match="train_rate_multiplier: .* has no model card recipe"):
        write_prior_shift(models["vi"], out=tmp_path / "v.pth")
    assert not (tmp_path / "v.pth").exists()


def test_decam_vi_predicts_at_the_real_rate_and_the_hst_models_need_no_shift():
    """DECam-VI was trained at 50x DECam's real CR rate (its card's recipe): it carries -ln 50;
    the HST models were trained at the real rate and carry none."""
    decam = cq.load("DECam-VI")
    assert decam.card["recipe"]["cr_rate_multiplier"] == 50.0
    assert logit_shift(decam) == pytest.approx(-math.log(50.0)) == decam.card["validation"]["prior_logit_shift"]
    for name in ("ACS-WFC-VI", "WFC3-UVIS-VI"):
        model = cq.load(name)
        assert model.card is None or model.card["recipe"]["cr_rate_multiplier"] == 1.0
        assert SECTION not in model.sections
