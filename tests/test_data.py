"""cosmiq_pyro.data: deepCR pair layouts, split, sky augmentation, flips, simulated frames."""
import pickle
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from cosmiq_pyro.data import PairDataset, SimulatedDataset, as_dataset, split_indices

W = 8


def _arrays(n=10, w=W, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 5.0, (n, w, w)).astype(np.float32)
    mask = rng.random((n, w, w)) < 0.1
    ignore = rng.random((n, w, w)) < 0.05
    return image, mask, ignore


@pytest.fixture
def np_global_state():
    """deepCR seeds numpy's global RNG; put it back afterwards."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


def _dihedrals(a):
    out = []
    for k in range(4):
        r = np.rot90(a, k)
        out += [r, r[:, ::-1]]
    return out


# ---------------------------------------------------------------- arrays


def test_items_follow_the_dataset_contract():
    image, mask, ignore = _arrays()
    ds = PairDataset(image, mask, ignore)
    assert len(ds) == 10
    x, y, ig = ds[3]
    for t in (x, y, ig):
        assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.shape == (1, W, W)
    np.testing.assert_array_equal(x[0].numpy(), image[3])
    np.testing.assert_array_equal(y[0].numpy(), mask[3].astype(np.float32))
    np.testing.assert_array_equal(ig[0].numpy(), ignore[3].astype(np.float32))
    np.testing.assert_array_equal(ds[-1][0][0].numpy(), image[9])
    x += 1.0  # items are copies: the caller's arrays stay untouched
    np.testing.assert_array_equal(ds[3][0][0].numpy(), image[3])
    with pytest.raises(IndexError):
        ds[10]
    assert ds.meta is None


def test_missing_ignore_is_zeros_and_mask_is_binary():
    image, mask, _ = _arrays()
    ds = PairDataset(image, mask.astype(np.uint8) * 255)
    _, y, ig = ds[0]
    assert set(np.unique(y.numpy())) <= {0.0, 1.0}
    np.testing.assert_array_equal(y[0].numpy(), mask[0])
    assert not ig.any()


@pytest.mark.parametrize("f_val", [0.1, 0.25, 0.5])
def test_split_sizes_match_deepcr_and_parts_are_disjoint(f_val, np_global_state):
    deepcr_dataset = pytest.importorskip("deepCR.dataset").dataset
    for n in range(2, 31):
        image, mask, _ = _arrays(n, w=2)
        train = PairDataset(image, mask, part="train", f_val=f_val, seed=3)
        val = PairDataset(image, mask, part="val", f_val=f_val, seed=3)
        ref_train = deepcr_dataset(image, mask, part="train", f_val=f_val)
        ref_val = deepcr_dataset(image, mask, part="val", f_val=f_val)
        assert len(train) == len(ref_train), n
        assert len(val) == len(ref_val), n
        assert set(train.indices).isdisjoint(val.indices)
        assert sorted([*train.indices, *val.indices]) == list(range(n))


def test_split_is_a_seeded_permutation():
    a = split_indices(100, "val", seed=0)
    assert np.array_equal(a, split_indices(100, "val", seed=0))
    assert not np.array_equal(a, split_indices(100, "val", seed=1))
    # not deepCR's "last 10 %": a sorted input does not put its tail in validation
    assert not np.array_equal(a, np.arange(90, 100))
    assert len(a) == 10 and np.all(np.diff(a) > 0)


def test_val_items_are_the_val_indices():
    image, mask, _ = _arrays(20)
    meta = pd.DataFrame({"field": [f"F{i}" for i in range(20)]})
    val = PairDataset(image, mask, part="val", seed=5, meta=meta)
    for k, j in enumerate(val.indices):
        np.testing.assert_array_equal(val[k][0][0].numpy(), image[j])
    assert list(val.meta["field"]) == [f"F{j}" for j in val.indices]


def test_sky_augmentation_matches_deepcr_for_a_fixed_factor(np_global_state):
    deepcr_dataset = pytest.importorskip("deepCR.dataset").dataset
    image, mask, ignore = _arrays(4)
    sky = np.array([10.0, 20.0, 30.0, 40.0])
    ours = PairDataset(image, mask, ignore, sky=sky, aug_sky=(1.5, 1.5))
    ref = deepcr_dataset(image, mask, ignore, sky=sky, aug_sky=(1.5, 1.5))
    for i in range(4):
        x, y, ig = ours[i]
        rx, ry, rig = ref[i]
        np.testing.assert_allclose(x[0].numpy(), rx, rtol=1e-6)
        np.testing.assert_allclose(x[0].numpy(), image[i] + 1.5 * sky[i], rtol=1e-6)
        np.testing.assert_array_equal(y[0].numpy(), ry)
        np.testing.assert_array_equal(ig[0].numpy(), rig)


def test_sky_augmentation_draws_uniform_factors():
    image, mask, _ = _arrays(1)
    ds = PairDataset(image, mask, sky=50.0, aug_sky=(-0.9, 3.0), seed=1)
    factors = []
    for _ in range(400):
        x, y, _ = ds[0]
        offset = x[0].numpy() - image[0]
        assert np.ptp(offset) < 1e-3  # one constant added to every pixel
        factors.append(float(offset.mean()) / 50.0)
        np.testing.assert_array_equal(y[0].numpy(), mask[0])
    factors = np.array(factors)
    assert factors.min() >= -0.9 - 1e-4 and factors.max() <= 3.0 + 1e-4
    assert factors.min() < 0  # negative factors subtract sky
    # U(-0.9, 3): mean 1.05, sd 1.126; 400 draws give a standard error of 0.056
    assert abs(factors.mean() - 1.05) < 0.25


def test_sky_augmentation_needs_sky():
    image, mask, _ = _arrays()
    with pytest.raises(ValueError, match="aug_sky.*needs sky"):
        PairDataset(image, mask, aug_sky=(0, 1))
    with pytest.raises(ValueError, match=r"sky must be a number or have shape \(10,\)"):
        PairDataset(image, mask, sky=np.ones(3), aug_sky=(0, 1))
    with pytest.raises(ValueError, match="low <= high"):
        PairDataset(image, mask, sky=1.0, aug_sky=(2, 1))


def test_same_seed_same_augmented_items():
    image, mask, ignore = _arrays()
    kwargs = dict(sky=30.0, aug_sky=(0, 2), augment=True)
    a = PairDataset(image, mask, ignore, seed=7, **kwargs)
    b = PairDataset(image, mask, ignore, seed=7, **kwargs)
    c = PairDataset(image, mask, ignore, seed=8, **kwargs)
    xa = torch.stack([a[i][0] for i in range(10)])
    assert torch.equal(xa, torch.stack([b[i][0] for i in range(10)]))
    assert not torch.equal(xa, torch.stack([c[i][0] for i in range(10)]))


def test_flips_apply_alike_to_image_mask_ignore():
    img = np.arange(W * W, dtype=np.float32).reshape(1, W, W)
    mask = (img % 7 == 0)
    ignore = (img % 5 == 0)
    ds = PairDataset(img, mask, ignore, augment=True, seed=2)
    candidates = _dihedrals(img[0])
    seen = set()
    for _ in range(64):
        x, y, ig = (t[0].numpy() for t in ds[0])
        k = [i for i, c in enumerate(candidates) if np.array_equal(c, x)]
        assert len(k) == 1  # one of the 8 symmetries of the square
        seen.add(k[0])
        np.testing.assert_array_equal(y, x % 7 == 0)
        np.testing.assert_array_equal(ig, x % 5 == 0)
    assert seen == set(range(8))


def test_default_collate_batches():
    image, mask, ignore = _arrays(6)
    loader = DataLoader(PairDataset(image, mask, ignore, augment=True), batch_size=4)
    x, y, ig = next(iter(loader))
    assert x.shape == y.shape == ig.shape == (4, 1, W, W)
    assert x.dtype == y.dtype == ig.dtype == torch.float32


def test_workers_draw_different_augmentations():
    image = np.zeros((8, 4, 4), np.float32)
    ds = PairDataset(image, image, sky=1.0, aug_sky=(0, 1), seed=0)
    loader = DataLoader(ds, batch_size=1, num_workers=2,
                        generator=torch.Generator().manual_seed(0))
    offsets = [float(x[0, 0, 0, 0]) for x, _, _ in loader]
    assert len(set(offsets)) == 8  # a copied RNG would repeat draws across the two workers
    again = [float(x[0, 0, 0, 0]) for x, _, _ in DataLoader(
        ds, batch_size=1, num_workers=2, generator=torch.Generator().manual_seed(0))]
    assert again == offsets  # reproducible under the loader's generator


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(mask=None), ValueError, "mask is required"),
    (dict(mask=np.zeros((10, W, W + 1))), ValueError, r"mask has shape \(10, 8, 9\)"),
    (dict(ignore=np.zeros((9, W, W))), ValueError, r"ignore has shape \(9, 8, 8\)"),
    (dict(part="test"), ValueError, "part must be one of"),
    (dict(f_val=0.0), ValueError, r"f_val must be a fraction in \(0, 1\)"),
    (dict(f_val=1.0), ValueError, r"f_val must be a fraction in \(0, 1\)"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=1.5), TypeError, "seed"),
])
def test_bad_array_arguments(kwargs, error, match):
    image, mask, _ = _arrays()
    args = dict(mask=mask) | kwargs
    with pytest.raises(error, match=match):
        PairDataset(image, **args)


@pytest.mark.parametrize("image, match", [
    (np.zeros((W, W)), r"shape \(N, W, W\)"),
    (np.zeros((2, W, W + 2)), "square"),
    (np.zeros((0, W, W)), "empty"),
    (np.ones((1, 2, 2), complex), "numeric"),
])
def test_bad_image_shapes(image, match):
    with pytest.raises((ValueError, TypeError), match=match):
        PairDataset(image, np.zeros(image.shape))


def test_nonfinite_image_refused():
    image, mask, _ = _arrays()
    image[2, 3, 4] = np.nan
    with pytest.raises(ValueError, match="1 non-finite"):
        PairDataset(image, mask)


def test_one_item_cannot_be_split():
    image, mask, _ = _arrays(1)
    assert len(PairDataset(image, mask)) == 1
    with pytest.raises(ValueError, match="at least 2 items"):
        PairDataset(image, mask, part="train")


# ---------------------------------------------------------------- npy files


def _write_pairs(directory, n=6, planes=3, w=W):
    image, mask, ignore = _arrays(n, w)
    paths = []
    for k in range(n):
        stack = [image[k], mask[k], ignore[k]][:planes]
        p = directory / f"{k + 1}_frame.npy"
        np.save(p, np.stack(stack).astype(np.float32))
        paths.append(str(p))
    return paths, image, mask, ignore


@pytest.mark.parametrize("planes", [2, 3])
def test_npy_files(tmp_path, planes):
    paths, image, mask, ignore = _write_pairs(tmp_path, planes=planes)
    ds = PairDataset(paths)
    assert len(ds) == 6 and ds.width == W
    for i in range(6):
        x, y, ig = (t[0].numpy() for t in ds[i])
        np.testing.assert_array_equal(x, image[i])
        np.testing.assert_array_equal(y, mask[i])
        np.testing.assert_array_equal(ig, ignore[i] if planes == 3 else 0)
    train, val = PairDataset(paths, part="train"), PairDataset(paths, part="val")
    assert (len(train), len(val)) == (5, 1)  # deepCR: int(6 * 0.9) = 5


def test_npy_files_are_not_held_in_memory(tmp_path):
    paths, *_ = _write_pairs(tmp_path, n=20, w=64)  # 20 x 3 x 64 x 64 float32 = 983 kB
    ds = PairDataset(paths)
    ds[0]
    assert len(pickle.dumps(ds)) < 20_000


def test_npy_sky_file_in_deepcr_layout(tmp_path, np_global_state):
    deepcr = pytest.importorskip("deepCR.dataset")
    paths, image, *_ = _write_pairs(tmp_path, n=4)
    sky = np.array([11.0, 22.0, 33.0, 44.0])
    np.save(tmp_path / "sky.npy", sky)
    ds = PairDataset(paths, aug_sky=(2.0, 2.0))
    ref = deepcr.PairedDatasetImagePath(np.array(paths), 2.0, 2.0)
    for i in range(4):
        x = ds[i][0][0].numpy()
        np.testing.assert_allclose(x, image[i] + 2.0 * sky[i], rtol=1e-6)
        np.testing.assert_allclose(x, ref[i][0], rtol=1e-6)
    # an explicit sky array takes precedence
    explicit = PairDataset(paths, sky=np.ones(4), aug_sky=(2.0, 2.0))
    np.testing.assert_allclose(explicit[0][0][0].numpy(), image[0] + 2.0, rtol=1e-6)


def test_npy_sky_missing(tmp_path):
    paths, *_ = _write_pairs(tmp_path, n=2)
    with pytest.raises(ValueError, match="sky.npy beside"):
        PairDataset(paths, aug_sky=(0, 1))


def test_npy_bad_files_named(tmp_path):
    paths, *_ = _write_pairs(tmp_path, n=3)
    bad = tmp_path / "4_bad.npy"
    np.save(bad, np.zeros((4, W, W)))
    with pytest.raises(ValueError, match=r"4_bad\.npy.*shape \(4, 8, 8\)"):
        PairDataset([*paths, str(bad)])
    small = tmp_path / "5_small.npy"
    np.save(small, np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"5_small\.npy.*4x4.*all must match"):
        PairDataset([*paths, str(small)])
    rect = tmp_path / "6_rect.npy"
    np.save(rect, np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match=r"6_rect\.npy"):
        PairDataset([str(rect)])
    text = tmp_path / "7_text.npy"
    text.write_text("not numpy")
    with pytest.raises(ValueError, match=r"7_text\.npy.*not a \.npy"):
        PairDataset([str(text)])
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        PairDataset([str(tmp_path / "missing.npy")])
    with pytest.raises(ValueError, match="mask=None"):
        PairDataset(paths, mask=np.zeros((3, W, W)))


# ---------------------------------------------------------------- as_dataset


def test_as_dataset_forms(tmp_path):
    image, mask, ignore = _arrays(5)
    ds = TensorDataset(torch.zeros(2, 1, 4, 4))
    assert as_dataset(ds) is ds
    two = as_dataset((image, mask))
    three = as_dataset((image, mask, ignore))
    none_ignore = as_dataset([image, mask, None])
    assert len(two) == len(three) == len(none_ignore) == 5
    np.testing.assert_array_equal(three[4][2][0].numpy(), ignore[4])
    assert not none_ignore[0][2].any()

    meta = pd.DataFrame({"field": list("ABCDE"), "filter": ["F606W"] * 5})
    sim = as_dataset(SimpleNamespace(image=image, mask=mask, ignore=ignore, sky=np.ones(5),
                                     meta=meta))
    assert list(sim.meta["field"]) == list("ABCDE")
    np.testing.assert_array_equal(sim[2][0][0].numpy(), image[2])

    paths, *_ = _write_pairs(tmp_path, n=3)
    assert len(as_dataset(paths)) == 3
    assert len(as_dataset(tuple(paths[:2]))) == 2  # two paths, not (image, mask)


def test_as_dataset_errors_name_the_input():
    image, mask, _ = _arrays(5)
    with pytest.raises(ValueError, match=r"^train: mask has shape \(4, 8, 8\)"):
        as_dataset((image, mask[:4]), name="train")
    with pytest.raises(ValueError, match="val: expected \\(image, mask\\)"):
        as_dataset((image,), name="val")
    with pytest.raises(ValueError, match="mask is None"):
        as_dataset((image, None))
    with pytest.raises(TypeError, match="data: expected a torch Dataset"):
        as_dataset(image)
    with pytest.raises(TypeError, match="got int"):
        as_dataset(3)


def test_plugs_into_fit_deterministic():
    from cosmiq_pyro.inference.fit import fit_deterministic
    from cosmiq_pyro.models.unet import UNet2Sigmoid

    image, mask, ignore = _arrays(6, w=16)
    train = PairDataset(image, mask, ignore, part="train", augment=True, sky=20.0,
                        aug_sky=(0, 1))
    val = PairDataset(image, mask, ignore, part="val")
    result = fit_deterministic(UNet2Sigmoid(hidden=4), train, val, epochs=1, batch_size=2,
                               progress=False)
    assert len(result.history["loss"]) == 3  # ceil(5 train items / batch 2)
    assert np.isfinite(result.history["loss"]).all()


# ---------------------------------------------------------------- simulated frames

SIZE = 64


def test_simulated_items_are_the_simulator_frames():
    from cosmiq_pyro.data import simulate

    ds = SimulatedDataset(3, size=SIZE, fields=("EX", "GC"), filters=("F606W",),
                          exptime_s=(200, 800), seed=4)
    assert len(ds) == 3
    assert {"field", "filter", "exptime_s", "seed"} <= set(ds.meta.columns)
    assert set(ds.meta["field"]) <= {"EX", "GC"} and set(ds.meta["filter"]) == {"F606W"}
    assert ds.meta["exptime_s"].between(200, 800).all()
    for i in (0, 2):
        spec = simulate.frame_spec(i, 4, ("EX", "GC"), ("F606W",), (200, 800))
        assert ds.meta.iloc[i][list(spec)].to_dict() == spec
        frame = simulate.simulate_frame(size=SIZE, **spec)
        x, y, ig = ds[i]
        assert x.shape == y.shape == ig.shape == (1, SIZE, SIZE) and x.dtype == torch.float32
        np.testing.assert_array_equal(x[0].numpy(), frame.image.astype(np.float32))
        np.testing.assert_array_equal(y[0].numpy(), frame.mask)
        np.testing.assert_array_equal(ig[0].numpy(), frame.ignore)
        assert torch.equal(ds[i][0], x)  # every epoch sees the same frame


def test_simulated_seed_changes_frames():
    a = SimulatedDataset(2, size=SIZE, seed=0)
    b = SimulatedDataset(2, size=SIZE, seed=0)
    c = SimulatedDataset(2, size=SIZE, seed=1)
    assert torch.equal(a[1][0], b[1][0])
    assert not torch.equal(a[1][0], c[1][0])


def test_simulated_meta_needs_no_simulation(monkeypatch):
    from cosmiq_pyro.data import simulate

    def refuse(*args, **kwargs):
        raise AssertionError("simulate_frame called")

    monkeypatch.setattr(simulate, "simulate_frame", refuse)
    ds = SimulatedDataset(5000, size=256, seed=0)
    assert len(ds.meta) == 5000 and len(ds) == 5000
    assert set(ds.meta["field"]) == {"EX", "GC", "GAL"}


def test_simulated_augment_and_collate():
    plain = SimulatedDataset(2, size=SIZE, seed=3)
    flipped = SimulatedDataset(2, size=SIZE, seed=3, augment=True)
    x0, y0, _ = (t[0].numpy() for t in plain[0])
    x, y, _ = (t[0].numpy() for t in flipped[0])
    k = [i for i, c in enumerate(_dihedrals(x0)) if np.array_equal(c, x)]
    assert k and np.array_equal(_dihedrals(y0)[k[0]], y)
    x, y, ig = next(iter(DataLoader(flipped, batch_size=2)))
    assert x.shape == y.shape == ig.shape == (2, 1, SIZE, SIZE)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n=0), ValueError, "n must be a positive int"),
    (dict(n=2.5), TypeError, "n must be a positive int"),
    (dict(n=2, size=8), ValueError, "size must be an int >= 16"),
    (dict(n=2, seed=-3), ValueError, "seed"),
    (dict(n=2, fields=("XX",)), ValueError, "fields"),
])
def test_simulated_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SimulatedDataset(**kwargs)


def test_simulator_pairs_written_and_read_back(tmp_path):
    from cosmiq_pyro.data import simulate

    sim = simulate.make_dataset(2, size=32, seed=9)
    paths = simulate.write_pairs(tmp_path, sim)
    ds = PairDataset(paths, aug_sky=(1.0, 1.0))  # sky from sky.npy beside the files
    for i in range(2):
        x, y, ig = (t[0].numpy() for t in ds[i])
        np.testing.assert_allclose(x, sim.image[i] + sim.sky[i], rtol=1e-6)
        np.testing.assert_array_equal(y, sim.mask[i])
        np.testing.assert_array_equal(ig, sim.ignore[i])
    direct = as_dataset(sim)
    assert list(direct.meta["field"]) == list(sim.meta["field"])
    np.testing.assert_array_equal(direct[1][0][0].numpy(), sim.image[1])


def test_one_field_or_filter_given_as_a_string_is_that_one_name():
    """``fields="GC"`` (what ``cosmiq adapt --recipe fields=GC`` passes) draws GC frames only; a
    string is not read letter by letter, and a comma-separated string is refused whole."""
    one = SimulatedDataset(4, size=32, fields="GC", filters="F814W", seed=3)
    assert one.fields == ("GC",) and one.filters == ("F814W",)
    assert {one.frame(i).meta["field"] for i in range(4)} == {"GC"}
    assert {one.frame(i).meta["filter"] for i in range(4)} == {"F814W"}
    with pytest.raises(ValueError, match="got 'EX,GC'"):
        SimulatedDataset(2, size=32, fields="EX,GC")
