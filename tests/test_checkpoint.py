"""One-file checkpoints: round trip, weights_only safety, atomic writes, clear mismatch errors."""
import numpy as np
import pytest
import torch

from cosmiq_pyro import UNet2Sigmoid, UNet2SigmoidVI, fit_svi, load, predict, save


@pytest.fixture(scope="module")
def vi_fit():
    image = np.random.default_rng(0).normal(100, 10, (4, 16, 16)).astype(np.float32)
    mask = image > 115
    return fit_svi(UNet2SigmoidVI(hidden=4, prior_scale=0.7), (image, mask, None), epochs=1, batch_size=2,
                   init_scale=0.02, progress=False)


def test_vi_round_trip_gives_identical_predictions(vi_fit, tmp_path):
    path = save(tmp_path / "vi.pth", vi_fit)
    payload = torch.load(path, weights_only=True)  # plain tensors and Python only
    assert payload["config"] == {"kind": "UNet2SigmoidVI", "n_channels": 1, "n_classes": 1, "hidden": 4,
                                 "norm": "batch",
                                 "prior": {"kind": "IIDNormalPrior", "scale": 0.7}}
    assert any(k.startswith("scales.") for k in payload["guide_state"])
    loaded = load(path)
    image = np.random.default_rng(2).normal(100, 10, (24, 20)).astype(np.float32)
    a = predict(vi_fit, image, T=4, seed=9)
    b = predict(loaded, image, T=4, seed=9)
    for name in ("prob", "entropy", "aleatoric", "epistemic"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert loaded.history["loss"] == vi_fit.history["loss"]
    assert [p.name for p in tmp_path.iterdir()] == ["vi.pth"]


def test_deterministic_round_trip(tmp_path):
    net = UNet2Sigmoid(hidden=4, norm="group").eval()
    save(tmp_path / "det.pth", net, history={"note": "x"})
    loaded = load(tmp_path / "det.pth")
    assert loaded.guide is None and loaded.history == {"note": "x"}
    image = np.random.default_rng(3).normal(100, 10, (12, 12)).astype(np.float32)
    np.testing.assert_array_equal(predict(net, image).prob, predict(loaded, image).prob)


def test_mismatched_architecture_is_named(vi_fit, tmp_path):
    path = save(tmp_path / "vi.pth", vi_fit)
    with pytest.raises(ValueError, match=r"hidden: checkpoint 4, model 8"):
        load(path, model=UNet2SigmoidVI(hidden=8, prior_scale=0.7))
    with pytest.raises(ValueError, match=r"kind: checkpoint 'UNet2SigmoidVI', model 'UNet2Sigmoid'"):
        load(path, model=UNet2Sigmoid(hidden=4))


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a cosmiq_pyro checkpoint"):
        load(junk)
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a cosmiq_pyro checkpoint"):
        load(tmp_path / "other.pth")
    with pytest.raises(ValueError, match="needs its guide"):
        save(tmp_path / "x.pth", UNet2SigmoidVI(hidden=4))


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save(tmp_path / "m.pth", UNet2Sigmoid(hidden=4))
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_written_before_prior_objects_still_loads(vi_fit, tmp_path):
    """Version-1 checkpoints from before the prior objects carry ``prior_scale`` in their config."""
    path = save(tmp_path / "vi.pth", vi_fit)
    payload = torch.load(path, weights_only=True)
    payload["config"] = {k: v for k, v in payload["config"].items() if k != "prior"} | {"prior_scale": 0.7}
    torch.save(payload, tmp_path / "old.pth")
    old = load(tmp_path / "old.pth")
    assert old.model.prior_scale == 0.7
    image = np.random.default_rng(4).normal(100, 10, (12, 12)).astype(np.float32)
    np.testing.assert_array_equal(predict(old, image, T=2).prob, predict(vi_fit, image, T=2).prob)
    load(tmp_path / "old.pth", model=UNet2SigmoidVI(hidden=4, prior_scale=0.7))  # same architecture


def test_load_model_published_name_and_errors():
    pytest.importorskip("deepCR")
    from cosmiq_pyro.models.registry import load_model
    from cosmiq_pyro.models.registry import PUBLISHED

    fit = load_model("ACS-WFC")
    assert "ACS-WFC" in PUBLISHED and fit.guide is None and fit.model.hidden == 32
    assert fit.weights_file.name == "ACS-WFC.pth" and not fit.model.training
    with pytest.raises(ValueError, match="unknown deepCR mask model 'nope'.*published: ACS-WFC"):
        load_model("nope")
    with pytest.raises(TypeError, match="checkpoint path or a published model name"):
        load_model(3)


def test_resolve_decides_the_kind_once(vi_fit):
    from cosmiq_pyro.models.registry import resolve

    net = UNet2Sigmoid(hidden=2)
    assert resolve(net) == (net, None)
    assert resolve(vi_fit) == (vi_fit.model, vi_fit.guide)
    assert resolve((vi_fit.model, vi_fit.guide)) == (vi_fit.model, vi_fit.guide)
    with pytest.raises(ValueError, match="needs its guide"):
        resolve(vi_fit.model)
    with pytest.raises(ValueError, match="deterministic"):
        resolve(net, vi_fit.guide)
    with pytest.raises(TypeError, match="load_model first"):
        resolve("model.pth")
