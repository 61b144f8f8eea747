"""Likelihood weights on the cores of bright stars: the weighted likelihood and the weight maps."""
import numpy as np
import pyro
import pytest
import torch
from pyro import poutine

from cosmiq_pyro.data.camera_sets import resolve_camera, simulated_sets
from cosmiq_pyro.data.simulated import SimulatedDataset
from cosmiq_pyro.inference.fit import masked_bce
from cosmiq_pyro.instruments import get_instrument
from cosmiq_pyro.models.likelihood import BernoulliMaskLikelihood

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def hand_weighted_bce(z, y, valid, w):
    """-(1/n_valid) sum_valid w [y log s(z) + (1 - y) log(1 - s(z))], written out in float64."""
    z, y, valid, w = (np.asarray(a, np.float64) for a in (z, y, valid, w))
    s = 1 / (1 + np.exp(-z))
    return -(w * valid * (y * np.log(s) + (1 - y) * np.log(1 - s))).sum() / valid.sum()


def test_weighted_likelihood_and_bce_are_the_hand_weighted_cross_entropy():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2, 1, 5, 6, generator=gen)
    y = (torch.rand(2, 1, 5, 6, generator=gen) > 0.7).float()
    ignore = (torch.rand(2, 1, 5, 6, generator=gen) > 0.8).float()
    w = 1 + 9 * (torch.rand(2, 1, 5, 6, generator=gen) > 0.5).float()
    expected = hand_weighted_bce(z, y, ignore.numpy() < 0.5, w)
    likelihood = BernoulliMaskLikelihood()

    def site_loss(*args):
        trace = poutine.trace(likelihood).get_trace(*args)
        return -float(trace.log_prob_sum())

    assert site_loss(z, y, ignore, w) == pytest.approx(expected, rel=1e-5)
    assert float(masked_bce(z, y, ignore, w)) == pytest.approx(expected, rel=1e-5)
    # weights of one are the unweighted likelihood
    ones = hand_weighted_bce(z, y, ignore.numpy() < 0.5, np.ones(z.shape))
    assert site_loss(z, y, ignore, torch.ones_like(z)) == pytest.approx(ones, rel=1e-5)
    assert site_loss(z, y, ignore) == pytest.approx(ones, rel=1e-5)
    pyro.clear_param_store()


def test_weights_sit_on_the_cores_of_bright_stars_only():
    """Weight 7 exactly on the pixels within 2 px of the peak of a star with S/N > 50 (the CCD
    equation written out here), 1 elsewhere; items without the option stay three tensors."""
    scale = get_instrument("DECam").detector.pixel_scale_arcsec
    plain = SimulatedDataset(6, size=96, instrument="DECam", seed=5, cr_rate_multiplier=50)
    weighted = SimulatedDataset(6, size=96, instrument="DECam", seed=5, cr_rate_multiplier=50, star_core_weight=7)
    n_cores = 0
    for i in range(len(weighted)):
        frame, item = weighted.frame(i), weighted[i]
        assert len(plain[i]) == 3 and len(item) == 4 and item[3].shape == item[0].shape
        assert all(torch.equal(a, b) for a, b in zip(plain[i], item[:3]))
        fwhm_px = frame.meta["seeing_fwhm_arcsec"] / scale
        noise = np.sqrt(frame.star_e + np.pi * fwhm_px ** 2 * (frame.sky_e + frame.meta["read_noise_e"] ** 2))
        peaks = np.rint(frame.star_xy[frame.star_e / noise > 50][:, ::-1])  # (row, column)
        rows, cols = np.mgrid[:96, :96]
        near = np.zeros((96, 96), bool)
        for r, c in peaks:
            near |= (rows - r) ** 2 + (cols - c) ** 2 <= 4
        expected = np.where(near, 7.0, 1.0)
        np.testing.assert_array_equal(item[3][0].numpy(), expected)
        n_cores += int(near.sum())
    assert n_cores > 0  # the test saw star cores


def test_a_pair_weights_the_clean_and_the_cr_pixels_of_star_cores_apart():
    one = SimulatedDataset(6, size=96, instrument="DECam", seed=5, cr_rate_multiplier=200, star_core_weight=7)
    pair = SimulatedDataset(6, size=96, instrument="DECam", seed=5, cr_rate_multiplier=200, star_core_weight=(4, 2))
    n_cr_on_cores = 0
    for i in range(len(one)):
        core, mask = one[i][3][0].numpy() == 7, one[i][1][0].numpy() > 0.5
        expected = np.where(core & mask, 2.0, np.where(core, 4.0, 1.0))
        np.testing.assert_array_equal(pair[i][3][0].numpy(), expected)
        n_cr_on_cores += int((core & mask).sum())
    assert n_cr_on_cores > 0  # CRs fell on star cores
    with pytest.raises(ValueError, match="star_core_weight"):
        SimulatedDataset(2, size=64, instrument="DECam", star_core_weight=(1, 2, 3))


def test_augmented_weights_turn_and_flip_with_the_image():
    weighted = SimulatedDataset(4, size=64, instrument="DECam", seed=11, augment=True, star_core_weight=3)
    reference = SimulatedDataset(4, size=64, instrument="DECam", seed=11, star_core_weight=3)
    for i in range(len(weighted)):
        image, _, _, weight = weighted[i]
        ref_image, _, _, ref_weight = reference[i]
        turns = [(k, flip) for k in range(4) for flip in (False, True)
                 if torch.equal(_dihedral(ref_image[0], k, flip), image[0])]
        assert turns, "the augmented image is no flip / rotation of the frame"
        assert any(torch.equal(_dihedral(ref_weight[0], k, flip), weight[0]) for k, flip in turns)


def _dihedral(a, k, flip):
    a = torch.rot90(a, k, (0, 1))
    return torch.flip(a, (1,)) if flip else a


def test_only_the_training_frames_carry_weights_and_a_bad_weight_is_one_line():
    train, val = simulated_sets(resolve_camera("DECam"), n_train=2, n_val=2, train_seed=1, val_seed=2,
                                star_core_weight=5.0, size=64)
    assert len(train[0]) == 4 and len(val[0]) == 3
    with pytest.raises(ValueError, match="star_core_weight"):
        SimulatedDataset(2, size=64, instrument="DECam", star_core_weight=0)
