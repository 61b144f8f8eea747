"""evaluate / compare: known answers on tiny cases, grouping, ignore masks, files written."""
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cosmiq_pyro import UNet2Sigmoid, UNet2SigmoidVI, compare, evaluate, fit_svi, predict
from cosmiq_pyro.data import SimulatedDataset
from cosmiq_pyro.evaluation import metrics as M
from cosmiq_pyro.evaluation.peers import LACosmicPeer, PeerPrediction

TPR_LO, TPR_HI = "tpr_pct_at_0.05pct_fpr", "tpr_pct_at_0.5pct_fpr"
FIELDS = ["EX", "GC", "GAL", "EX", "GC", "GAL"]
FILTERS = ["F606W", "F606W", "F814W", "F814W", "F435W", "F606W"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def labelled_set(n=6, size=24, seed=0, ignore_frac=0.1):
    """Noise frames, ~5 % CR pixels, random ignore pixels whose mask bits are random too."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0, 1, (n, size, size)).astype(np.float32)
    mask = rng.random((n, size, size)) < 0.05
    image[mask] += 3
    ignore = rng.random((n, size, size)) < ignore_frac
    meta = pd.DataFrame({"field": FIELDS[:n], "filter": FILTERS[:n]})
    return SimpleNamespace(image=image, mask=mask, ignore=ignore, meta=meta)


class Oracle:
    """A predictor that reads the truth from a lookup keyed by the image's bytes.

    ``make(mask, ignore)`` returns (prob, entropy, epistemic) for a frame; ignored pixels get
    absurd values (NaN, -5) that would break every metric if they were counted.
    """

    is_probability = True

    def __init__(self, data, make):
        self._truth = {data.image[i].tobytes(): (data.mask[i], data.ignore[i]) for i in range(len(data.image))}
        self._make = make

    def predict(self, image, ignore=None, meta=None, seed=0):
        mask, ig = self._truth[np.asarray(image, np.float32).tobytes()]
        assert np.array_equal(ignore, ig)
        prob, entropy, epistemic = self._make(mask, ig)
        return PeerPrediction(prob=prob, entropy=entropy, epistemic=epistemic, T=1, is_probability=True)


def absurd_on_ignored(a, ignore):
    a = np.array(a, dtype=np.float32)
    a[ignore] = np.nan
    return a


def frame_seed(seed, i):
    """The seed `evaluate` documents for frame ``i``: ``SeedSequence([seed, i])``, 32 bits."""
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def overall(table):
    return table[(table["field"] == "all") & (table["filter"] == "all")].iloc[0]


def test_perfect_predictor_scores_perfectly_and_ignored_pixels_do_not_count():
    data = labelled_set()
    oracle = Oracle(data, lambda m, ig: (absurd_on_ignored(m, ig), absurd_on_ignored(np.zeros(m.shape), ig), None))
    table = evaluate(oracle, data, progress=False)
    row = overall(table)
    valid = ~data.ignore
    assert row["n_pixels"] == valid.sum() and row["n_cr_pixels"] == (data.mask & valid).sum()
    assert row[TPR_LO] == 100 and row[TPR_HI] == 100 and row["roc_auc"] == 1
    assert row["brier"] == 0 and row["ece"] == 0
    assert row["nll"] == pytest.approx(-math.log1p(-1e-7), rel=1e-6)  # p clipped to 1 - 1e-7
    assert row["aurc"] == 0 and row["e_aurc"] == 0
    assert math.isnan(row["error_auroc_entropy"])  # no wrong pixel: undefined, not invented
    assert math.isnan(row["epistemic_cr_nats"]) and math.isnan(row["error_auroc_epistemic"])


def test_constant_base_rate_predictor_by_hand():
    data = labelled_set(ignore_frac=0.2)
    valid = ~data.ignore
    b = (data.mask & valid).sum() / valid.sum()
    h_b = -(b * math.log(b) + (1 - b) * math.log(1 - b))
    oracle = Oracle(data, lambda m, ig: (absurd_on_ignored(np.full(m.shape, b), ig),
                                         absurd_on_ignored(np.full(m.shape, h_b), ig), None))
    row = overall(evaluate(oracle, data, progress=False))
    assert row["brier"] == pytest.approx(b * (1 - b), rel=1e-5)
    assert row["nll"] == pytest.approx(h_b, rel=1e-5)  # NLL of the base rate = its entropy
    assert row["ece"] == pytest.approx(0, abs=1e-6)
    assert row["roc_auc"] == 0.5
    assert row[TPR_LO] == 0 and row[TPR_HI] == 0  # all tied: no threshold flags any pixel within 0.5 %
    assert row["aurc"] == pytest.approx(b, rel=1e-5)  # constant u: AURC = error rate = b (all p < 0.5)
    assert row["entropy_cr_nats"] == pytest.approx(h_b, rel=1e-5)


def test_groups_add_up_to_the_all_rows():
    data = labelled_set()
    oracle = Oracle(data, lambda m, ig: (np.where(m, 0.7, 0.2), None, None))
    table = evaluate(oracle, data, progress=False)
    total = overall(table)
    by_field = table[(table["field"] != "all") & (table["filter"] == "all")]
    by_filter = table[(table["field"] == "all") & (table["filter"] != "all")]
    cells = table[(table["field"] != "all") & (table["filter"] != "all")]
    assert list(by_field["field"]) == ["EX", "GC", "GAL"]
    assert list(by_filter["filter"]) == ["F435W", "F606W", "F814W"]
    assert len(cells) == len(set(zip(FIELDS, FILTERS)))
    for part in (by_field, by_filter, cells):
        for col in ("n_frames", "n_pixels", "n_cr_pixels"):
            assert part[col].sum() == total[col], col
    valid = ~data.ignore
    ex = [i for i, f in enumerate(FIELDS) if f == "EX"]
    assert by_field.iloc[0]["n_cr_pixels"] == (data.mask[ex] & valid[ex]).sum()
    # no entropy -> no uncertainty metrics, but calibration is defined for a probability
    assert math.isnan(total["aurc"]) and math.isnan(total["entropy_cr_nats"])
    expected_brier = np.mean((np.where(data.mask, 0.7, 0.2)[valid] - data.mask[valid]) ** 2)
    assert total["brier"] == pytest.approx(expected_brier, rel=1e-6)


def test_without_meta_only_the_all_row():
    data = labelled_set()
    table = evaluate(UNet2Sigmoid(hidden=4, norm="none"), (data.image, data.mask, data.ignore), progress=False)
    assert list(zip(table["field"], table["filter"])) == [("all", "all")]


def test_deterministic_model_goes_through_predict():
    data = labelled_set(n=3)
    net = UNet2Sigmoid(hidden=4, norm="none").eval()
    row = overall(evaluate(net, (data.image, data.mask, data.ignore), progress=False))
    valid = ~data.ignore
    probs = np.stack([predict(net, im).prob for im in data.image])
    assert row["T"] == 1
    assert row["brier"] == pytest.approx(np.mean((probs[valid] - data.mask[valid]) ** 2), rel=1e-5)
    assert math.isnan(row["epistemic_cr_nats"])  # a point estimate has no epistemic term


@pytest.fixture(scope="module")
def vi_fit():
    data = labelled_set(n=2, size=16)
    return fit_svi(UNet2SigmoidVI(hidden=4, norm="none"), (data.image, data.mask, None), epochs=0,
                   init_scale=0.05, progress=False)


def test_vi_model_reports_epistemic_and_is_reproducible(vi_fit):
    data = labelled_set(n=3)
    arrays = (data.image, data.mask, data.ignore)
    a = evaluate(vi_fit, arrays, T=3, seed=5, progress=False)
    b = evaluate(vi_fit.model, arrays, guide=vi_fit.guide, T=3, seed=5, progress=False)
    c = evaluate(vi_fit, arrays, T=3, seed=6, progress=False)
    timing = ["predict_s_per_frame"]
    pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing))
    assert overall(a)["brier"] != overall(c)["brier"]
    row = overall(a)
    assert row["T"] == 3
    assert row["epistemic_cr_nats"] > 0 and row["epistemic_noncr_nats"] > 0
    # the same AUROC from predict's own maps (frame i drawn with SeedSequence([seed, i]), as
    # evaluate documents) and the metric on the pooled valid pixels
    preds = [predict(vi_fit, data.image[i], T=3, seed=frame_seed(5, i)) for i in range(3)]
    keep = ~data.ignore
    expected = M.error_detection_auroc(np.concatenate([p.prob[k] for p, k in zip(preds, keep)]),
                                       np.concatenate([m[k] for m, k in zip(data.mask, keep)]),
                                       np.concatenate([p.epistemic[k] for p, k in zip(preds, keep)]))
    assert row["error_auroc_epistemic"] == pytest.approx(expected, rel=1e-6)


def test_bootstrap_se_is_zero_for_identical_frames_and_nan_for_one_frame():
    data = labelled_set(n=1)
    stack = SimpleNamespace(image=np.repeat(data.image, 4, 0), mask=np.repeat(data.mask, 4, 0),
                            ignore=np.repeat(data.ignore, 4, 0),
                            meta=pd.DataFrame({"field": ["EX"] * 3 + ["GC"], "filter": ["F606W"] * 4}))
    rng = np.random.default_rng(3)
    noisy = {}

    class Noisy:  # the same map for the same image, whatever the frame
        is_probability = True

        def predict(self, image, ignore=None, meta=None, seed=0):
            key = image.tobytes()
            if key not in noisy:
                noisy[key] = rng.random(image.shape).astype(np.float32)
            return PeerPrediction(noisy[key], None, None, 1, True)

    table = evaluate(Noisy(), stack, progress=False, n_boot=30)
    row = overall(table)
    assert row[TPR_HI + "_se"] == 0 and row[TPR_LO + "_se"] == 0
    gc = table[table["field"] == "GC"].iloc[0]
    assert gc["n_frames"] == 1 and math.isnan(gc[TPR_HI + "_se"])


def test_compare_writes_every_file_and_a_markdown_row_per_predictor(tmp_path):
    data = labelled_set()
    det = UNet2Sigmoid(hidden=4, norm="none").eval()
    oracle = Oracle(data, lambda m, ig: (m.astype(np.float32), np.zeros(m.shape, np.float32), None))

    class Score:  # a non-probability score: only ROC metrics
        is_probability = False

        def predict(self, image, ignore=None, meta=None, seed=0):
            return PeerPrediction((np.tanh(image) + 1) / 2, None, None, 1, False)

    out = tmp_path / "study"
    result = compare({"det": det, "oracle": oracle, "score": Score()}, data, out_dir=out, progress=False)
    assert set(result.files) == {"csv", "markdown", "roc", "reliability", "risk_coverage", "error_vs_entropy"}
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in result.files.values())  # nothing else, no temp file
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = pd.read_csv(out / "table.csv")
    assert list(back.columns) == list(result.table.columns) and len(back) == len(result.table)
    assert (out / "table.md").read_text() == result.markdown
    first = result.markdown.split("\n\n")[1].splitlines()  # the "All frames" table
    assert [line.split("|")[1].strip() for line in first[2:]] == ["det", "oracle", "score"]
    score_row = first[-1]
    assert score_row.count("—") >= 8  # Brier, NLL, ECE, AURC, E-AURC, error AUROCs, entropies
    row = result.table[(result.table["predictor"] == "score") & (result.table["field"] == "all")].iloc[0]
    assert math.isnan(row["brier"]) and math.isnan(row["ece"])
    keep = ~data.ignore
    expected = M.roc_auc(((np.tanh(data.image) + 1) / 2)[keep], data.mask[keep])
    assert row["roc_auc"] == pytest.approx(expected, rel=1e-9)
    assert set(result.curves["roc"]) == {"det", "oracle", "score"}
    assert set(result.curves["reliability"]) == {"det", "oracle"}


def test_simulated_dataset_with_lacosmic_reads_the_simulator_metadata():
    ds = SimulatedDataset(2, size=48, fields=("EX",), filters=("F606W",), seed=2)
    table = evaluate(LACosmicPeer(sigclips=(4.0, 16.0)), ds, progress=False)
    row = overall(table)
    assert row["n_frames"] == 2 and row["n_cr_pixels"] > 0
    assert math.isnan(row["brier"])
    peer, frames = LACosmicPeer(sigclips=(4.0, 16.0)), [ds.frame(i) for i in range(2)]
    scores = [peer.predict(f.image, f.ignore, f.meta).prob[~f.ignore] for f in frames]
    expected = M.roc_auc(np.concatenate(scores), np.concatenate([f.mask[~f.ignore] for f in frames]))
    assert row["roc_auc"] == pytest.approx(expected, rel=1e-9)
    assert list(table["field"]) == ["all", "EX", "all", "EX"]


def test_bad_inputs():
    data = labelled_set(n=2)
    arrays = (data.image, data.mask, data.ignore)
    with pytest.raises(TypeError, match="predictors"):
        compare({}, arrays)
    with pytest.raises(TypeError, match=r"predictors\['x'\]"):
        compare({"x": object()}, arrays)
    with pytest.raises(ValueError, match="guide"):
        evaluate(UNet2SigmoidVI(hidden=4), arrays)
    with pytest.raises(ValueError, match="n_boot"):
        evaluate(UNet2Sigmoid(hidden=4), arrays, n_boot=-1)

    class OutOfRange:
        is_probability = True

        def predict(self, image, ignore=None, meta=None, seed=0):
            return PeerPrediction(np.full(image.shape, 1.5, np.float32), None, None, 1, True)

    with pytest.raises(ValueError, match=r"'bad' on frame 0.*\[0, 1\]"):
        compare({"bad": OutOfRange()}, arrays, progress=False)
