"""``method=`` everywhere a prediction is made: products (CQMETHOD, CQT), resume, CCDData, the CLI,
the deepCR facade and the study."""
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData

from cosmiq_pyro import cosmicray_cosmiq, load, predict, predict_many
from cosmiq_pyro.app.cli import main
from cosmiq_pyro.deepcr.model import deepCR
from cosmiq_pyro.evaluation.study import evaluate
from test_batch import frame


def cards(path):
    with fits.open(path) as hdul:
        return hdul[0].header, [h.name for h in hdul]


def test_products_record_the_method_and_resume_treats_another_as_other_settings(models, tmp_path):
    data, out = frame(tmp_path / "in" / "a.fits").parent, tmp_path / "out"
    table = predict_many(data, model=models["vi"], outdir=out, method="mc", T=4)
    assert list(table.status) == ["done"]
    header, names = cards(table.output[0])
    assert (header["CQMETHOD"], header["CQT"]) == ("mc", 4) and "EPISTEMIC" in names
    # a sampling-free method: no CQT, EPISTEMIC still written; another method is other settings
    again = predict_many(data, model=models["vi"], outdir=out, method="moments")
    assert list(again.status) == ["failed"] and "CQMETHOD 'mc', not 'moments'" in again.error[0]
    free = predict_many(data, model=models["vi"], outdir=tmp_path / "free", method="moments")
    header, names = cards(free.output[0])
    assert header["CQMETHOD"] == "moments" and "CQT" not in header and "EPISTEMIC" in names
    assert list(predict_many(data, model=models["vi"], outdir=tmp_path / "free", method="moments").status) == ["skipped"]
    with pytest.raises(ValueError, match="makes none"):
        predict_many(data, model=models["vi"], outdir=tmp_path / "x", method="moments", T=8)
    with pytest.raises(ValueError, match="method must be one of"):
        predict_many(data, model=models["vi"], outdir=tmp_path / "x", method="bogus")
    # a deterministic model: one pass whatever the method
    det = predict_many(data, model=models["det"], outdir=tmp_path / "det", method="moments")
    header, names = cards(det.output[0])
    assert (header["CQMETHOD"], header["CQT"]) == ("deterministic", 1) and "EPISTEMIC" not in names


def test_cli_method_option(models, tmp_path):
    data = frame(tmp_path / "in" / "a.fits").parent
    assert main(["predict", str(data), "--model", str(models["vi"]), "--method", "moments",
                 "-o", str(tmp_path / "out")]) == 0
    header, _ = cards(tmp_path / "out" / "a_cosmiq.fits")
    assert header["CQMETHOD"] == "moments" and "CQT" not in header
    assert main(["predict", str(data), "--model", str(models["vi"]), "-T", "2", "-o", str(tmp_path / "mc")]) == 0
    header, _ = cards(tmp_path / "mc" / "a_cosmiq.fits")
    assert (header["CQMETHOD"], header["CQT"]) == ("mc", 2)  # -T alone means Monte Carlo


def test_ccddata_facade_and_study_take_the_method(models):
    image = np.random.default_rng(0).normal(100.0, 8.0, (24, 28)).astype(np.float32)
    image[6, 3:9] += 2500.0
    result = cosmicray_cosmiq(CCDData(image, unit="electron"), model=models["vi"], method="moments")
    assert result.meta["CQMETHOD"] == "moments" and "CQT" not in result.meta
    expected = predict(load(models["vi"]), image, method="moments")
    np.testing.assert_array_equal(result.cr_prediction.prob, expected.prob)
    mc = cosmicray_cosmiq(CCDData(image, unit="electron"), model=models["vi"], T=2)
    assert (mc.meta["CQMETHOD"], mc.meta["CQT"]) == ("mc", 2)
    square = np.stack([image[:24, :24]] * 2)
    masks = square > 1000
    table = evaluate(load(models["vi"]), (square, masks, None), method="moments",
                     progress=False)
    assert table["T"].isna().all()  # no draws behind a sampling-free method


def test_deepcr_facade_clean_vi_takes_the_method(models):
    image = np.random.default_rng(2).normal(100.0, 8.0, (40, 36)).astype(np.float32)
    mdl = deepCR(mask=str(models["vi"]))
    prob, epistemic = mdl.clean_vi(image, return_epistemic=True, method="mc", T=4, patch=16)
    whole = predict(mdl.result, image, method="mc", T=4, novelty=False)
    np.testing.assert_allclose(prob, whole.prob, atol=2e-6)
    np.testing.assert_allclose(epistemic, whole.epistemic, atol=2e-6)
    free = mdl.clean_vi(image, method="moments", patch=16)
    np.testing.assert_allclose(free, predict(mdl.result, image, method="moments").prob, atol=2e-6)


def test_cli_evaluate_passes_the_method_on(models, capsys):
    assert main(["evaluate", "simulate:2", "--size", "32", "--model", str(models["vi"]), "--method", "moments",
                 "-T", "4", "--quiet"]) != 0
    assert "T=4 counts Monte Carlo draws; method 'moments' makes none" in capsys.readouterr().err
