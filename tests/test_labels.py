"""CR labels: AstroDrizzle's driz_cr rule on hand-computed tiny images, the 1-sigma rule,
and how simulated frames use them.

The driz_cr constants are restated from drizzlepac (pars/astrodrizzle.cfgspc, STEP 6) so a
wrong constant in the simulator fails here.
"""
import math

import numpy as np
import pytest

from cosmiq_pyro.data import simulate as sim

SNR = (3.5, 3.0)  # driz_cr_snr "3.5 3.0"
SCALE = (1.2, 0.7)  # driz_cr_scale "1.2 0.7"
GROW = 1  # driz_cr_grow 1


def flat(value=50.0, shape=(9, 9)):
    return np.full(shape, value)


# A flat model of 50 e- with a subtracted sky of 50 e- and no read noise: driz_cr's noise is
# sqrt(|50 + 50| + 0) = 10 e-, the derivative is 0, so a core needs > 35 e- and a neighbour
# of a core > 30 e-.
MODEL, SKY, RN = 50.0, 50.0, 0.0


def test_constants_are_drizzlepacs_defaults():
    assert sim.DRIZ_CR_SNR == SNR and sim.DRIZ_CR_SCALE == SCALE and sim.DRIZ_CR_GROW == GROW
    assert set(sim.LABEL_RULES) == {"drizcr", "sigma"}


def test_noise_counts_the_sky_twice():
    # sqrt(|b + s| + rn^2): b = 50 (sky included), s = 50, rn = 3 -> sqrt(109)
    assert sim.drizcr_noise_e(np.array([[50.0]]), 50.0, 3.0)[0, 0] == pytest.approx(math.sqrt(109))


def test_derivative_is_largest_difference_to_edge_neighbours():
    b = np.array([[1.0, 2.0, 4.0],
                  [0.0, 5.0, 3.0],
                  [7.0, 1.0, 1.0]])
    # by hand, e.g. centre 5: |5-2|, |5-0|, |5-3|, |5-1| -> 5; corner 7: |7-0|, |7-1| -> 7
    expected = np.array([[1.0, 3.0, 2.0],
                         [7.0, 5.0, 2.0],
                         [7.0, 6.0, 2.0]])
    np.testing.assert_array_equal(sim.model_derivative(b), expected)
    assert not sim.model_derivative(flat()).any()


@pytest.mark.parametrize("charge, flagged", [(36.0, True), (34.0, False)])
def test_single_pixel_core_threshold(charge, flagged):
    cr = np.zeros((9, 9))
    cr[4, 4] = charge
    mask = sim.drizcr_mask(cr, flat(MODEL), SKY, RN)
    assert mask[4, 4] == flagged
    assert mask.sum() == int(flagged)  # nothing else, and no growth by default


def test_neighbours_use_the_second_pair():
    cr = np.zeros((9, 9))
    cr[4, 4] = 40.0  # core (> 35)
    cr[4, 5] = 31.0  # edge neighbour above 30: CR
    cr[5, 5] = 31.0  # diagonal neighbour above 30: CR (the 3 x 3 box)
    cr[3, 4] = 29.0  # neighbour below 30: not CR
    cr[4, 7] = 33.0  # above 30 but two pixels from the core: not CR
    cr[0, 0] = 34.0  # alone and below the core threshold: not CR
    mask = sim.drizcr_mask(cr, flat(MODEL), SKY, RN)
    expected = np.zeros((9, 9), bool)
    expected[4, 4] = expected[4, 5] = expected[5, 5] = True
    np.testing.assert_array_equal(mask, expected)
    # the 1-sigma rule (sigma = sqrt(50 + 0) = 7.07 e-) takes every one of them
    assert sim.sigma_mask(cr, flat(MODEL), RN).sum() == 6


def test_gradient_term_suppresses_a_cr_on_a_star_edge():
    # model: 50 e- on the left, 250 e- from column 4 on (a sharp star edge): the derivative
    # is 200 on columns 3 and 4.  On column 4: noise sqrt(250 + 50) = 17.32, core threshold
    # 3.5 * 17.32 + 1.2 * 200 = 300.6 e-.  Far from the edge (column 7) it is 60.6 e-.
    model = flat(MODEL)
    model[:, 4:] = 250.0
    cr = np.zeros((9, 9))
    cr[4, 4] = 200.0  # on the edge
    cr[1, 7] = 200.0  # same charge, same model level, flat surroundings
    mask = sim.drizcr_mask(cr, model, SKY, RN)
    assert not mask[4, 4] and mask[1, 7]
    # the gradient term is what spares it, and the 1-sigma rule takes it
    assert sim.drizcr_mask(cr, model, SKY, RN, scale=(0.0, 0.0))[4, 4]
    assert sim.sigma_mask(cr, model, RN)[4, 4]
    cr[4, 4] = 301.0  # just above the edge threshold
    assert sim.drizcr_mask(cr, model, SKY, RN)[4, 4]


