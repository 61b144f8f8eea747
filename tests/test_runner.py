"""The training runner: resume, history merging, best weights, checkpoint writing."""
import numpy as np
import pytest
import torch

from cosmiq_pyro import UNet2Sigmoid, fit_deterministic, load, predict
from cosmiq_pyro.inference.runner import TrainingRun


def data(seed):
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 10, (6, 16, 16)).astype(np.float32)
    return image, image > 112, None


def test_resume_records_every_epoch_and_keeps_the_best_weights(tmp_path):
    path = tmp_path / "m.pth"
    train, val = data(0), data(1)
    torch.manual_seed(0)
    first = fit_deterministic(UNet2Sigmoid(hidden=2), train, val, epochs=2, batch_size=3, lr=1e-2,
                              checkpoint=path, progress=False)
    best_epoch = first.history["best_epoch"]
    best_loss = first.history["epochs"][best_epoch - 1]["val_loss"]
    # a wild learning rate: the continued epochs are worse than the first run's best
    cont = fit_deterministic(UNet2Sigmoid(hidden=2), train, val, epochs=4, batch_size=3, lr=100.0,
                             checkpoint=path, resume=True, progress=False)
    assert [e["epoch"] for e in cont.history["epochs"]] == [1, 2, 3, 4]
    assert all(e["val_loss"] > best_loss for e in cont.history["epochs"][2:])
    assert cont.history["best_epoch"] == best_epoch
    assert cont.history["loss"][:len(first.history["loss"])] == first.history["loss"]
    saved = load(path)
    assert saved.history["best_epoch"] == best_epoch and len(saved.history["epochs"]) == 4
    image = data(2)[0][0]
    np.testing.assert_array_equal(predict(saved, image).prob, predict(first, image).prob)
    np.testing.assert_array_equal(predict(cont, image).prob, predict(first, image).prob)
    # nothing left to run: the checkpoint comes back as it is
    again = fit_deterministic(UNet2Sigmoid(hidden=2), train, val, epochs=4, batch_size=3, checkpoint=path,
                              resume=True, progress=False)
    assert len(again.history["epochs"]) == 4
    np.testing.assert_array_equal(predict(again, image).prob, predict(first, image).prob)


def test_runner_arguments():
    with pytest.raises(ValueError, match="resume=True needs a checkpoint"):
        TrainingRun(None, resume=True)
    with pytest.raises(ValueError, match="save_after"):
        TrainingRun(None, save_after=-1)
