"""Training: both fit functions share one loop, lower the loss and learn to find CRs."""
import numpy as np
import pytest
import torch

from cosmiq_pyro import UNet2Sigmoid, UNet2SigmoidVI, fit_deterministic, fit_svi, predict
from cosmiq_pyro.inference.fit import masked_bce


def split(data, n_val=6):
    image, mask, ignore = data
    return (image[n_val:], mask[n_val:], ignore[n_val:]), (image[:n_val], mask[:n_val], ignore[:n_val])


def detection_rates(model, images, masks, ignores, **kw):
    """(TPR, FPR) in % at threshold 0.5 over all non-ignored pixels."""
    tp = fp = pos = neg = 0
    for img, msk, ign in zip(images, masks, ignores):
        p = predict(model, img, ignore=ign, **kw).prob
        valid = ~ign
        tp += np.sum((p > 0.5) & msk & valid)
        fp += np.sum((p > 0.5) & ~msk & valid)
        pos += np.sum(msk & valid)
        neg += np.sum(~msk & valid)
    return 100 * tp / pos, 100 * fp / neg


@pytest.fixture(scope="module")
def trained_pair(tiny_set):
    train, val = split(tiny_set)
    torch.manual_seed(0)  # fit_deterministic trains the net it is given: seed its initialisation
    det = fit_deterministic(UNet2Sigmoid(hidden=8), train, val, epochs=12, batch_size=6, lr=2e-2,
                            seed=0, progress=False)
    vi = fit_svi(UNet2SigmoidVI(hidden=8), train, val, epochs=12, batch_size=6, lr=2e-2, seed=0,
                 progress=False, init_scale=1e-3, kl_beta=1e-4)
    return det, vi, val


def test_masked_bce_by_hand():
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 5.0]]]])
    y = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    ignore = torch.tensor([[[[0.0, 0.0], [0.0, 1.0]]]])
    # valid pixels: -log s(0) = log 2; -log(1 - s(2)) = log(1 + e^2); -log(1 - s(-1)) = log(1 + e^-1)
    expected = (np.log(2) + np.log1p(np.exp(2)) + np.log1p(np.exp(-1))) / 3
    assert masked_bce(logits, y, ignore).item() == pytest.approx(expected, rel=1e-6)
    assert masked_bce(logits, y, torch.ones_like(ignore)).item() == 0.0


def test_both_fits_lower_the_loss_and_beat_chance(trained_pair):
    det, vi, (image, mask, ignore) = trained_pair
    for result in (det, vi):
        epochs = result.history["epochs"]
        assert len(epochs) == 12
        assert epochs[-1]["train_loss"] < 0.5 * epochs[0]["train_loss"]
        assert set(epochs[0]) >= {"epoch", "train_loss", "val_loss", "val_tpr", "val_fpr", "lr", "seconds"}
        assert len(result.history["loss"]) == 12 * 3  # 18 training images / batch 6
    tpr, fpr = detection_rates(det, image, mask, ignore)
    assert tpr > 50 and fpr < 2, (tpr, fpr)
    tpr, fpr = detection_rates(vi, image, mask, ignore, T=4)
    assert tpr > 50 and fpr < 2, (tpr, fpr)
    # the reported best epoch is the one with the lowest validation loss
    for result in (det, vi):
        losses = [e["val_loss"] for e in result.history["epochs"]]
        assert result.history["best_epoch"] == int(np.argmin(losses)) + 1


def test_same_seed_same_history(tiny_set):
    train, _ = split(tiny_set)
    runs = [fit_svi(UNet2SigmoidVI(hidden=4), train, epochs=1, batch_size=6, seed=5, progress=False)
            for _ in range(2)]
    assert runs[0].history["loss"] == runs[1].history["loss"]
    other = fit_svi(UNet2SigmoidVI(hidden=4), train, epochs=1, batch_size=6, seed=6, progress=False)
    assert other.history["loss"] != runs[0].history["loss"]