def test_growth():
    cr = np.zeros((9, 9))
    cr[4, 4] = 36.0
    # driz_cr_grow = 1 is a 1 x 1 box: nothing is added (the neighbour pass is the 3 x 3 step)
    assert sim.drizcr_mask(cr, flat(MODEL), SKY, RN, grow=1).sum() == 1
    # grow = 3: the whole 3 x 3 box around the CR pixel, one pixel on every side
    grown = sim.drizcr_mask(cr, flat(MODEL), SKY, RN, grow=3)
    expected = np.zeros((9, 9), bool)
    expected[3:6, 3:6] = True
    np.testing.assert_array_equal(grown, expected)
    with pytest.raises(ValueError, match="grow"):
        sim.drizcr_mask(cr, flat(MODEL), SKY, RN, grow=0)


def test_cores_on_the_frame_edge():
    cr = np.zeros((5, 5))
    cr[0, 0] = 36.0
    cr[0, 1] = 31.0
    cr[1, 1] = 31.0
    mask = sim.drizcr_mask(cr, flat(MODEL, (5, 5)), SKY, RN)
    assert mask.sum() == 3 and mask[0, 0] and mask[0, 1] and mask[1, 1]


# --------------------------------------------------------------------------- frames


def test_frame_labels_follow_the_rule_and_are_stricter_than_one_sigma():
    kw = dict(size=96, field="GC", filter="F814W", exptime_s=800.0, seed=4)
    d = sim.simulate_frame(**kw)  # default rule: driz_cr
    s = sim.simulate_frame(label_rule="sigma", **kw)
    assert d.meta["label_rule"] == "drizcr" and s.meta["label_rule"] == "sigma"
    np.testing.assert_array_equal(d.image, s.image)  # the rule changes the labels only
    np.testing.assert_array_equal(
        d.mask, sim.drizcr_mask(d.cr_image, d.noiseless, d.sky_e, d.meta["read_noise_e"]))
    # every driz_cr pixel has CR charge > 3 sqrt(b + s + rn^2) > 1 sigma: a subset
    assert not (d.mask & ~s.mask).any()
    assert 0 < d.mask.sum() < s.mask.sum()
    assert d.meta["n_cr_px"] == d.mask.sum()
    again = sim.simulate_frame(**kw)
    np.testing.assert_array_equal(again.mask, d.mask)


def test_label_rule_reaches_datasets():
    data = sim.make_dataset(2, size=32, seed=1, label_rule="sigma")
    assert set(data.meta["label_rule"]) == {"sigma"}
    with pytest.raises(ValueError, match="label_rule"):
        sim.make_dataset(2, size=32, label_rule="1sigma")
    from cosmiq_pyro.data.datasets import SimulatedDataset
    ds = SimulatedDataset(2, size=32, seed=1, label_rule="sigma")
    np.testing.assert_array_equal(ds.frame(1).mask, sim.simulate_frame(
        size=32, label_rule="sigma", **sim.frame_spec(1, 1, ("EX", "GC", "GAL"))).mask)
    with pytest.raises(ValueError, match="label_rule"):
        SimulatedDataset(2, size=32, label_rule="drizzle")


def test_cli_simulate_labels(tmp_path):
    import pandas as pd

    from cosmiq_pyro.app.cli import main

    for rule in ("sigma", "drizcr"):
        out = tmp_path / rule
        assert main(["simulate", str(out), "--n", "2", "--size", "32", "--previews", "0",
                     "--labels", rule]) == 0
        meta = pd.read_csv(out / "meta.csv")
        assert list(meta["label_rule"]) == [rule, rule]
        masks = [np.load(p)[1] for p in sorted(out.glob("0*.npy"))]
        assert [int(m.sum()) for m in masks] == list(meta["n_cr_px"])
    assert main(["simulate", str(tmp_path / "x"), "--labels", "acsrej"]) == 2
    assert not (tmp_path / "x").exists()
