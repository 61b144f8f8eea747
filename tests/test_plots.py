"""Tests of cosmiq_pyro.evaluation.plots: what each figure draws, labels, overlays, and PNG rendering."""
import os

os.environ["MPLBACKEND"] = "Agg"  # before pyplot is imported anywhere in this process

from types import SimpleNamespace  # noqa: E402

import matplotlib  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cosmiq_pyro.evaluation import metrics as M  # noqa: E402
from cosmiq_pyro.evaluation import plots as P  # noqa: E402
from cosmiq_pyro.evaluation.plot_maps import plot_maps  # noqa: E402


def assert_rendered(fig, path, dpi=100):
    """``fig`` saved as a PNG decodes to the figure's size in pixels, and every line colour of its
    axes appears in the pixels (the curves were drawn, not just the frame)."""
    fig.savefig(path, dpi=dpi)
    pixels = plt.imread(path)[..., :3]  # (H, W, 3) floats in [0, 1]
    width, height = fig.get_size_inches() * dpi
    assert pixels.shape[:2] == (round(height), round(width))
    for ax in fig.axes:
        for line in ax.lines:
            if line.get_linestyle() in ("None", "") and line.get_marker() in ("None", "", None):
                continue
            rgb = np.array(matplotlib.colors.to_rgb(line.get_color()))
            close = np.all(np.abs(pixels - rgb) < 0.04, axis=-1)
            assert close.sum() >= 3, f"line {line.get_label()!r} ({line.get_color()}) is not in {path.name}"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sample():
    """Two 'models' scoring the same 2 x 48 x 48 truth; u = binary entropy (nats)."""
    rng = np.random.default_rng(0)
    shape = (2, 48, 48)
    y = rng.random(shape) < 0.03
    z = np.where(y, rng.normal(3, 2, shape), rng.normal(-5, 2, shape))
    p_good = (1 / (1 + np.exp(-z))).astype(np.float32)
    p_bad = (1 / (1 + np.exp(-(0.5 * z + rng.normal(0, 1.5, shape))))).astype(np.float32)

    def entropy(p):
        q = np.clip(p.astype(np.float64), 1e-12, 1 - 1e-12)
        return -(q * np.log(q) + (1 - q) * np.log(1 - q))

    return SimpleNamespace(y=y, p_good=p_good, p_bad=p_bad, u_good=entropy(p_good),
                           u_bad=entropy(p_bad))


def _labels(ax):
    return ax.get_legend_handles_labels()[1]


def test_plot_reliability_overlays_models(sample, tmp_path):
    ax = P.plot_reliability(sample.p_good, sample.y, label="VI")
    assert isinstance(ax, plt.Axes)
    same = P.plot_reliability(M.reliability_curve(sample.p_bad, sample.y), ax=ax, label="det")
    assert same is ax
    assert len(ax.lines) == 3  # one diagonal for both calls + one curve per model
    labels = _labels(ax)
    assert labels[0] == "perfect calibration"
    ece_good = M.ece(sample.p_good, sample.y)
    assert labels[1] == f"VI (ECE {ece_good:.2g})" and labels[2].startswith("det (ECE")
    assert "probability" in ax.get_xlabel() and "fraction" in ax.get_ylabel()
    # the drawn points are the non-empty bins of the curve
    curve = M.reliability_curve(sample.p_good, sample.y)
    np.testing.assert_allclose(ax.lines[1].get_xdata(), curve.mean_p[curve.count > 0])
    assert_rendered(ax.figure, tmp_path / "reliability.png")


def test_plot_reliability_log_scale():
    ax = P.plot_reliability([0.01, 0.02, 0.5, 0.9], [0, 0, 1, 1], scale="log")
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"


