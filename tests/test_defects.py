"""What real ACS/WFC _flc frames contain besides sources and CRs: warm and hot pixels (flagged
ones ignored, unflagged ones label 0), bad columns (ignored) and CTE trails (label 0 unless
driz_cr itself would flag them).

Figures restated from the sources the simulator cites, so a wrong constant fails here:
IHB (Cycle 14) Table 4.3, the ACS DQ-flag page, arCTIc's model_for_HST_ACS (Massey et al.),
ACS IHB 2.6.
"""
import math

import numpy as np
import pytest

from cosmiq_pyro.data import simulate as sim

TABLE_4_3 = {0.02: 815, 0.04: 616, 0.06: 480, 0.08: 390, 0.10: 328, 1.00: 16}  # WFC, per day
DQ_WARM = 0.06  # e-/s: DQ 64 from here, DQ 16 above 0.14
NONE = ()


def frame(defects, **kw):
    kw = dict(dict(size=96, field="GC", filter="F606W", exptime_s=1000.0, seed=12), **kw)
    return sim.simulate_frame(defects=defects, **kw)


# --------------------------------------------------------------------------- warm/hot pixels


def test_hot_pixel_rates_follow_table_4_3():
    for rate, n in TABLE_4_3.items():
        assert sim.hot_pixel_rate_quantile(n / 815) == pytest.approx(rate, rel=1e-9)
    # above 1 e-/s the 0.1-1 e-/s power law goes on: N(>10) = 16 * (16 / 328)
    assert sim.hot_pixel_rate_quantile(16 * 16 / 328 / 815) == pytest.approx(10.0, rel=1e-9)
    # between thresholds: log-log interpolation, N(>0.05) = sqrt(616 * 480) at the log midpoint
    assert sim.hot_pixel_rate_quantile(math.sqrt(616 * 480) / 815) == pytest.approx(
        math.sqrt(0.04 * 0.06), rel=1e-9)


def test_hot_pixels_flagged_ones_ignored_unflagged_ones_label_zero():
    t = 1000.0
    off = frame(NONE, exptime_s=t, field="EX")  # EX: no saturated star under a hot pixel
    on = frame(("hot_pixels",), exptime_s=t, field="EX")
    # the CRs do not change: hot pixels are never CR charge
    np.testing.assert_array_equal(on.cr_image, off.cr_image)
    extra = (on.noiseless.astype(float) - off.noiseless) / t  # dark rate, e-/s
    hot = extra > 1e-3
    flagged = on.ignore & ~off.ignore
    m = on.meta
    assert m["n_hot_flagged"] > 0 and m["n_warm_unflagged"] > 0
    assert hot.sum() == m["n_hot_flagged"] + m["n_warm_unflagged"] + m["n_hot_new_unflagged"]
    assert flagged.sum() == m["n_hot_flagged"] and (flagged <= hot).all()
    # flagged: above the DQ threshold; unflagged: warm below it, or newer than the superdark
    assert (extra[flagged] >= DQ_WARM * 0.999).all()
    unflagged = hot & ~flagged
    assert (extra[unflagged] >= 0.02 * 0.999).all()
    assert ((extra[unflagged] >= DQ_WARM).sum() == m["n_hot_new_unflagged"])
    # unflagged hot pixels stay label 0 where no CR charge lies on them
    assert not on.mask[unflagged & (on.cr_image <= 0)].any()
    # and they are in the image: brighter than the same pixel without them
    assert np.median(on.image[unflagged] - off.image[unflagged]) > 0


def test_hot_pixel_counts_match_the_sources():
    """Over many frames: the unflagged warm population is Table 4.3's 335 : 480 of the
    flagged one; new hot pixels come at 480 a day over the WFC's 2 x 4096 x 2048 pixels for
    0-14 days (mean 7)."""
    n = 40
    metas = [frame(("hot_pixels",), size=128, seed=s).meta for s in range(n)]
    flagged = sum(m["n_hot_flagged"] for m in metas)
    warm = sum(m["n_warm_unflagged"] for m in metas)
    new = sum(m["n_hot_new_unflagged"] for m in metas)
    assert warm / flagged == pytest.approx(335 / 480, rel=0.15)
    expected_new = n * 480 * 7 * 128**2 / (2 * 4096 * 2048)
    assert abs(new - expected_new) < 4 * math.sqrt(expected_new) + 2


# --------------------------------------------------------------------------- bad columns


def test_bad_columns_are_ignored_column_segments():
    segments = 0
    for seed in range(4):
        off = frame(NONE, field="EX", size=256, seed=seed)
        on = frame(("bad_columns",), field="EX", size=256, seed=seed)
        np.testing.assert_array_equal(on.cr_image, off.cr_image)
        new = on.ignore & ~off.ignore
        assert new.sum() == on.meta["n_bad_column_px"]
        # every pixel a bad column changes is ignored
        changed = np.abs(on.noiseless.astype(float) - off.noiseless) > 1e-3
        assert not (changed & ~on.ignore).any()
        cols = np.flatnonzero(new.any(axis=0))
        assert 1 <= len(cols) <= on.meta["n_bad_columns"] or on.meta["n_bad_columns"] == 0
        for j in cols:  # a run from a frame edge, or the whole column
            rows = np.flatnonzero(new[:, j])
            if (np.diff(rows) == 1).all():
                assert rows[0] == 0 or rows[-1] == 255
            segments += 1
    assert segments >= 2


