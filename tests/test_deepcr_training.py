"""The deepCR-style `train` class: the issue's usage as written, deepCR's keywords, resume, Ctrl-C."""
import re

import numpy as np
import pytest
from torch.utils.data import Dataset

from cosmiq_pyro import load, predict
from cosmiq_pyro.data import DarkMixDataset, PairDataset, SimulatedDataset
from cosmiq_pyro.training import train

from conftest import make_tiny_set


@pytest.fixture(scope="module")
def train_dirs(tmp_path_factory):
    """20 deepCR 'pair' files (3, 32, 32) = [image, mask, ignore], written by hand."""
    folder = tmp_path_factory.mktemp("pairs")
    image, mask, ignore = make_tiny_set(n=20, size=32, seed=3)
    paths = []
    for i in range(len(image)):
        path = folder / f"{i + 1:03d}_pair.npy"
        np.save(path, np.stack([image[i], mask[i], ignore[i]]).astype(np.float32))
        paths.append(str(path))
    return paths


def test_issue_usage_runs_as_written(train_dirs, tmp_path, monkeypatch):
    """Issue 5 section 1, with the package prefix; only the sizes are tiny (epoch=1, hidden=4)."""
    monkeypatch.chdir(tmp_path)
    image = np.load(train_dirs[0])[0]

    from cosmiq_pyro.training import train
    trainer = train(image=train_dirs, mode='pair', name='ACS-WFC-baseline', hidden=4, epoch=1, bayesian=False)
    trainer.train()
    trainer_vi = train(image=train_dirs, mode='pair', name='ACS-WFC-VI', hidden=4, epoch=1,
                       bayesian=True, kl_beta=1e-6)
    trainer_vi.train()

    from cosmiq_pyro.model import deepCR
    mdl = deepCR(mask="ACS-WFC-VI.pth", device="CPU")
    prob_mask, entropy = mdl.clean_vi(image, T=16, return_entropy=True)
    binary_mask = (prob_mask > 0.5).astype("uint8")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["ACS-WFC-VI.pth", "ACS-WFC-baseline.pth"]
    assert mdl.bayesian and not load("ACS-WFC-baseline.pth").bayesian
    assert prob_mask.shape == entropy.shape == binary_mask.shape == image.shape
    assert binary_mask.dtype == np.uint8 and set(np.unique(binary_mask)) <= {0, 1}
    assert np.all((entropy >= 0) & (entropy <= np.log(2) + 1e-6))


def test_deepcr_split_phases_and_best_epoch(train_dirs, tmp_path):
    trainer = train(image=train_dirs, name="m", hidden=4, epoch=3, batch_size=6, lr=2e-2, directory=tmp_path,
                    verbose=False)
    # deepCR: 90/10 split (int(20 * 0.9) = 18 training files), epoch_phase0 = int(0.4 * 3 + 0.5) = 1
    assert (len(trainer.train_data), len(trainer.val_data)) == (18, 2)
    assert set(trainer.train_data.indices).isdisjoint(trainer.val_data.indices)
    assert trainer.n_epochs_phase0 == 1
    assert train(image=train_dirs, epoch=50, verbose=False).n_epochs_phase0 == 20
    result = trainer.train()
    epochs = result.history["epochs"]
    assert [e["phase"] for e in epochs] == [0, 1, 1]
    assert epochs[1]["lr"] == pytest.approx(2e-2 / 2.5)  # phase 1 at lr / 2.5
    assert result.history["best_epoch"] == int(np.argmin([e["val_loss"] for e in epochs])) + 1
    assert trainer.validation_loss == [e["val_loss"] for e in epochs] and trainer.epoch_mask == 3
    # the file holds the model of the best epoch, with the whole history
    loaded = load(tmp_path / "m.pth")
    assert len(loaded.history["epochs"]) == 3
    image = np.load(train_dirs[0])[0]
    np.testing.assert_array_equal(predict(loaded, image).prob, predict(result, image).prob)
    assert trainer.plot_loss().get_xlabel() == "epoch"