def test_plot_roc_with_dilation_and_overlay(sample, tmp_path):
    roc = M.roc_curve(sample.p_good, sample.y, dilate=1)
    ax = P.plot_roc(roc, label="VI", dilated="both")
    P.plot_roc(sample.p_bad, sample.y, ax=ax, label="det")
    curves = [ln for ln in ax.lines if ln.get_gid() != "cosmiq-fpr-mark"]
    marks = [ln for ln in ax.lines if ln.get_gid() == "cosmiq-fpr-mark"]
    assert len(curves) == 4  # VI, VI dilated (paper), VI dilated (true), det
    assert len(marks) == 2  # 0.05 % and 0.5 % FPR, drawn once
    np.testing.assert_allclose(sorted(m.get_xdata()[0] for m in marks), [0.05, 0.5])
    labels = _labels(ax)
    assert labels[0] == "VI" and "deepCR paper" in labels[1] and "true dilated" in labels[2]
    assert labels[3] == "det"
    assert curves[0].get_color() == curves[1].get_color() == curves[2].get_color()
    assert curves[3].get_color() != curves[0].get_color()
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "False positive rate (%)" and ax.get_ylabel() == "True positive rate (%)"
    # FPR = 0 points cannot sit on a log axis and are left out
    assert np.all(curves[0].get_xdata() > 0)
    assert_rendered(ax.figure, tmp_path / "roc.png")


def test_plot_roc_default_shows_paper_convention_only(sample):
    ax = P.plot_roc(M.roc_curve(sample.p_good, sample.y, dilate=1))
    assert len([ln for ln in ax.lines if ln.get_gid() != "cosmiq-fpr-mark"]) == 2


def test_plot_risk_coverage(sample, tmp_path):
    rc = M.risk_coverage(sample.p_good, sample.y, sample.u_good)
    ax = P.plot_risk_coverage(rc, label="VI")
    P.plot_risk_coverage(sample.p_bad, sample.y, sample.u_bad, ax=ax, label="det", oracle=False)
    assert len(ax.lines) == 3  # VI + its oracle, det
    labels = _labels(ax)
    assert labels[0] == f"VI (AURC {100 * rc.aurc:.3g} %, E-AURC {100 * rc.e_aurc:.3g} %)"
    assert labels[1] == "VI oracle ranking" and labels[2].startswith("det (AURC")
    # the curve is drawn in percent and ends at full coverage with the overall error rate
    x, yv = ax.lines[0].get_xdata(), ax.lines[0].get_ydata()
    assert x[-1] == pytest.approx(100) and yv[-1] == pytest.approx(100 * rc.error_rate)
    # the oracle is zero until the errors must enter, at coverage 1 - error rate
    ox, oy = ax.lines[1].get_xdata(), ax.lines[1].get_ydata()
    assert np.all(oy[ox <= 100 * (1 - rc.error_rate) - 1e-9] == 0) and oy[-1] == pytest.approx(yv[-1])
    assert "%" in ax.get_xlabel() and "%" in ax.get_ylabel()
    # the y range fits every overlaid curve, not only the first one drawn
    assert ax.get_ylim()[0] == 0
    assert ax.get_ylim()[1] >= max(np.max(ln.get_ydata()) for ln in ax.lines)
    assert_rendered(ax.figure, tmp_path / "risk_coverage.png")


def test_plot_error_vs_uncertainty(sample, tmp_path):
    ax = P.plot_error_vs_uncertainty(sample.p_good, sample.y, sample.u_good, label="VI")
    binned = M.error_vs_uncertainty(sample.p_bad, sample.y, sample.u_bad, n_bins=5)
    P.plot_error_vs_uncertainty(binned, ax=ax, label="det", yscale="log")
    assert len(ax.lines) == 2 and _labels(ax) == ["VI", "det"]
    assert "nats" in ax.get_xlabel() and "(%)" in ax.get_ylabel()
    y_drawn = ax.lines[1].get_ydata()
    expected = 100 * binned.error_rate[binned.count > 0]
    np.testing.assert_allclose(y_drawn, np.where(expected > 0, expected, np.nan))
    assert_rendered(ax.figure, tmp_path / "error_vs_uncertainty.png")


def test_curve_functions_validate_arguments(sample):
    roc = M.roc_curve(sample.p_good, sample.y)
    with pytest.raises(TypeError, match="either a RocCurve or arrays"):
        P.plot_roc(roc, sample.y)
    with pytest.raises(TypeError, match="y must be given"):
        P.plot_roc(sample.p_good)
    with pytest.raises(TypeError, match="y, u must be given"):
        P.plot_risk_coverage(sample.p_good)
    with pytest.raises(ValueError, match="dilated"):
        P.plot_roc(roc, dilated="sometimes")


