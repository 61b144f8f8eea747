"""Failures a user meets (issue 14): broken checkpoints, non-finite or empty training data,
argument types.  Each is one clear error naming the input (and pixel), found before any work."""
import numpy as np
import pytest
import torch

import cosmiq_pyro as cq
from cosmiq_pyro.app.cli import main

H = W = 16


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 10.0, (6, H, W)).astype(np.float32)
    mask = np.zeros_like(image, dtype=bool)
    mask[:, 5, 3:9] = True
    image[mask] += 800.0
    return image, mask


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("ckpt")
    image, mask = data
    torch.manual_seed(0)
    vi = cq.fit_svi(cq.UNet2SigmoidVI(hidden=4), (image, mask, None), epochs=1, batch_size=2, progress=False)
    return {"vi": cq.save(folder / "vi.pth", vi), "det": cq.save(folder / "det.pth", cq.UNet2Sigmoid(hidden=4).eval())}


def _edited(src, dst, edit):
    payload = torch.load(src, map_location="cpu", weights_only=True)
    edit(payload)
    torch.save(payload, dst)
    return dst


def _first_float(state):
    return next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)


# ---------------------------------------------------------------- bug 3: non-finite weights


@pytest.mark.parametrize("kind, part, value", [("det", "net_state", float("nan")),
                                               ("vi", "guide_state", float("inf")),
                                               ("vi", "guide_state", float("nan"))])
def test_checkpoint_with_non_finite_weights_is_refused(checkpoints, tmp_path, kind, part, value):
    def poison(payload):
        key = _first_float(payload[part])
        payload[part][key].view(-1)[0] = value
    bad = _edited(checkpoints[kind], tmp_path / "bad.pth", poison)
    with pytest.raises(ValueError, match=r"bad\.pth.*non-finite"):
        cq.load(bad)