def test_arrays_sky_augmentation_and_simulate_mode(tmp_path):
    image, mask, ignore = make_tiny_set(n=10, size=16, seed=4)
    trainer = train(image=image, mask=mask, ignore=ignore, sky=np.full(10, 100.0), aug_sky=(1.0, 1.0),
                    hidden=4, epoch=1, directory=tmp_path, verbose=False)
    x, _, _ = trainer.train_data[0]
    original = image[trainer.train_data.indices[0]]
    np.testing.assert_allclose(x[0].numpy(), original + 100.0)  # sky * U(1, 1) added
    x_val, _, _ = trainer.val_data[0]
    np.testing.assert_array_equal(x_val[0].numpy(), image[trainer.val_data.indices[0]])  # not augmented
    frames = SimulatedDataset(4, size=32, filters=("F606W",), seed=2)
    sim = train(image=frames, mode="synthetic", name="sim", hidden=4, epoch=1, batch_size=2, directory=tmp_path,
                verbose=False)
    assert (len(sim.train_data), len(sim.val_data)) == (3, 1)
    assert sim.train().history["epochs"][0]["epoch"] == 1
    assert load(tmp_path / "sim.pth").model.hidden == 4


def test_resume_continues_the_schedule(tmp_path):
    """A 5-epoch run (3 in phase 0) stopped after 2 epochs; --resume runs the 3 left, phase 0 first."""
    image, mask, ignore = make_tiny_set(n=10, size=16, seed=6)
    data = _Interrupting(PairDataset(image, mask, ignore), after=2 * 10 + 1)  # Ctrl-C early in epoch 3
    options = dict(name="m", hidden=4, epoch=5, epoch_phase0=3, batch_size=3, directory=tmp_path, verbose=False)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        first = train(image=data, **options).train()
    assert first.interrupted and len(first.history["epochs"]) == 2
    data.after = 10 ** 9
    result = train(image=data, resume=True, **options).train()
    epochs = result.history["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5]
    assert [e["phase"] for e in epochs] == [0, 0, 0, 1, 1]
    saved = load(tmp_path / "m.pth")
    assert [e["epoch"] for e in saved.history["epochs"]] == [1, 2, 3, 4, 5]
    assert saved.history["best_epoch"] == int(np.argmin([e["val_loss"] for e in epochs])) + 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]  # no resume file left
    # a continued run that does worse (a wild learning rate) keeps the best weights and still
    # records its epoch, in the result and in the file (issue 14, bug 2)
    worse = train(image=data, resume=True, lr=50.0, **dict(options, epoch=6)).train()
    assert [e["epoch"] for e in worse.history["epochs"]] == [1, 2, 3, 4, 5, 6]
    assert worse.history["epochs"][5]["val_loss"] > min(e["val_loss"] for e in epochs)
    assert worse.history["best_epoch"] == saved.history["best_epoch"]
    np.testing.assert_array_equal(predict(worse, image[0]).prob, predict(saved, image[0]).prob)
    reread = load(tmp_path / "m.pth")
    assert len(reread.history["epochs"]) == 6 and reread.history["best_epoch"] == saved.history["best_epoch"]
    np.testing.assert_array_equal(predict(reread, image[0]).prob, predict(saved, image[0]).prob)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]
    with pytest.raises(ValueError, match="kind: checkpoint 'UNet2Sigmoid', model 'UNet2SigmoidVI'"):
        train(image=data, resume=True, bayesian=True, **options).train()