def _prediction(prob):
    h = -(prob * np.log(np.clip(prob, 1e-12, 1)) + (1 - prob) * np.log(np.clip(1 - prob, 1e-12, 1)))
    h = h.astype(np.float32)
    return SimpleNamespace(prob=prob.astype(np.float32), entropy=h, aleatoric=0.8 * h,
                           epistemic=0.2 * h, T=16)


def test_plot_maps_panels_and_error_classes(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.normal(100, 10, (32, 40))
    truth = np.zeros((32, 40), bool)
    truth[5, 5] = truth[6, 6] = True      # (5,5) found, (6,6) missed
    prob = np.full((32, 40), 0.02)
    prob[5, 5] = 0.9                       # true positive
    prob[20, 30] = 0.8                     # false positive
    image[truth] += 800
    ignore = np.zeros((32, 40), bool)
    ignore[:, 39] = True
    axes = plot_maps(image, _prediction(prob), truth=truth, ignore=ignore)
    assert len(axes) == 5
    assert all(len(ax.images) == 1 for ax in axes)
    fig = axes[0].figure
    assert len(fig.axes) == 5 + 4  # four colour bars (not on the error panel)
    assert {"electrons", "P(CR)", "nats"} <= {a.get_ylabel() for a in fig.axes}
    assert "T=16" in axes[3].get_title()
    code = np.asarray(axes[4].images[0].get_array())
    assert code[5, 5] == 1 and code[20, 30] == 2 and code[6, 6] == 3 and code[0, 0] == 0
    assert np.all(code[:, 39] == 4)
    legend = [t.get_text() for t in axes[4].get_legend().get_texts()]
    assert "false positive (1)" in legend and "false negative (1)" in legend
    assert "true positive (1)" in legend and "ignored (32)" in legend
    # the ignored column is masked in the map panels
    assert np.ma.getmaskarray(axes[1].images[0].get_array())[:, 39].all()
    # z-scale: the display range excludes the bright CR pixels
    vmax = axes[0].images[0].norm.vmax
    assert 100 < vmax < 500
    assert_rendered(fig, tmp_path / "maps.png")


def test_plot_maps_without_truth_and_on_given_axes():
    prob = np.linspace(0, 1, 64).reshape(8, 8)
    fig, grid = plt.subplots(2, 2)
    axes = plot_maps(np.ones((8, 8)), _prediction(prob), axes=grid)
    assert len(axes) == 4 and axes[0].figure is fig
    with pytest.raises(ValueError, match="at least 5 axes"):
        plot_maps(np.ones((8, 8)), _prediction(prob), truth=prob > 0.5, axes=grid)


def test_plot_maps_validates_prediction():
    with pytest.raises(TypeError, match="no 'epistemic'"):
        plot_maps(np.ones((4, 4)), SimpleNamespace(prob=np.ones((4, 4)), entropy=np.ones((4, 4)),
                                                     T=1))
    with pytest.raises(ValueError, match="prediction.prob has shape"):
        plot_maps(np.ones((4, 4)), _prediction(np.zeros((4, 5))))


def test_plot_maps_small_epistemic_needs_no_offset_text():
    """Epistemic values of ~1e-4 nats: the colour bar's tick labels carry the exponent, so no
    offset text ("1e-4") is drawn above the bar, where it would collide with the panel title."""
    prob = np.full((16, 16), 0.01)
    pred = _prediction(prob)
    pred.epistemic = np.linspace(0, 3e-4, 256).reshape(16, 16)
    axes = plot_maps(np.ones((16, 16)), pred)
    fig = axes[0].figure
    fig.canvas.draw()
    bar = next(a for a in fig.axes if a not in list(axes) and a.get_ylabel() == "nats"
               and a.get_position().x0 > axes[3].get_position().x0)
    assert bar.yaxis.get_offset_text().get_text() == ""
    labels = [t.get_text() for t in bar.get_yticklabels() if t.get_text()]
    assert labels and any("e-" in text for text in labels)