def test_vi_initialised_from_deterministic_reproduces_it(trained_pair):
    det, _, (image, _, ignore) = trained_pair
    vi = fit_svi(UNet2SigmoidVI(hidden=8), split(trained_pair[2], 2)[0], epochs=0, init_from=det.model,
                 init_scale=1e-6, progress=False)
    p_det = predict(det, image[0]).prob
    p_vi = predict(vi, image[0], T=4).prob
    np.testing.assert_allclose(p_vi, p_det, atol=1e-3)
    # init_from a state dict works the same way
    vi2 = fit_svi(UNet2SigmoidVI(hidden=8), split(trained_pair[2], 2)[0], epochs=0,
                  init_from=det.model.state_dict(), init_scale=1e-6, progress=False)
    np.testing.assert_allclose(predict(vi2, image[0], T=2).prob, p_det, atol=1e-3)


def test_two_phase_schedule_freezes_batch_norm_and_lowers_lr(tiny_set):
    train, val = split(tiny_set)
    seen = {}

    class Spy(UNet2Sigmoid):
        def logits(self, x):
            seen.setdefault(self.inc.norm1.training, []).append(self.inc.norm1.running_mean.clone())
            return super().logits(x)

    result = fit_deterministic(Spy(hidden=4), train, val, epochs=3, phase0_epochs=1, batch_size=6,
                               lr=4e-3, progress=False, lr_decay_factor=None)
    lrs = [e["lr"] for e in result.history["epochs"]]
    assert lrs == pytest.approx([4e-3, 4e-3 / 2.5, 4e-3 / 2.5])
    assert [e["phase"] for e in result.history["epochs"]] == [0, 1, 1]
    frozen = seen[False]  # calls with norm layers in eval mode: phase 1 training and validation
    assert all(torch.equal(frozen[0], m) for m in frozen)


def test_plateau_scheduler_follows_the_current_optimizer(tiny_set):
    """deepCR's bug: its scheduler stays bound to the phase-0 optimiser.  Ours decays phase 1."""
    train, val = split(tiny_set)
    result = fit_deterministic(UNet2Sigmoid(hidden=4), train, val, epochs=6, phase0_epochs=1, batch_size=6,
                               lr=1e-6, progress=False, lr_decay_factor=0.5, lr_decay_patience=0)
    lrs = [e["lr"] for e in result.history["epochs"][1:]]
    assert lrs[-1] < lrs[0]  # with lr 1e-6 nothing improves: the phase-1 lr must decay


def test_checkpoint_written_each_improving_epoch(tiny_set, tmp_path):
    from cosmiq_pyro import load
    train, val = split(tiny_set)
    path = tmp_path / "m.pth"
    result = fit_deterministic(UNet2Sigmoid(hidden=4), train, val, epochs=2, batch_size=6, progress=False,
                               checkpoint=path)
    loaded = load(path)
    assert loaded.history["best_epoch"] == result.history["best_epoch"]
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left behind


def test_wrong_model_kind_and_bad_arguments(tiny_set):
    train, _ = split(tiny_set)
    with pytest.raises(TypeError, match="fit_svi"):
        fit_deterministic(UNet2SigmoidVI(hidden=4), train, epochs=1)
    with pytest.raises(TypeError, match="fit_deterministic"):
        fit_svi(UNet2Sigmoid(hidden=4), train, epochs=1)
    with pytest.raises(ValueError, match="kl_beta"):
        fit_svi(UNet2SigmoidVI(hidden=4), train, epochs=1, kl_beta=0)
    with pytest.raises(ValueError, match="epochs"):
        fit_deterministic(UNet2Sigmoid(hidden=4), train, epochs=-1)
    with pytest.raises(ValueError, match="phase0_epochs"):
        fit_deterministic(UNet2Sigmoid(hidden=4), train, epochs=2, phase0_epochs=3)