def test_vi_from_a_deterministic_checkpoint(train_dirs, tmp_path):
    det = train(image=train_dirs, name="det", hidden=4, epoch=2, lr=2e-2, directory=tmp_path, verbose=False).train()
    vi = train(image=train_dirs, name="vi", hidden=4, epoch=1, bayesian=True, init_from=tmp_path / "det.pth",
               init_scale=1e-6, lr=1e-9, directory=tmp_path, verbose=False, T_val=2).train()
    image = np.load(train_dirs[1])[0]
    # means start at the twin's weights and a near-zero step keeps them there
    np.testing.assert_allclose(predict(vi, image, T=2).prob, predict(det, image).prob, atol=1e-3)


class _Interrupting(Dataset):
    """Raises KeyboardInterrupt (as Ctrl-C would) when item ``after`` is read."""

    def __init__(self, base, after):
        self.base, self.after, self.reads = base, after, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads > self.after:
            raise KeyboardInterrupt
        return self.base[i]


def test_ctrl_c_keeps_the_last_good_checkpoint(tmp_path):
    image, mask, ignore = make_tiny_set(n=10, size=16, seed=5)
    data = _Interrupting(PairDataset(image, mask, ignore), after=10 ** 9)
    trainer = train(image=data, name="m", hidden=4, epoch=4, batch_size=3, directory=tmp_path, verbose=False)
    # one epoch = 9 training reads + 1 validation read; interrupt in the middle of epoch 2
    data.after = 10 + 4
    with pytest.warns(RuntimeWarning, match="interrupted"):
        result = trainer.train()
    assert result.interrupted
    assert len(result.history["epochs"]) == 1
    saved = load(tmp_path / "m.pth")
    assert len(saved.history["epochs"]) == 1
    np.testing.assert_array_equal(predict(saved, image[0]).prob, predict(result, image[0]).prob)
    # interrupted before any epoch completes: nothing is written
    data.reads, data.after = 0, 2
    with pytest.warns(RuntimeWarning, match="interrupted"):
        train(image=data, name="none", hidden=4, epoch=2, batch_size=3, directory=tmp_path, verbose=False).train()
    assert not (tmp_path / "none.pth").exists()


def test_bad_arguments(train_dirs, tmp_path):
    with pytest.raises(ValueError, match="mode must be"):
        train(image=train_dirs, mode="other")
    with pytest.raises(ValueError, match="needs bayesian=True"):
        train(image=train_dirs, init_from=tmp_path / "x.pth")
    with pytest.raises(ValueError, match="makes its own masks"):
        train(image=4, mode="synthetic", mask=np.zeros((4, 8, 8)))
    with pytest.raises(TypeError, match="number of frames"):
        train(image="frames", mode="synthetic")
    with pytest.raises(TypeError, match="mode='synthetic'"):  # the old meaning of 'simulate'
        train(image=4, mode="simulate")
    with pytest.raises(ValueError, match="needs mask= the dark frames"):
        train(image=np.zeros((4, 8, 8)), mode="simulate")
    with pytest.raises(TypeError, match="norm_layer="):
        train(image=train_dirs, norm="group")
    with pytest.raises(ValueError, match="plot_every"):
        train(image=train_dirs, plot_every=0)
    with pytest.raises(TypeError, match="list of .npy files"):
        train(image=train_dirs[0])
    with pytest.raises(ValueError, match="epoch_phase0"):
        train(image=train_dirs, epoch=3, epoch_phase0=4)
    with pytest.raises(FileNotFoundError):
        train(image=[str(tmp_path / "missing.npy")] * 3)
    with pytest.raises(ValueError, match="needs sky"):
        train(image=np.zeros((4, 8, 8)), mask=np.zeros((4, 8, 8)), aug_sky=(0, 1))


# ---------------------------------------------------------------- deepCR's methods and keywords


