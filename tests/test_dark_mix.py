"""`DarkMixDataset`: deepCR's 'simulate' training data (CR-free images + dark-frame cosmic rays)."""
import numpy as np
import pytest

from cosmiq_pyro.data.dark_mix import DarkMixDataset


def write(folder, name, array):
    path = folder / name
    np.save(path, np.asarray(array))
    return str(path)


def streak_dark(width, row, value=900.0):
    """A dark [CR charge, CR mask] with one horizontal CR streak on ``row``."""
    dark = np.zeros((2, width, width))
    dark[0, row, 2:7] = value
    dark[1, row, 2:7] = 1
    dark[1, row, 1] = 1  # a labelled pixel without charge: the mask comes from the dark's own plane
    return dark


def test_hand_computed_mix(tmp_path):
    image = np.full((8, 8), 10.0)
    darks = [write(tmp_path, f"dark{k}.npy", streak_dark(8, row)) for k, row in enumerate((1, 5))]
    ds = DarkMixDataset([write(tmp_path, "im.npy", image)], darks, sky=5.0, aug_sky=(1, 1), aug_img=(2, 2),
                        n_mask=2, saturation=1e5)
    x, y, ignore = ds[0]
    assert x.shape == y.shape == ignore.shape == (1, 8, 8)
    expected = np.full((8, 8), (10.0 + 1 * 5.0) * 2)  # (I + u s) f
    expected[1, 2:7] += 900  # both darks, each once (drawn without replacement)
    expected[5, 2:7] += 900
    np.testing.assert_allclose(x[0].numpy(), expected)
    mask = np.zeros((8, 8), bool)
    mask[[1, 5], 1:7] = True
    np.testing.assert_array_equal(y[0].numpy(), mask)
    np.testing.assert_array_equal(ignore[0].numpy(), 0)
    clipped = DarkMixDataset([image], np.stack([streak_dark(8, 1), streak_dark(8, 5)]), n_mask=1, saturation=50.0)
    assert clipped[0][0].max() == 50.0  # saturation clips the CR pixels


def test_equals_deepcr_datasetsim(tmp_path):
    """Where deepCR's DatasetSim draws nothing (fixed aug ranges, one dark), the frames agree."""
    dataset = pytest.importorskip("deepCR.dataset")
    rng = np.random.default_rng(0)
    images = []
    for i in range(4):
        planes = rng.normal(50, 5, (2, 16, 16))
        planes[1] = rng.random((16, 16)) < 0.1  # [image, ignore]
        images.append(write(tmp_path, f"im{i}.npy", planes))
    darks = [write(tmp_path, "dark.npy", streak_dark(16, 3))]
    options = dict(sky=7.0, aug_sky=(2, 2), aug_img=(3, 3), saturation=500.0, norm=True, percentile_limit=50)
    theirs = dataset.DatasetSim(images, darks, part=None, **options)
    ours = DarkMixDataset(images, darks, part="all", **options)
    for i in range(4):
        for their_plane, our_plane in zip(theirs[i], ours[i]):
            np.testing.assert_allclose(our_plane[0].numpy(), np.asarray(their_plane, np.float32), atol=1e-6)


def test_image_scale_is_log_uniform_and_noise_is_shot_noise():
    ones = np.ones((1, 8, 8))
    dark = np.zeros((1, 2, 8, 8))
    ds = DarkMixDataset(ones, dark, aug_img=(0.1, 10), seed=1)
    factors = np.array([ds[0][0][0, 0, 0].item() for _ in range(2000)])
    assert factors.min() >= 0.1 and factors.max() <= 10
    logs = np.log10(factors)  # U(-1, 1): mean 0, variance 1/3
    assert abs(logs.mean()) < 0.05 and abs(logs.var() - 1 / 3) < 0.03
    noisy = DarkMixDataset(np.full((1, 64, 64), 400.0), np.zeros((1, 2, 64, 64)), noise=True, seed=2)[0][0]
    assert abs(noisy.std().item() - 20.0) < 1.0  # sqrt(400 e-)
    assert abs(noisy.mean().item() - 400.0) < 1.0


def test_split_resampling_and_reproducibility(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.normal(100, 3, (10, 8, 8))
    darks = np.stack([streak_dark(8, row) for row in range(8)] + [streak_dark(8, 0, 50.0), streak_dark(8, 7, 70.0)])
    train = DarkMixDataset(images, darks, part="train", n_mask=2, seed=4)
    val = DarkMixDataset(images, darks, part="val", n_mask=1, seed=4, resample=False)
    assert (len(train), len(val)) == (9, 1)  # deepCR's int(10 * 0.9)
    assert set(train.image_indices).isdisjoint(val.image_indices)
    assert set(train.dark_indices).isdisjoint(val.dark_indices)  # no dark in both parts
    assert len(train.dark_indices) + len(val.dark_indices) == 10
    first, again = val[0], val[0]
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())  # validation frames are fixed
    draws = {tuple(np.flatnonzero(train[0][1][0].numpy().any(axis=1))) for _ in range(20)}
    assert len(draws) > 1  # training frames draw new darks at every read
    def fresh():  # a new object with the same seed repeats the stream
        return DarkMixDataset(images, darks, part="train", n_mask=2, seed=4)[0][0].numpy()
    np.testing.assert_array_equal(fresh(), fresh())


def test_bad_input(tmp_path):
    image = write(tmp_path, "im.npy", np.zeros((8, 8)))
    dark = write(tmp_path, "dark.npy", streak_dark(8, 1))
    with pytest.raises(ValueError, match=r"dark \(mask=\).*expected \(2, W, W\)"):
        DarkMixDataset([image], [write(tmp_path, "flat.npy", np.zeros((8, 8)))])
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        DarkMixDataset([image], [str(tmp_path / "missing.npy")])
    with pytest.raises(ValueError, match="dark frames are 16x16 but images are 8x8"):
        DarkMixDataset([image], [write(tmp_path, "big.npy", streak_dark(16, 1))])
    with pytest.raises(ValueError, match="needs sky"):
        DarkMixDataset([image], [dark], aug_sky=(0, 1))
    with pytest.raises(ValueError, match="n_mask=2 darks per image"):
        DarkMixDataset([image], [dark], n_mask=2)
    with pytest.raises(ValueError, match="aug_img must be positive"):
        DarkMixDataset([image], [dark], aug_img=(0, 1))
    with pytest.raises(TypeError, match="one path"):
        DarkMixDataset(image, [dark])