def test_cli_refuses_all_nan_weights(checkpoints, tmp_path, capsys):
    from astropy.io import fits

    def all_nan(payload):
        for state in (payload["net_state"], payload["guide_state"]):
            for value in state.values():
                if value.is_floating_point():
                    value.fill_(float("nan"))
    bad = _edited(checkpoints["vi"], tmp_path / "nan.pth", all_nan)
    fits.PrimaryHDU(np.ones((H, W), np.float32)).writeto(tmp_path / "in.fits")
    status = main(["predict", str(tmp_path / "in.fits"), "--model", str(bad), "-o", str(tmp_path / "out")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(err) == 1 and "nan.pth" in err[0] and "non-finite" in err[0]
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- bug 6: incomplete checkpoints


def test_checkpoint_without_config_is_one_line(checkpoints, tmp_path):
    bad = _edited(checkpoints["det"], tmp_path / "noconf.pth", lambda p: p.pop("config"))
    with pytest.raises(ValueError, match=r"noconf\.pth.*config"):
        cq.load(bad)


def test_guide_missing_a_site_is_one_line(checkpoints, tmp_path):
    def drop_site(payload):
        key = next(k for k in payload["guide_state"] if "loc" in k)
        payload["guide_state"].pop(key)
    bad = _edited(checkpoints["vi"], tmp_path / "nosite.pth", drop_site)
    with pytest.raises(ValueError, match=r"nosite\.pth"):
        cq.load(bad)


def test_huge_config_is_refused_before_building(checkpoints, tmp_path):
    def huge(payload):
        payload["config"]["hidden"] = 20000
    bad = _edited(checkpoints["det"], tmp_path / "huge.pth", huge)
    with pytest.raises(ValueError, match=r"huge\.pth.*hidden.*20000"):
        cq.load(bad)


# ---------------------------------------------------------------- bug 7: empty data


def _empty():
    return torch.utils.data.TensorDataset(torch.zeros(0, 1, H, W), torch.zeros(0, 1, H, W), torch.zeros(0, 1, H, W))


def test_empty_training_set_is_refused():
    with pytest.raises(ValueError, match="train: the dataset is empty"):
        cq.fit_svi(cq.UNet2SigmoidVI(hidden=4), _empty(), epochs=1, progress=False)
    with pytest.raises(ValueError, match="train: the dataset is empty"):
        cq.fit_deterministic(cq.UNet2Sigmoid(hidden=4), _empty(), epochs=1, progress=False)


def test_empty_validation_set_is_refused(data):
    image, mask = data
    with pytest.raises(ValueError, match="val: the dataset is empty.*val=None"):
        cq.fit_deterministic(cq.UNet2Sigmoid(hidden=4), (image, mask, None), _empty(), epochs=1, progress=False)


# ---------------------------------------------------------------- bug 4: non-finite training data


@pytest.mark.parametrize("where", ["train", "val"])
def test_non_finite_arrays_refused_naming_item_and_pixel(data, where):
    image, mask = data
    dirty = image.copy()
    dirty[2, 7, 5] = np.nan
    train, val = (dirty, mask, None), (image, mask, None)
    if where == "val":
        train, val = val, train
    with pytest.raises(ValueError, match=rf"{where}: .*non-finite.*item 2, row 7, column 5"):
        cq.fit_deterministic(cq.UNet2Sigmoid(hidden=4), train, val, epochs=1, progress=False)


def test_cli_non_finite_pair_file_named_before_training(tmp_path, capsys):
    from cosmiq_pyro.data.simulate import make_dataset, write_pairs

    data = tmp_path / "pairs"
    paths = write_pairs(data, make_dataset(10, size=32, seed=0))
    planes = np.load(paths[0])
    planes[0, 3, 4] = np.inf
    np.save(paths[0], planes)  # which file lands in validation does not matter: all are checked
    status = main(["train", str(data), "--deterministic", "--hidden", "4", "--epochs", "1",
                   "--out", str(tmp_path / "m.pth"), "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(err) == 1, err
    assert "000001_" in err[0] and "row 3, column 4" in err[0] and "non-finite image" in err[0]
    assert not (tmp_path / "m.pth").exists()


def test_diverging_learning_rate_is_one_line(tmp_path, capsys):
    status = main(["train", "simulate:4", "--size", "32", "--deterministic", "--hidden", "4", "--epochs", "1",
                   "--lr", "1e30", "--out", str(tmp_path / "m.pth"), "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(err) == 1 and "lr" in err[0]
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- bug 8: argument types


def test_predict_argument_types(checkpoints):
    model = cq.load(checkpoints["vi"])
    image = np.ones((H, W), np.float32)
    with pytest.raises(TypeError, match="T"):
        cq.predict(model, image, T=True)
    with pytest.raises(TypeError, match="seed"):
        cq.predict(model, image, T=2, seed=None)
    with pytest.raises(TypeError, match="seed"):
        cq.predict(model, image, T=2, seed=1.5)
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*63 - 1\]"):
        cq.predict(model, image, T=2, seed=10**23)
    a = cq.predict(model, image, T=np.int64(2), tile=np.int64(16), seed=np.int64(3))
    b = cq.predict(model, image, T=2, tile=16, seed=3)
    np.testing.assert_array_equal(a.prob, b.prob)


def test_numpy_scalars_accepted_by_fit(data):
    image, mask = data
    torch.manual_seed(0)
    result = cq.fit_svi(cq.UNet2SigmoidVI(hidden=4), (image, mask, None), epochs=np.int64(1),
                        batch_size=np.int64(3), kl_beta=np.float32(1e-6), lr=np.float32(1e-3), progress=False)
    assert len(result.history["epochs"]) == 1


# ---------------------------------------------------------------- the deepCR-style train facade


def test_train_replaces_its_checkpoint_as_deepcr_does_and_the_cli_refuses(data, tmp_path, monkeypatch, capsys):
    """deepCR 0.3.1's own tests train a 'pair' model, then a 'simulate' model, in one directory with
    the default name: the second run replaces ``./model.pth`` (it raised FileExistsError before)."""
    from cosmiq_pyro.app.cli import main
    from cosmiq_pyro.training import train

    image, mask = data
    monkeypatch.chdir(tmp_path)
    first = train(image=image, mask=mask, hidden=4, epoch=2, verbose=False)
    first.train()
    first.load(first.save())
    first.train_phase1(1)
    assert first.epoch_mask == 3 and len(load_history(tmp_path / "model.pth")) == 3
    darks = np.stack([np.zeros_like(image[:2]), np.zeros_like(image[:2])], axis=1)  # (2, 2, H, W): [CR e-, mask]
    second = train(image=image, mask=darks, mode="simulate", sky=100, hidden=4, epoch=2, verbose=False)
    second.train()  # the same ./model.pth
    assert len(load_history(tmp_path / "model.pth")) == 2  # the second run's file, not the first's
    before = (tmp_path / "model.pth").read_bytes()
    with pytest.raises(FileExistsError, match=r"model\.pth.*resume=True.*overwrite=True"):
        train(image=image, mask=mask, hidden=4, epoch=1, verbose=False, overwrite=False).train()
    assert (tmp_path / "model.pth").read_bytes() == before
    # the command line keeps refusing to replace a checkpoint without --overwrite
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for i in range(3):
        np.save(pairs / f"{i}.npy", np.stack([image[i], mask[i]]).astype(np.float32))
    argv = ["train", str(pairs), "--deterministic", "--out", str(tmp_path / "model.pth"), "--epochs", "1",
            "--hidden", "4", "--quiet"]
    assert main(argv) == 2
    assert "exists; pass --resume to continue it or --overwrite to replace it" in capsys.readouterr().err
    assert (tmp_path / "model.pth").read_bytes() == before
    assert main(argv + ["--overwrite"]) == 0
    assert len(load_history(tmp_path / "model.pth")) == 1


def load_history(path):
    return cq.load(path).history["epochs"]


def test_init_from_gives_hidden(checkpoints, data):
    from cosmiq_pyro.training import train

    image, mask = data
    vi = train(image=image, mask=mask, bayesian=True, init_from=checkpoints["det"], epoch=1, verbose=False)
    assert vi.network.hidden == 4  # the twin's, not the default 32
    with pytest.raises(ValueError, match="hidden=8 but init_from has hidden=4"):
        train(image=image, mask=mask, bayesian=True, init_from=checkpoints["det"], hidden=8, epoch=1)