@pytest.mark.parametrize("bayesian", [False, True])
def test_deepcr_train_test_as_written(bayesian, tmp_path, monkeypatch):
    """deepCR 0.3.1's own test_train (deepCR/test/test_train.py), sizes shrunk, for both twins:
    train(), then save() / load(filename) / train_phase1(1) -> epoch_mask == 3."""
    monkeypatch.chdir(tmp_path)
    inputs = np.zeros((6, 32, 32))
    sky = np.ones(6)
    trainer = train(image=inputs, mask=inputs, sky=sky, mode='pair', aug_sky=[-0.9, 10], verbose=False, epoch=2,
                    save_after=10, hidden=4, bayesian=bayesian)
    trainer.train()
    filename = trainer.save()
    trainer.load(filename)
    trainer.train_phase1(1)
    assert trainer.epoch_mask == 3
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}_model_epoch2", filename)  # deepCR's {date}_{name}_epoch{N}
    epochs = load(tmp_path / "model.pth").history["epochs"]
    assert [e["phase"] for e in epochs] == [0, 1, 1]  # epoch_phase0 = int(0.4 * 2 + 0.5) = 1
    # phase 1 runs a fresh optimiser at lr / 2.5 (deepCR's scheduler stays bound to the old one)
    assert epochs[2]["lr"] == pytest.approx(trainer.lr / 2.5)
    assert trainer.validation_loss == [e["val_loss"] for e in epochs]
    assert load(tmp_path / f"{filename}.pth").bayesian == bayesian


def test_deepcr_train_sim_test_as_written(tmp_path, monkeypatch):
    """deepCR 0.3.1's own test_train_sim: mode='simulate' with image and dark .npy lists."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "image").mkdir()
    (tmp_path / "dark").mkdir()
    var = np.zeros((2, 32, 32))
    for i in range(6):
        np.save(tmp_path / "image" / f"{i}.npy", var)
        np.save(tmp_path / "dark" / f"{i}.npy", var)
    image_list = sorted(str(p) for p in (tmp_path / "image").iterdir())
    dark_list = sorted(str(p) for p in (tmp_path / "dark").iterdir())
    trainer = train(image=image_list, mask=dark_list, mode='simulate', sky=100, aug_sky=[-0.9, 10], aug_img=[0.5, 5],
                    n_mask_train=2, n_mask_val=1, epoch=2, verbose=False, hidden=4)
    assert isinstance(trainer.train_data, DarkMixDataset) and isinstance(trainer.val_data, DarkMixDataset)
    assert (trainer.train_data.n_mask, trainer.val_data.n_mask) == (2, 1)
    assert trainer.train_data.aug_img == (0.5, 5.0) and trainer.train_data.resample
    assert not trainer.val_data.resample  # the same validation frames every epoch
    trainer.train()
    filename = trainer.save()
    trainer.load(filename)
    trainer.train_phase1(1)
    assert trainer.epoch_mask == 3


def test_simulate_mode_builds_deepcr_frames(tmp_path):
    """The keywords reach the dark-frame mix: a hand-checked training frame."""
    images = np.full((10, 8, 8), 20.0)
    darks = np.zeros((10, 2, 8, 8))
    darks[:, 0, 4, 2:6] = 5000.0  # every dark: one streak on row 4
    darks[:, 1, 4, 2:6] = 1
    trainer = train(image=images, mask=darks, mode="simulate", sky=10.0, aug_sky=(1, 1), aug_img=(2, 2),
                    saturation=3000.0, n_mask_train=1, norm=False, hidden=4, epoch=1, directory=tmp_path,
                    verbose=False)
    x, y, ignore = trainer.train_data[0]
    expected = np.full((8, 8), (20.0 + 10.0) * 2)
    expected[4, 2:6] = 3000.0  # 60 + 5000, clipped at saturation
    np.testing.assert_allclose(x[0].numpy(), expected)
    assert y[0].numpy().sum() == 4 and ignore.sum() == 0
    normed = train(image=images, mask=darks, mode="simulate", norm=True, percentile_limit=50, hidden=4,
                   epoch=1, directory=tmp_path, verbose=False).train_data[0][0][0].numpy()
    assert np.median(normed) == pytest.approx(0.0)  # standardised by the sky pixels


def test_train_phase0_continues_with_batch_statistics(train_dirs, tmp_path):
    trainer = train(image=train_dirs, name="m", hidden=4, epoch=2, batch_size=6, directory=tmp_path, verbose=False)
    trainer.train()
    trainer.train_phase0(1)
    epochs = trainer.result.history["epochs"]
    assert [e["phase"] for e in epochs] == [0, 1, 0] and [e["epoch"] for e in epochs] == [1, 2, 3]
    assert epochs[2]["lr"] == pytest.approx(trainer.lr)  # phase 0 at the full learning rate
    assert trainer.epoch_mask == 3 and len(trainer.validation_loss) == 3
    with pytest.raises(ValueError, match="epochs"):
        trainer.train_phase1(0)


def test_plots_follow_deepcr(train_dirs, tmp_path):
    """plot_every writes deepCR's {name}epoch{N}trainplot.png; plot_loss() its {name}trainplot.png."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trainer = train(image=train_dirs, name="m", hidden=4, epoch=2, batch_size=6, directory=tmp_path, verbose=False,
                    plot_every=1)
    trainer.train()
    assert (tmp_path / "mepoch1trainplot.png").is_file() and (tmp_path / "mepoch2trainplot.png").is_file()
    fig = trainer.plot_example()
    assert len(fig.axes) == 3 and fig.axes[2].get_title() == "ground truth"
    shown = fig.axes[2].images[0].get_array()
    np.testing.assert_array_equal(np.asarray(shown), trainer.val_data[0][1][0].numpy() > 0.5)
    ax = trainer.plot_loss()
    assert (tmp_path / "mtrainplot.png").is_file()
    np.testing.assert_allclose(ax.lines[1].get_ydata(), trainer.validation_loss)
    plt.close("all")


