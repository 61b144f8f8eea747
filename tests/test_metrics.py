"""Tests of cosmiq_pyro.evaluation.metrics against hand-computed values, invariants and peer libraries."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage
from scipy.stats import mannwhitneyu

from cosmiq_pyro.evaluation import metrics as M
from cosmiq_pyro.evaluation.metrics.uncertainty import _oracle_aurc  # the closed form checked below

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------- hypothesis strategies

@st.composite
def labelled_scores(draw, min_size=2, max_size=40, levels=32):
    """p on the grid k/levels (ties likely), y with both classes, ignore sparing >= 2 pixels."""
    n = draw(st.integers(min_size, max_size))
    p = np.array(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n))) / levels
    y = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    y[0], y[1] = True, False
    return p, y


@st.composite
def with_uncertainty(draw):
    p, y = draw(labelled_scores())
    u = np.array(draw(st.lists(st.integers(0, 6), min_size=p.size, max_size=p.size)), float) / 7
    return p, y, u


# ----------------------------------------------------------------- calibration, by hand

P4 = np.array([0.1, 0.4, 0.35, 0.8])
Y4 = np.array([0, 0, 1, 1])


def test_brier_by_hand():
    # (0.1-0)^2 + (0.4-0)^2 + (0.35-1)^2 + (0.8-1)^2 = 0.01 + 0.16 + 0.4225 + 0.04 = 0.6325
    assert M.brier(P4, Y4) == pytest.approx(0.6325 / 4, abs=1e-15)


def test_nll_by_hand_and_clipping():
    # -(ln 0.9 + ln 0.6 + ln 0.35 + ln 0.8) / 4
    # = (0.1053605 + 0.5108256 + 1.0498221 + 0.2231436) / 4 = 1.8891518 / 4
    assert M.nll(P4, Y4) == pytest.approx(0.47228795, abs=1e-8)
    # p = 0 on a CR and p = 1 on the sky are clipped to 1e-7 / 1 - 1e-7: -ln(1e-7) = 16.1181
    assert M.nll([0.0, 1.0], [1, 0]) == pytest.approx(-math.log(1e-7), rel=1e-9)
    assert M.nll([0.0, 1.0], [1, 0], eps=1e-3) == pytest.approx(-math.log(1e-3), rel=1e-9)
    # right and certain: -ln(1 - 1e-7) = 1.00000005e-7
    assert M.nll([0.0, 1.0], [0, 1]) == pytest.approx(1.00000005e-7, rel=1e-6)


def test_ece_and_reliability_by_hand():
    p = np.array([0.1, 0.12, 0.5, 0.52, 0.9])
    y = np.array([0, 1, 1, 0, 1])
    # 15 bins of width 1/15: 0.1, 0.12 -> bin 1; 0.5, 0.52 -> bin 7; 0.9 -> bin 13
    # bin 1: |0.5 - 0.11| = 0.39 (2 px); bin 7: |0.5 - 0.51| = 0.01 (2 px); bin 13: 0.1 (1 px)
    # ECE = (2*0.39 + 2*0.01 + 1*0.1) / 5 = 0.9 / 5 = 0.18
    assert M.ece(p, y) == pytest.approx(0.18, abs=1e-12)
    mean_p, frac, count = M.reliability_curve(p, y, 15)
    assert count.tolist() == [0, 2, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0]
    np.testing.assert_allclose(mean_p[[1, 7, 13]], [0.11, 0.51, 0.9])
    np.testing.assert_allclose(frac[[1, 7, 13]], [0.5, 0.5, 1.0])
    assert np.isnan(mean_p[0]) and np.isnan(frac[0])


def test_ece_p_equal_one_goes_in_last_bin():
    curve = M.reliability_curve([1.0, 1.0], [0, 1])
    assert curve.count[-1] == 2 and curve.count[:-1].sum() == 0
    assert curve.ece == pytest.approx(0.5)  # |0.5 - 1.0|


def test_ece_quantile_by_hand():
    # quantile edges of [0.1, 0.2, 0.3, 0.4] for 2 bins: 0.1, 0.25, 0.4
    # bin 0 = {0.1, 0.2}: |0 - 0.15| ; bin 1 = {0.3, 0.4}: |1 - 0.35| ; ECE = (0.15 + 0.65) / 2
    curve = M.reliability_curve([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], 2, "quantile")
    np.testing.assert_allclose(curve.edges, [0.1, 0.25, 0.4])
    assert curve.ece == pytest.approx(0.4)
    assert M.ece([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], 2, "quantile") == pytest.approx(0.4)


def test_quantile_edges_match_numpy():
    x = np.random.default_rng(0).random(1001).astype(np.float32) ** 3
    curve = M.reliability_curve(x, x > 0.5, 7, "quantile")
    np.testing.assert_allclose(curve.edges, np.quantile(x.astype(np.float64), np.linspace(0, 1, 8)),
                               rtol=1e-6)
    assert curve.count.sum() == x.size


# ----------------------------------------------------------------- calibration, properties

@FAST
@given(st.lists(st.tuples(st.integers(1, 12), st.integers(0, 12), st.integers(1, 4)),
                min_size=1, max_size=8),
       st.sampled_from(["uniform", "quantile"]))
def test_ece_of_perfectly_calibrated_sample_is_zero(groups, strategy):
    # each group: value j/d on d*r pixels of which exactly j*r are CRs -> calibrated per value,
    # hence per bin whatever values share a bin (a bin never splits the pixels of one value)
    p, y = [], []
    for d, j, r in groups:
        j = min(j, d)
        p += [j / d] * (d * r)
        y += [1] * (j * r) + [0] * ((d - j) * r)
    assert M.ece(np.array(p), np.array(y), strategy=strategy) < 1e-12


@FAST
@given(labelled_scores())
def test_brier_and_nll_are_minimised_at_p_equal_y(data):
    p, y = data
    best_b, best_n = M.brier(y.astype(float), y), M.nll(y.astype(float), y)
    assert best_b == 0.0
    assert M.brier(p, y) >= best_b
    assert M.nll(p, y) >= best_n - 1e-15
    # moving every p halfway towards y improves both
    closer = (p + y) / 2
    assert M.brier(closer, y) <= M.brier(p, y)
    assert M.nll(closer, y) <= M.nll(p, y) + 1e-15


# ----------------------------------------------------------------- detection, by hand

def test_roc_curve_exact_by_hand():
    # thresholds from the top: p > 0.8 none; > 0.4 {0.8}; > 0.35 {0.8, 0.4};
    # > 0.1 {0.8, 0.4, 0.35}; > -inf all
    r = M.roc_curve(P4, Y4)
    np.testing.assert_array_equal(r.thresholds, [0.8, 0.4, 0.35, 0.1, -np.inf])
    np.testing.assert_array_equal(r.tpr_pct, [0, 50, 50, 100, 100])
    np.testing.assert_array_equal(r.fpr_pct, [0, 0, 50, 50, 100])
    assert (r.n_pos, r.n_neg) == (2, 2)


def test_roc_curve_grid_thresholds_use_strict_greater():
    # p > 0.5: {0.8} -> TPR 50, FPR 0 ; p > 0.4: {0.8} (0.4 is not > 0.4) ; p > 0.2: 3 pixels
    r = M.roc_curve(P4, Y4, thresholds=[0.5, 0.4, 0.2])
    np.testing.assert_array_equal(r.tpr_pct, [50, 50, 100])
    np.testing.assert_array_equal(r.fpr_pct, [0, 0, 50])


def test_roc_threshold_compared_in_float64_like_deepcr():
    # float32(0.1) = 0.10000000149 > 0.1 (float64), as numpy compares float32 > float64 scalar
    p = np.array([0.1, 0.0], np.float32)
    r = M.roc_curve(p, [1, 0], thresholds=[0.1])
    assert r.tpr_pct[0] == 100.0


def test_roc_drop_intermediate_keeps_only_vertices():
    # points (FPR, TPR): (0,0) (0,100) (33,100) (67,100) (100,100): the two inner points of the
    # horizontal top edge are dropped
    p, y = [0.1, 0.2, 0.3, 0.9], [0, 0, 0, 1]
    full = M.roc_curve(p, y, drop_intermediate=False)
    assert full.thresholds.size == 5
    r = M.roc_curve(p, y)
    np.testing.assert_array_equal(r.thresholds, [0.9, 0.3, -np.inf])
    np.testing.assert_array_equal(r.tpr_pct, [0, 100, 100])
    np.testing.assert_array_equal(r.fpr_pct, [0, 0, 100])


def test_roc_dilation_by_hand():
    # one 2-pixel CR at (2,2)-(2,3); only (2,2) passes 0.5
    p = np.zeros((5, 5))
    p[2, 2] = 0.9
    y = np.zeros((5, 5), bool)
    y[2, 2] = y[2, 3] = True
    r = M.roc_curve(p, y, thresholds=[0.5], dilate=1)
    assert r.tpr_pct[0] == 50 and r.fpr_pct[0] == 0
    # disk(1) = the 3x3 cross: (2,2) + 4 neighbours, (2,3) is one of them: TP 2, FP 3 of 23
    assert r.tpr_dilated_pct[0] == 100
    assert r.fpr_dilated_pct[0] == pytest.approx(100 * 3 / 23)
    # disk(2): 13 pixels (dy^2 + dx^2 <= 4): TP 2, FP 11
    r2 = M.roc_curve(p, y, thresholds=[0.5], dilate=2)
    assert r2.fpr_dilated_pct[0] == pytest.approx(100 * 11 / 23)


def test_dilation_stays_within_each_frame():
    p = np.zeros((2, 5, 5))
    p[0, 4, 2] = 0.9  # bottom row of frame 0
    y = np.zeros((2, 5, 5), bool)
    y[1, 0, 2] = True  # top row of frame 1: touched only if dilation leaked across frames
    y[0, 0, 0] = True
    r = M.roc_curve(p, y, thresholds=[0.5], dilate=1)
    assert r.tpr_dilated_pct[0] == 0
    # (4,2) + (3,2), (4,1), (4,3): 4 false positives out of 48 negatives
    assert r.fpr_dilated_pct[0] == pytest.approx(100 * 4 / 48)


def test_ignored_pixels_neither_count_nor_seed_dilation():
    p = np.zeros((5, 5))
    p[2, 2] = 0.9
    y = np.zeros((5, 5), bool)
    y[2, 3] = y[0, 0] = True
    ignore = np.zeros((5, 5), bool)
    ignore[2, 2] = True
    r = M.roc_curve(p, y, thresholds=[0.5], dilate=1, ignore=ignore)
    assert r.tpr_dilated_pct[0] == 0 and r.fpr_dilated_pct[0] == 0
    assert (r.n_pos, r.n_neg) == (2, 22)


def test_dilate_needs_frames():
    with pytest.raises(ValueError, match="dilate"):
        M.roc_curve(np.zeros(10), np.arange(10) % 2, dilate=1)
    with pytest.raises(ValueError, match="dilate"):
        M.tpr_at_fpr(np.zeros((2, 2, 2, 2)), np.ones((2, 2, 2, 2)), dilate=1)


def test_tpr_at_fpr_by_hand():
    # 2 negatives (0.1, 0.4). FPR <= 49 %: no FP allowed -> threshold 0.4 -> TPR 50 %;
    # FPR <= 50 %: one FP allowed -> threshold 0.1 -> TPR 100 %
    res = M.tpr_at_fpr(P4, Y4, fpr=(0.49, 0.5))
    np.testing.assert_array_equal(res.tpr_pct, [50, 100])
    np.testing.assert_array_equal(res.fpr_pct, [0, 50])
    np.testing.assert_array_equal(res.threshold, [0.4, 0.1])


def test_tpr_at_fpr_does_not_split_ties():
    # a positive pair and a negative tied at 0.5: without any FP allowed, none of the three can
    # be flagged (a naive walk down a sorted list would claim TPR 50 or 100 %)
    res = M.tpr_at_fpr([0.5, 0.5, 0.5, 0.2], [1, 0, 1, 0], fpr=(0.4, 0.5))
    np.testing.assert_array_equal(res.tpr_pct, [0, 100])
    np.testing.assert_array_equal(res.fpr_pct, [0, 50])


def test_tpr_at_fpr_every_negative_allowed():
    res = M.tpr_at_fpr(P4, Y4, fpr=1.0)
    assert res.tpr_pct[0] == 100 and res.threshold[0] == -np.inf


def test_roc_auc_by_hand():
    # pairs (pos, neg): (0.35,0.1) win, (0.35,0.4) loss, (0.8,0.1) win, (0.8,0.4) win -> 3/4
    assert M.roc_auc(P4, Y4) == 0.75
    # a tie counts half: pos 0.5 vs neg {0.5, 0.2} -> (0.5 + 1) / 2
    assert M.roc_auc([0.5, 0.5, 0.2], [1, 0, 0]) == 0.75


# ----------------------------------------------------------------- detection vs peers

def _reference_counts(p, y, ignore, t, radius):
    """TP, FP of (dilated) ``p > t`` by scipy.ndimage, frame by frame; ignored pixels skipped."""
    r = np.arange(-radius, radius + 1)
    disk = (r[:, None] ** 2 + r[None, :] ** 2) <= radius ** 2
    flagged = (p > t) & ~ignore
    if radius:
        flagged = np.stack([ndimage.binary_dilation(f, structure=disk) for f in flagged])
    keep = ~ignore
    return int((flagged & y & keep).sum()), int((flagged & ~y & keep).sum())


def test_roc_with_dilation_matches_deepcr_evaluate():
    deepcr_evaluate = pytest.importorskip("deepCR.evaluate")

    class EchoModel:  # deepCR's _roc calls model.clean(image, inpaint=False, binary=False)
        def clean(self, image, inpaint=False, binary=False):
            return image

    rng = np.random.default_rng(1)
    p = rng.random((3, 16, 16)).astype(np.float32)
    y = (rng.random((3, 16, 16)) < 0.1).astype(np.float32)
    thresholds = np.linspace(0.001, 0.999, 40)
    for rad in (1, 2):
        (tpr, fpr), (tpr_d, fpr_d) = deepcr_evaluate.roc(
            EchoModel(), p, y, np.zeros_like(p), thresholds=thresholds, dilate=True, rad=rad)
        r = M.roc_curve(p, y, thresholds, dilate=rad)
        np.testing.assert_allclose(r.tpr_pct, tpr, atol=1e-10)
        np.testing.assert_allclose(r.fpr_pct, fpr, atol=1e-10)
        np.testing.assert_allclose(r.tpr_dilated_pct, tpr_d, atol=1e-10)
        np.testing.assert_allclose(r.fpr_dilated_pct, fpr_d, atol=1e-10)


@pytest.mark.parametrize("radius", [1, 3])
def test_exact_dilated_roc_and_tpr_at_fpr_match_scipy_reference(radius):
    rng = np.random.default_rng(7 + radius)
    p = np.round(rng.random((2, 12, 12)) ** 2, 2)  # ties
    y = rng.random((2, 12, 12)) < 0.15
    ignore = rng.random((2, 12, 12)) < 0.1
    keep = ~ignore
    n_pos, n_neg = int((y & keep).sum()), int((~y & keep).sum())
    r = M.roc_curve(p, y, dilate=radius, ignore=ignore, drop_intermediate=False)
    for k, t in enumerate(r.thresholds):
        tp, fp = _reference_counts(p, y, ignore, t, 0)
        tpd, fpd = _reference_counts(p, y, ignore, t, radius)
        assert r.tpr_pct[k] == pytest.approx(100 * tp / n_pos)
        assert r.fpr_pct[k] == pytest.approx(100 * fp / n_neg)
        assert r.tpr_dilated_pct[k] == pytest.approx(100 * tpd / n_pos)
        assert r.fpr_dilated_pct[k] == pytest.approx(100 * fpd / n_neg)
    # vertices only: every dropped point lies on the kept polylines
    slim = M.roc_curve(p, y, dilate=radius, ignore=ignore)
    assert slim.thresholds.size < r.thresholds.size
    for xs, ys in [("fpr_pct", "tpr_pct"), ("fpr_dilated_pct", "tpr_dilated_pct")]:
        # each full-curve point between two kept vertices lies on the segment joining them
        x, yy = getattr(r, xs), getattr(r, ys)
        sx, sy = getattr(slim, xs), getattr(slim, ys)
        for j in range(len(sx) - 1):
            seg = (r.thresholds <= slim.thresholds[j]) & (r.thresholds >= slim.thresholds[j + 1])
            cross = (sx[j + 1] - sx[j]) * (yy[seg] - sy[j]) - (sy[j + 1] - sy[j]) * (x[seg] - sx[j])
            np.testing.assert_allclose(cross, 0, atol=1e-8)
    # tpr_at_fpr: brute force over every distinct threshold with the scipy reference
    targets = np.array([0.0, 0.02, 0.1, 0.3])
    res = M.tpr_at_fpr(p, y, targets, dilate=radius, ignore=ignore)
    cands = np.concatenate([np.unique(p), [-np.inf]])
    counts = np.array([_reference_counts(p, y, ignore, t, 0) + _reference_counts(p, y, ignore, t, radius)
                       for t in cands])  # tp, fp, tp_d, fp_d
    for k, a in enumerate(targets):
        ok = counts[:, 1] <= a * n_neg + 1e-9
        assert res.tpr_pct[k] == pytest.approx(100 * counts[ok, 0].max() / n_pos)
        assert res.tpr_dilated_pct[k] == pytest.approx(100 * counts[ok, 2].max() / n_pos)
        ok_d = counts[:, 3] <= a * n_neg + 1e-9
        assert res.tpr_dilated_true_pct[k] == pytest.approx(100 * counts[ok_d, 2].max() / n_pos)


@FAST
@given(labelled_scores(max_size=60))
def test_roc_auc_matches_mann_whitney(data):
    p, y = data
    u_stat = mannwhitneyu(p[y], p[~y], alternative="two-sided", method="asymptotic").statistic
    assert M.roc_auc(p, y) == pytest.approx(u_stat / (y.sum() * (~y).sum()), abs=1e-12)
    # ... and equals the trapezoid area under the exact ROC curve
    r = M.roc_curve(p, y)
    area = np.trapezoid(r.tpr_pct, r.fpr_pct) / 1e4  # FPR rises along the curve
    assert M.roc_auc(p, y) == pytest.approx(area, abs=1e-12)


@FAST
@given(labelled_scores(), st.sampled_from(["square", "sqrt", "cubic-mix"]))
def test_detection_metrics_invariant_to_monotone_transform(data, name):
    p, y = data
    g = {"square": np.square, "sqrt": np.sqrt, "cubic-mix": lambda x: (x + x ** 3) / 2}[name]
    q = g(p)
    a, b = M.roc_curve(p, y), M.roc_curve(q, y)
    np.testing.assert_array_equal(a.tpr_pct, b.tpr_pct)
    np.testing.assert_array_equal(a.fpr_pct, b.fpr_pct)
    np.testing.assert_allclose(g(a.thresholds[:-1]), b.thresholds[:-1])
    np.testing.assert_array_equal(M.tpr_at_fpr(p, y, (0.1, 0.5)).tpr_pct,
                                  M.tpr_at_fpr(q, y, (0.1, 0.5)).tpr_pct)
    assert M.roc_auc(p, y) == M.roc_auc(q, y)
    # dilated curves too (the max over a neighbourhood commutes with g)
    frame_p, frame_y = p[None, None, :], y[None, None, :]
    da, db = M.roc_curve(frame_p, frame_y, dilate=1), M.roc_curve(g(frame_p), frame_y, dilate=1)
    np.testing.assert_array_equal(da.tpr_dilated_pct, db.tpr_dilated_pct)
    np.testing.assert_array_equal(da.fpr_dilated_pct, db.fpr_dilated_pct)


# ----------------------------------------------------------------- uncertainty, by hand

PU = np.array([0.9, 0.2, 0.6, 0.4])   # predictions at 0.5: 1, 0, 1, 0
YU = np.array([1, 1, 0, 0])           # wrong: pixels 1 and 2
UU = np.array([0.1, 0.3, 0.2, 0.4])   # order by u: 0 (right), 2 (wrong), 1 (wrong), 3 (right)


def test_risk_coverage_by_hand():
    rc = M.risk_coverage(PU, YU, UU)
    # risks after 1..4 pixels: 0/1, 1/2, 2/3, 2/4
    np.testing.assert_allclose(rc.coverage, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(rc.risk, [0, 1 / 2, 2 / 3, 1 / 2])
    # AURC = (0 + 1/2 + 2/3 + 1/2) / 4 = 5/12; oracle (right first): (0 + 0 + 1/3 + 2/4) / 4 = 5/24
    assert rc.aurc == pytest.approx(5 / 12, abs=1e-15)
    assert rc.aurc_oracle == pytest.approx(5 / 24, abs=1e-15)
    assert M.e_aurc(PU, YU, UU) == pytest.approx(5 / 24, abs=1e-15)
    assert M.aurc(PU, YU, UU) == pytest.approx(5 / 12, abs=1e-15)
    assert rc.error_rate == 0.5 and (rc.n, rc.n_errors) == (4, 2)


def test_aurc_with_ties_by_hand():
    # u ties in pairs: {0 right, 1 wrong} then {2 wrong, 3 right}. Expected risk over the two
    # orders of each pair: i=1: 1/2, i=2: 1/2, i=3: (1 + 1/2)/3 = 1/2, i=4: 2/4 -> AURC 1/2
    assert M.aurc(PU, YU, [0.1, 0.1, 0.2, 0.2]) == pytest.approx(0.5, abs=1e-15)


def test_aurc_with_ties_is_average_over_tie_orders():
    rng = np.random.default_rng(3)
    for _ in range(10):
        n = 6
        err = rng.random(n) < 0.5
        err[0] = True
        u = rng.integers(0, 3, n).astype(float)
        p, y = np.where(err, 0.9, 0.1), np.zeros(n, bool)  # wrong exactly where err
        values = []
        for perm in itertools.permutations(range(n)):
            order = np.lexsort((np.array(perm), u))  # sort by u, ties broken by perm
            values.append(np.mean(np.cumsum(err[order]) / np.arange(1, n + 1)))
        assert M.aurc(p, y, u) == pytest.approx(np.mean(values), abs=1e-12)


def test_aurc_constant_uncertainty_is_error_rate():
    rng = np.random.default_rng(0)
    p, y = rng.random(500), rng.random(500) < 0.3
    err_rate = np.mean((p > 0.5) != y)
    assert M.aurc(p, y, np.zeros(500)) == pytest.approx(err_rate, abs=1e-12)


@pytest.mark.parametrize("n,m", [(10, 3), (5000, 4999), (2_000_000, 1500), (3_000_000, 2_500_000)])
def test_oracle_aurc_matches_direct_sum(n, m):
    # (1/n) sum_{i=n-m+1}^{n} (i - (n - m)) / i, summed directly
    i = np.arange(n - m + 1, n + 1, dtype=np.float64)
    direct = np.sum((i - (n - m)) / i) / n
    assert _oracle_aurc(n, m) == pytest.approx(direct, rel=1e-10)


@FAST
@given(with_uncertainty())
def test_oracle_ordering_has_zero_excess_aurc(data):
    p, y, u = data
    err = (p > 0.5) != y
    u_oracle = err + 0.5 * u  # every wrong pixel above every right one, ties inside each group
    rc = M.risk_coverage(p, y, u_oracle)
    assert rc.aurc == pytest.approx(rc.aurc_oracle, abs=1e-12)
    assert abs(M.e_aurc(p, y, u_oracle)) < 1e-12
    # no ordering beats the oracle: at every coverage it has the fewest errors possible
    assert M.e_aurc(p, y, u) >= -1e-12


def test_error_vs_uncertainty_by_hand():
    u = np.array([0.1, 0.3, 0.35, 0.4])  # wrong: pixels 1 and 2
    # uniform, 2 bins on [0.1, 0.4]: {0.1} -> 0 % ; {0.3, 0.35, 0.4} -> 2/3
    mean_u, rate, count = M.error_vs_uncertainty(PU, YU, u, 2, "uniform")
    np.testing.assert_allclose(mean_u, [0.1, 0.35])
    np.testing.assert_allclose(rate, [0, 2 / 3])
    np.testing.assert_array_equal(count, [1, 3])
    # quantile, 2 bins: median 0.325 -> {0.1, 0.3}: 1/2 ; {0.35, 0.4}: 1/2
    mean_u, rate, count = M.error_vs_uncertainty(PU, YU, u, 2, "quantile")
    np.testing.assert_allclose(rate, [0.5, 0.5])
    np.testing.assert_array_equal(count, [2, 2])


def test_error_detection_auroc_by_hand():
    # wrong pixels have u {0.3, 0.5}, right ones {0.3, 0.1}:
    # (0.3 vs 0.3) 1/2, (0.3 vs 0.1) 1, (0.5 vs 0.3) 1, (0.5 vs 0.1) 1 -> 3.5 / 4
    assert M.error_detection_auroc(PU, YU, [0.3, 0.3, 0.5, 0.1]) == 0.875
    assert M.error_detection_auroc(PU, YU, UU) == 0.5


@FAST
@given(with_uncertainty())
def test_error_detection_auroc_matches_mann_whitney(data):
    p, y, u = data
    err = (p > 0.5) != y
    if err.all() or not err.any():
        with pytest.raises(ValueError, match="wrong"):
            M.error_detection_auroc(p, y, u)
        return
    stat = mannwhitneyu(u[err], u[~err], method="asymptotic").statistic
    assert M.error_detection_auroc(p, y, u) == pytest.approx(stat / (err.sum() * (~err).sum()),
                                                             abs=1e-12)


# ----------------------------------------------------------------- ignore masks

@FAST
@given(with_uncertainty(), st.data())
def test_ignore_equals_subsetting(data, draw):
    p, y, u = data
    ignore = np.array(draw.draw(st.lists(st.booleans(), min_size=p.size, max_size=p.size)))
    ignore[:2] = False  # keep one pixel of each class
    keep = ~ignore
    ps, ys, us = p[keep], y[keep], u[keep]
    assert M.brier(p, y, ignore=ignore) == M.brier(ps, ys)
    assert M.nll(p, y, ignore=ignore) == M.nll(ps, ys)
    for strategy in ("uniform", "quantile"):
        assert M.ece(p, y, 5, strategy, ignore=ignore) == M.ece(ps, ys, 5, strategy)
    a, b = M.roc_curve(p, y, ignore=ignore), M.roc_curve(ps, ys)
    np.testing.assert_array_equal(a.tpr_pct, b.tpr_pct)
    np.testing.assert_array_equal(a.fpr_pct, b.fpr_pct)
    np.testing.assert_array_equal(M.tpr_at_fpr(p, y, ignore=ignore).tpr_pct,
                                  M.tpr_at_fpr(ps, ys).tpr_pct)
    assert M.roc_auc(p, y, ignore=ignore) == M.roc_auc(ps, ys)
    assert M.aurc(p, y, u, ignore=ignore) == M.aurc(ps, ys, us)
    assert M.e_aurc(p, y, u, ignore=ignore) == M.e_aurc(ps, ys, us)
    ea, eb = M.error_vs_uncertainty(p, y, u, 3, ignore=ignore), M.error_vs_uncertainty(ps, ys, us, 3)
    np.testing.assert_array_equal(ea.count, eb.count)
    np.testing.assert_array_equal(ea.error_rate, eb.error_rate)
    err = (ps > 0.5) != ys
    if err.any() and not err.all():
        assert (M.error_detection_auroc(p, y, u, ignore=ignore)
                == M.error_detection_auroc(ps, ys, us))


def test_shapes_do_not_matter():
    rng = np.random.default_rng(5)
    p = rng.random((2, 6, 7)).astype(np.float32)
    y, u = rng.random((2, 6, 7)) < 0.3, rng.random((2, 6, 7))
    for f in (M.brier, M.nll, M.ece, M.roc_auc):
        assert f(p, y) == f(p.ravel(), y.ravel()) == f(p.reshape(12, 7), y.reshape(12, 7))
    assert M.aurc(p, y, u) == M.aurc(p.ravel(), y.ravel(), u.ravel())


# ----------------------------------------------------------------- validation and results

@pytest.mark.parametrize("call,match", [
    (lambda: M.brier(np.zeros(3), np.zeros(4)), "y has shape"),
    (lambda: M.brier(np.zeros(3), np.zeros(3), ignore=np.zeros(2)), "ignore has shape"),
    (lambda: M.aurc(np.zeros(3), np.zeros(3), np.zeros(2)), "u has shape"),
    (lambda: M.brier([0.5, 1.5], [0, 1]), "p must hold probabilities"),
    (lambda: M.brier([0.5, np.nan], [0, 1]), "p contains NaN"),
    (lambda: M.brier([0.5, 0.5], [0, 2]), "y must be bool"),
    (lambda: M.aurc([0.5, 0.5], [0, 1], [0.0, np.inf]), "u must be finite"),
    (lambda: M.brier([0.5, 0.5], [0, 1], ignore=[1, 1]), "ignore excludes every pixel"),
    (lambda: M.brier([], []), "p is empty"),
    (lambda: M.ece([0.5], [1], n_bins=0), "n_bins"),
    (lambda: M.ece([0.5], [1], strategy="equal"), "strategy"),
    (lambda: M.nll([0.5], [1], eps=0.0), "eps"),
    (lambda: M.tpr_at_fpr([0.5, 0.2], [1, 0], fpr=5), "fpr must be fractions"),
    (lambda: M.roc_curve([0.5, 0.2], [1, 0], thresholds=[np.nan]), "thresholds"),
    (lambda: M.roc_auc([0.5, 0.2], [1, 1]), "roc_auc needs both"),
    (lambda: M.roc_curve([0.5, 0.2], [0, 0]), "roc_curve needs both"),
    (lambda: M.roc_curve([0.5, 0.2], [1, 0], dilate=-1), "dilate"),
    (lambda: M.aurc([0.5, 0.2], [1, 0], [0, 1], threshold=np.nan), "threshold"),
])
def test_bad_input_raises_value_error_naming_it(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="p must be"):
        M.brier(np.array(["a", "b"]), [0, 1])
    with pytest.raises(TypeError, match="y is required"):
        M.brier([0.5], None)


def test_results_read_well():
    r = M.roc_curve(P4, Y4, thresholds=[0.5], dilate=0)
    assert "n_pos=2" in repr(r)
    t = M.tpr_at_fpr(np.tile(P4, (1, 3, 1)), np.tile(Y4, (1, 3, 1)), dilate=1)
    text = repr(t)
    assert "0.05%" in text and "0.5%" in text and "paper" in text
    assert "ECE=0.18" in repr(M.reliability_curve([0.1, 0.12, 0.5, 0.52, 0.9], [0, 1, 1, 0, 1]))
    assert "E-AURC" in repr(M.risk_coverage(PU, YU, UU))
    assert set(M.risk_coverage(PU, YU, UU).to_dict()) >= {"aurc", "e_aurc", "coverage", "risk"}


# ----------------------------------------------------------------- stars


def test_star_snr_by_the_ccd_equation():
    # F = 10000 e-, b = 100 e-/px, read noise 5 e-, FWHM 2 px: n_pix = 4 pi = 12.566;
    # noise^2 = 10000 + 12.566 * 125 = 11570.8; S/N = 10000 / 107.568 = 92.96
    assert M.star_snr(10000.0, 100.0, 5.0, 2.0) == pytest.approx(92.965, abs=1e-3)
    # photon-limited star on no background: S/N = sqrt(F)
    np.testing.assert_allclose(M.star_snr([100.0, 2500.0], 0.0, 0.0, 3.0), [10.0, 50.0])
    with pytest.raises(ValueError, match="fwhm_px"):
        M.star_snr(1.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="background_e"):
        M.star_snr(1.0, -1.0, 0.0, 1.0)


def test_star_core_mask_is_the_radius_2_disc():
    mask = M.star_core_mask((7, 7), [[3, 3]])
    # the 13 pixels with dr^2 + dc^2 <= 4: the centre, 4 at distance 1, 4 at sqrt 2, 4 at 2
    assert mask.sum() == 13
    assert mask[3, 1] and mask[3, 5] and mask[1, 3] and mask[5, 3] and mask[2, 2] and mask[4, 4]
    assert not mask[2, 1] and not mask[1, 2] and not mask[1, 1]  # distance sqrt 5 and sqrt 8
    # a corner peak keeps the 6 pixels of its disc that are on the frame (0..2 in one axis with
    # dr^2 + dc^2 <= 4 and dr, dc >= 0: (0,0) (0,1) (0,2) (1,0) (1,1) (2,0))
    assert M.star_core_mask((7, 7), [[0, 0]]).sum() == 6
    # discs centred (3,3) and (3,4): within 2 of both are 4 pixels in row 3 (columns 2..5) and
    # 2 in each of rows 2 and 4 (columns 3, 4): overlap 8, union 13 + 13 - 8 = 18
    assert M.star_core_mask((7, 8), [[3, 3], [3, 4]]).sum() == 18
    assert not M.star_core_mask((5, 5), np.zeros((0, 2), int)).any()
    with pytest.raises(TypeError, match="peaks_rc"):
        M.star_core_mask((5, 5), [[1.5, 2.0]])


def test_star_core_flags_by_hand():
    p = np.zeros((9, 9), np.float32)
    p[4, 4] = 0.9   # the peak: flagged
    p[4, 6] = 0.6   # distance 2: flagged
    p[2, 4] = 0.5   # distance 2 but not above the threshold
    p[4, 7] = 0.99  # distance 3: outside the core
    y = np.zeros((9, 9), bool)
    ignore = np.zeros((9, 9), bool)
    flags = M.star_core_flags(p, y, [[4, 4]])
    assert (flags.n_px, flags.n_flagged) == (13, 2) and flags.fraction == pytest.approx(2 / 13)
    y[4, 4] = True        # a CR on the star is not a false alarm: left out
    ignore[3, 3] = True   # ignored pixels are left out
    flags = M.star_core_flags(p, y, [[4, 4]], ignore=ignore)
    assert (flags.n_px, flags.n_flagged) == (11, 1)
    total = flags + M.star_core_flags(p, np.zeros_like(y), [[4, 4]], threshold=0.4)
    assert (total.n_px, total.n_flagged) == (24, 4)
    assert math.isnan(M.star_core_flags(p, y, np.zeros((0, 2), int)).fraction)
    with pytest.raises(ValueError, match="shape"):
        M.star_core_flags(p, y[:5], [[4, 4]])