# --------------------------------------------------------------------------- CTE


def test_trap_density_matches_arctic():
    # arCTIc model_for_HST_ACS after SM4: 1.011 * (-0.246591 + 0.00055898 * days since launch)
    jd = 2458849.5  # 2020-01-01
    days = jd - 2452334.5
    assert sim.trap_density(jd) == pytest.approx(1.011 * (-0.246591 + 0.00055898 * days))
    assert sim.TRAP_RELEASE_TRANSFERS == (0.74, 7.7, 37.0)
    assert sim.TRAP_SPECIES_SHARE == (1.27, 3.38, 2.85)
    assert sim.WELL_FILL_POWER == 0.478 and sim.FLC_TRAIL_RESIDUAL == 0.25


def test_cte_trail_by_hand():
    """A full-well packet (n = w: it reaches all traps) in row 1 of an empty column, density
    1 trap per pixel, 10 rows from the register: it loses 1 e- per transfer to the traps,
    12 transfers -> 12 e-; row 2 (13 transfers) gets back what the traps release in one
    dwell, sum_s share_s (1 - exp(-1/tau_s)), times 13."""
    w = 84700.0
    q = np.zeros((6, 1))
    q[1, 0] = w
    out = sim.cte_trail(q, rows_to_register=10, total_density=1.0, residual=1.0)
    share = np.array([1.27, 3.38, 2.85]) / 7.5
    tau = np.array([0.74, 7.7, 37.0])
    assert out[0, 0] == 0.0  # read out before the packet: untouched
    assert out[1, 0] == pytest.approx(w - 12.0)
    assert out[2, 0] == pytest.approx(13 * (share * (1 - np.exp(-1 / tau))).sum())
    left = share * np.exp(-1 / tau)  # still trapped after one dwell
    assert out[3, 0] == pytest.approx(14 * (left * (1 - np.exp(-1 / tau))).sum())
    # an _flc keeps a quarter of the change
    flc = sim.cte_trail(q, rows_to_register=10, total_density=1.0)
    np.testing.assert_allclose(flc - q, 0.25 * (out - q))
    # a flat column loses nothing
    flat = np.full((6, 3), 50.0)
    np.testing.assert_allclose(sim.cte_trail(flat, 1000, 3.0, residual=1.0), flat)


def test_cte_trails_behind_crs_are_mostly_label_zero():
    off = frame(("hot_pixels", "bad_columns"), field="EX", size=128, seed=5)
    on = frame(sim.DEFECTS, field="EX", size=128, seed=5)
    m = on.meta
    assert m["cte_trap_density"] > 1.0 and 0 <= m["cte_rows_to_register"] <= 2048 - 128
    assert m["n_cte_trail_px"] > 0
    # the CR charge now has trails where the deposit had none, away from the register
    trail = (on.cr_image > 0.5) & (off.cr_image == 0)
    assert trail.sum() > 10
    # labels still come from the CR charge only, and faint trail pixels are label 0
    assert not (on.mask & (on.cr_image <= 0)).any()
    assert on.mask[trail].mean() < 0.2
    # total CR charge is nearly conserved (what trails past the frame edge is lost)
    assert on.cr_image.sum() == pytest.approx(off.cr_image.sum(), rel=0.05)


def test_readout_direction_sets_the_side_of_the_trail():
    directions = set()
    for seed in range(8):
        f = frame(("cte_trails",), field="EX", size=64, seed=seed)
        g = frame(NONE, field="EX", size=64, seed=seed)
        d = f.cr_image.astype(float) - g.cr_image  # what the read-out did to the CR charge
        i, j = np.unravel_index(np.argmin(d), d.shape)  # the pixel that lost most
        up = d[i + 1:i + 6, j].sum()  # rows read out after it
        down = d[max(i - 5, 0):i, j].sum()
        towards_row0 = f.meta["cte_readout_towards_row0"]
        directions.add(towards_row0)
        # the trail lies behind the packet: at higher rows when read out towards row 0
        assert (up > down) == towards_row0
    assert directions == {True, False}


# --------------------------------------------------------------------------- switches


def test_defects_switch_and_determinism():
    a = frame(sim.DEFECTS)
    b = frame(sim.DEFECTS)
    for name in ("image", "mask", "ignore", "cr_image", "noiseless"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.meta["defects"] == "hot_pixels,bad_columns,cte_trails"
    none = frame(NONE)
    assert none.meta["defects"] == "" and none.meta["n_hot_flagged"] == 0
    assert none.meta["n_bad_columns"] == 0 and none.meta["n_cte_trail_px"] == 0
    with pytest.raises(ValueError, match="defects"):
        frame(("hot_pixels", "dust"))
    data = sim.make_dataset(2, size=32, defects=NONE)
    assert set(data.meta["defects"]) == {""}
    from cosmiq_pyro.data.datasets import SimulatedDataset
    ds = SimulatedDataset(2, size=32, defects=("cte_trails",))
    assert ds.frame(0).meta["defects"] == "cte_trails"