def test_load_a_saved_state_and_norm_layer(train_dirs, tmp_path):
    first = train(image=train_dirs, name="a", hidden=4, epoch=1, batch_size=6, directory=tmp_path, verbose=False,
                  norm_layer="group")
    assert first.network.norm == "group"
    first.train()
    saved = first.save()
    other = train(image=train_dirs, name="b", hidden=4, epoch=1, batch_size=6, directory=tmp_path, verbose=False,
                  norm_layer="group")
    other.load(tmp_path / f"{saved}.pth")  # a path works too
    assert other.epoch_mask == 1 and (tmp_path / "b.pth").is_file()  # the run now continues from it
    other.train_phase1(1)
    assert [e["epoch"] for e in load(tmp_path / "b.pth").history["epochs"]] == [1, 2]
    vi = train(image=train_dirs, name="c", hidden=4, epoch=1, directory=tmp_path, verbose=False, bayesian=True,
               norm_layer="group")
    with pytest.raises(ValueError, match="does not match the model.s architecture"):
        vi.load(saved)
    with pytest.raises(ValueError, match="nothing to save"):
        vi.save()


def test_train_phase1_decays_its_own_learning_rate(train_dirs, tmp_path):
    """deepCR's bug: train_phase1 resets the scheduler of the phase-0 optimiser, so the phase-1
    learning rate never decays.  Here a plateau in phase 1 halves the phase-1 rate."""
    trainer = train(image=train_dirs, name="m", hidden=4, epoch=1, epoch_phase0=1, batch_size=10, lr=1e-6,
                    lr_decay_factor=0.5, lr_decay_patience=0, directory=tmp_path, verbose=False)
    trainer.train()
    trainer.train_phase1(3)
    lrs = [e["lr"] for e in trainer.result.history["epochs"]]
    # epoch 2 sets the scheduler's best, epoch 3 does not improve on it (lr 1e-6: a plateau)
    assert lrs == pytest.approx([1e-6, 1e-6 / 2.5, 1e-6 / 2.5, 0.5e-6 / 2.5], rel=1e-6)
