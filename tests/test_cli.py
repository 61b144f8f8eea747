"""The `cosmiq` command line, its FITS products and the demo pipeline (tiny configuration)."""
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from astropy.io import fits
from astropy.wcs import WCS

from cosmiq_pyro import __version__, load
from cosmiq_pyro.app.cli import main
from cosmiq_pyro.io.fitsio import read_hst

SUBCOMMANDS = ("simulate", "train", "adapt", "predict", "evaluate", "compare", "demo")
H, W = 40, 36


def run(capsys, *argv):
    """``cosmiq argv`` in-process: (exit status, stdout, stderr lines)."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, [line for line in err.splitlines() if line.strip()]


def hst_file(path, n_chips=2, shape=(H, W)):
    """An ACS/WFC-like _flc file: PRIMARY with identifying keywords + (SCI, DQ) per chip, TAN WCS."""
    primary = fits.PrimaryHDU()
    for key, value in dict(TELESCOP="HST", INSTRUME="ACS", DETECTOR="WFC", FILTER1="F606W",
                           FILTER2="CLEAR2L", ROOTNAME="jtest01abq", EXPTIME=500.0, TARGNAME="NGC-TEST",
                           **{"DATE-OBS": "2005-03-01"}).items():
        primary.header[key] = value
    hdus = [primary]
    rng = np.random.default_rng(0)
    for chip in range(1, n_chips + 1):
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crpix = [18.0, 20.0]
        w.wcs.crval = [150.1, 2.2 + 0.05 * chip]
        w.wcs.cd = [[-1.4e-5, 0.0], [0.0, 1.4e-5]]
        header = w.to_header()
        header["BUNIT"] = "ELECTRONS"
        header["CCDCHIP"] = 3 - chip  # ACS: SCI,1 is chip 2
        image = rng.normal(100.0, 8.0, shape).astype(np.float32)
        image[10, 5:12] += 3000.0  # a CR streak
        dq = np.zeros(shape, np.int16)
        dq[0, 0] = 16  # a hot pixel
        hdus += [fits.ImageHDU(image, header=header, name="SCI", ver=chip),
                 fits.ImageHDU(dq, name="DQ", ver=chip)]
    fits.HDUList(hdus).writeto(path)
    return Path(path)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """`cosmiq simulate` output: 6 frames of 32x32, 2 FITS previews."""
    folder = tmp_path_factory.mktemp("sim") / "pairs"
    status = main(["simulate", str(folder), "--n", "6", "--size", "32", "--filters", "F606W", "--previews", "2",
                   "--seed", "3"])
    assert status == 0
    return folder


# ---------------------------------------------------------------- help and usage errors


def test_entry_point_help_in_a_subprocess():
    cosmiq = Path(sys.executable).with_name("cosmiq")
    if not cosmiq.exists():
        pytest.skip("the cosmiq console script is not installed beside this Python")
    done = subprocess.run([str(cosmiq), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for command in SUBCOMMANDS:
        assert command in done.stdout


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(capsys, command):
    status, out, err = run(capsys, command, "--help")
    assert status == 0 and out.startswith(f"usage: cosmiq {command}") and not err


def test_usage_errors_are_one_line(capsys, models, tmp_path):
    cases = [
        ("predict", "x.fits", "--model", models["vi"], "-o", tmp_path, "--threshold", "2"),  # bad value
        ("train", "simulate:4", "--out", tmp_path / "m.pth"),  # neither --bayesian nor --deterministic
        ("predict", "x.fits", "-o", tmp_path, "-T", "0"),  # bad -T (--model defaults to ACS-WFC-VI)
        ("frobnicate",),  # unknown subcommand
        ("simulate", tmp_path / "s", "--n", "0"),
    ]
    for argv in cases:
        status, out, err = run(capsys, *argv)
        assert status == 2 and len(err) == 1 and "error" not in out, (argv, err)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- simulate


def test_simulate_writes_pairs_and_previews(pairs, capsys):
    names = sorted(p.name for p in pairs.iterdir())
    npy = [n for n in names if n.endswith(".npy") and n != "sky.npy"]
    assert len(npy) == 6 and "sky.npy" in names and "meta.csv" in names
    assert all(n.split("_")[2] == "F606W.npy" for n in npy)
    planes = np.load(pairs / npy[0])
    assert planes.shape == (3, 32, 32) and set(np.unique(planes[1])) <= {0.0, 1.0}
    previews = [n for n in names if n.endswith(".fits")]
    assert len(previews) == 2
    (chip,) = read_hst(pairs / previews[0])  # SCI in electrons, readable by `cosmiq predict`
    np.testing.assert_array_equal(chip.image, planes[0])
    with fits.open(pairs / previews[0]) as hdul:
        np.testing.assert_array_equal(hdul["CRMASK"].data, planes[1])
        assert hdul[0].header["FILTER"] == "F606W"
        assert hdul[0].header["LABELS"] == "drizcr"  # the default label rule, recorded with the mask
        assert "driz_cr" in str(hdul["CRMASK"].header["COMMENT"])
    assert not [p for p in pairs.parent.iterdir() if p.name.startswith(".")]  # no staging left
    status, _, err = run(capsys, "simulate", pairs, "--n", "2", "--size", "32")
    assert status == 2 and len(err) == 1 and "not empty" in err[0]


# ---------------------------------------------------------------- train


def test_train_resume_and_refusals(pairs, tmp_path, capsys):
    out = tmp_path / "det.pth"
    status, stdout, err = run(capsys, "train", pairs, "--deterministic", "--epochs", "1", "--hidden", "4",
                              "--out", out, "--quiet")
    assert status == 0 and f"wrote {out}" in stdout
    assert len(load(out).history["epochs"]) == 1
    status, _, err = run(capsys, "train", pairs, "--deterministic", "--epochs", "1", "--hidden", "4", "--out", out)
    assert status == 2 and len(err) == 1 and "--resume" in err[0]
    status, _, _ = run(capsys, "train", pairs, "--deterministic", "--epochs", "2", "--hidden", "4",
                       "--out", out, "--resume", "--quiet")
    assert status == 0 and [e["epoch"] for e in load(out).history["epochs"]] == [1, 2]
    status, _, err = run(capsys, "train", pairs, "--bayesian", "--epochs", "3", "--hidden", "4",
                         "--out", out, "--resume", "--quiet")
    assert status == 2 and len(err) == 1 and "UNet2SigmoidVI" in err[0]
    vi = tmp_path / "vi.pth"
    status, _, _ = run(capsys, "train", "simulate:4", "--size", "32", "--bayesian", "--epochs", "1", "--hidden", "4",
                       "--init-from", out, "--out", vi, "--quiet")
    assert status == 0 and load(vi).bayesian
    status, _, err = run(capsys, "train", tmp_path / "missing", "--bayesian", "--out", tmp_path / "x.pth")
    assert status == 2 and len(err) == 1 and "does not exist" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det.pth", "vi.pth"]


def test_ctrl_c_during_train_exits_130_and_keeps_the_best_epoch(pairs, tmp_path, capsys, monkeypatch):
    import cosmiq_pyro.inference.fit as fit

    calls = {"n": 0}
    real = fit.masked_bce

    def interrupt_in_epoch_two(*args, **kwargs):  # 5 training frames at batch 16: 1 step per epoch
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(fit, "masked_bce", interrupt_in_epoch_two)
    out = tmp_path / "m.pth"
    status, _, err = run(capsys, "train", pairs, "--deterministic", "--epochs", "3", "--hidden", "4",
                         "--out", out, "--quiet")
    assert status == 130 and any("interrupted" in line for line in err)
    assert [e["epoch"] for e in load(out).history["epochs"]] == [1]


# ---------------------------------------------------------------- predict and its FITS products


def test_predict_products(models, tmp_path, capsys):
    source = hst_file(tmp_path / "jtest01abq_flc.fits")
    outdir = tmp_path / "out"
    status, stdout, err = run(capsys, "predict", source, "--model", models["vi"], "-T", "3", "--threshold", "0.3",
                              "--seed", "7", "-o", outdir)
    assert status == 0 and not err
    product = outdir / "jtest01abq_flc_cosmiq.fits"
    assert f"wrote {product}" in stdout
    sha = hashlib.sha256(Path(models["vi"]).read_bytes()).hexdigest()
    with fits.open(source) as src, fits.open(product) as hdul:
        names = [(h.name, h.ver) for h in hdul[1:]]
        assert names == [(n, v) for v in (1, 2) for n in ("PROB", "ENTROPY", "EPISTEMIC", "MASK")]
        primary = hdul[0].header
        for key in ("TELESCOP", "INSTRUME", "DETECTOR", "FILTER1", "FILTER2", "ROOTNAME", "DATE-OBS",
                    "EXPTIME", "TARGNAME"):
            assert primary[key] == src[0].header[key]
        assert (primary["CQMSHA"], primary["CQT"], primary["CQTHRESH"], primary["CQSEED"], primary["CQVERS"]) \
            == (sha, 3, 0.3, 7, __version__)
        assert primary["CQKIND"] == "UNet2SigmoidVI" and primary["CQSOURCE"] == source.name
        for v in (1, 2):
            prob = hdul["PROB", v].data
            assert prob.dtype.kind == "f" and prob.itemsize == 4 and prob.shape == (H, W)
            assert hdul["MASK", v].data.dtype == np.uint8
            # the hot pixel (DQ 16) is ignored: NaN maps, MASK 2; elsewhere MASK = PROB > 0.3 (to CQPREC)
            assert np.isnan(prob[0, 0]) and hdul["MASK", v].data[0, 0] == 2
            assert np.array_equal(np.isnan(prob), hdul["MASK", v].data == 2)
            near = np.abs(prob - 0.3) <= hdul["PROB", v].header["CQPREC"]
            np.testing.assert_array_equal(hdul["MASK", v].data[~near & ~np.isnan(prob)],
                                          (prob[~near & ~np.isnan(prob)] > 0.3).astype(np.uint8))
            entropy, epistemic = hdul["ENTROPY", v].data, hdul["EPISTEMIC", v].data
            prec = hdul["EPISTEMIC", v].header["CQPREC"] + hdul["ENTROPY", v].header["CQPREC"]
            known = ~np.isnan(prob)
            assert np.all((epistemic[known] >= -prec) & (epistemic[known] <= entropy[known] + prec))
            sci = src["SCI", v].header
            for name in ("PROB", "ENTROPY", "EPISTEMIC", "MASK"):
                header = hdul[name, v].header
                assert header["CCDCHIP"] == sci["CCDCHIP"] and header["ROOTNAME"] == "jtest01abq"
                assert header["CQMSHA"] == sha
                ours, theirs = WCS(header), WCS(sci)
                for pixel in ((0, 0), (35, 39), (12.5, 7.25)):
                    np.testing.assert_allclose(ours.pixel_to_world_values(*pixel),
                                               theirs.pixel_to_world_values(*pixel), rtol=0, atol=1e-10)
    # the same maps as the model gives in Python, on the electrons of each chip
    from cosmiq_pyro import predict
    for chip in read_hst(source):
        expected = predict(load(models["vi"]), chip.image, T=3, seed=7, ignore=chip.ignore)
        np.testing.assert_allclose(fits.getdata(product, ("PROB", chip.extver)),
                                   np.where(chip.ignore, np.nan, expected.prob), rtol=0, atol=2e-5)
        np.testing.assert_array_equal(fits.getdata(product, ("MASK", chip.extver)),
                                      np.where(chip.ignore, 2, expected.prob > 0.3))


def test_predict_resumes_refuses_to_overwrite_and_goes_on_past_bad_inputs(models, tmp_path, capsys):
    source = hst_file(tmp_path / "a_flc.fits", n_chips=1)
    outdir = tmp_path / "out"
    assert run(capsys, "predict", source, "--model", models["det"], "-o", outdir)[0] == 0
    product = outdir / "a_flc_cosmiq.fits"
    before = product.read_bytes()
    status, stdout, err = run(capsys, "predict", source, "--model", models["det"], "-o", outdir)
    assert status == 0 and not err and f"skipped (same input and provenance) {product}" in stdout  # resumed
    status, _, err = run(capsys, "predict", source, "--model", models["vi"], "-o", outdir)  # another model
    assert status == 1 and len(err) == 1 and "--overwrite" in err[0] and "CQMSHA" in err[0]
    assert product.read_bytes() == before
    status, _, err = run(capsys, "predict", source, "--model", models["vi"], "-o", outdir, "--overwrite")
    assert status == 0 and fits.getheader(product)["CQKIND"] == "UNet2SigmoidVI"
    assert sorted(p.name for p in outdir.iterdir()) == ["a_flc_cosmiq.fits"]  # no temporary files

    not_fits = tmp_path / "b.fits"
    not_fits.write_text("not a FITS file")
    text_model = tmp_path / "model.pth"
    text_model.write_text("not a checkpoint")
    fresh = tmp_path / "fresh"
    for argv, fragment in [
        ((source, not_fits), "not a readable FITS file"),  # the good file is written all the same
        ((tmp_path / "missing.fits",), "does not exist"),
    ]:
        status, _, err = run(capsys, "predict", *argv, "--model", models["vi"], "-o", fresh)
        assert status == 1 and len(err) == 1 and fragment in err[0] and str(argv[-1]) in err[0], err
    assert sorted(p.name for p in fresh.iterdir()) == ["a_flc_cosmiq.fits"]
    status, _, err = run(capsys, "predict", source, "--model", text_model, "-o", tmp_path / "fresh2")
    assert status == 2 and len(err) == 1 and "not a cosmiq_pyro checkpoint" in err[0]
    assert not (tmp_path / "fresh2").exists()


# ---------------------------------------------------------------- evaluate, compare, demo


@pytest.fixture
def one_torch_thread():
    """astroscrappy (LACosmic) runs ~100x slower while torch's OpenMP workers spin on the same
    two cores (measured: 0.5 s vs 4 ms per 64x64 call); one torch thread avoids that."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_evaluate_and_compare(models, pairs, tmp_path, capsys, one_torch_thread):
    table = tmp_path / "table.csv"
    status, stdout, err = run(capsys, "evaluate", pairs, "--model", models["vi"], "-T", "2", "--quiet", "--out", table)
    assert status == 0 and table.exists() and "tpr_pct_at_0.5pct_fpr" in table.read_text()
    out = tmp_path / "cmp"
    # LACosmic takes each frame's read noise and full well from the meta.csv of cosmiq simulate
    status, stdout, err = run(capsys, "compare", pairs, "--models", f"{models['vi']},{models['det']}", "-T", "2",
                              "--out", out, "--quiet", "--lacosmic")
    assert status == 0, err
    assert {"table.csv", "table.md", "roc.png"} <= {p.name for p in out.iterdir()}
    assert "| vi |" in (out / "table.md").read_text() and "LACosmic" in stdout
    bare = tmp_path / "bare"  # pair files without meta.csv
    bare.mkdir()
    for path in sorted(pairs.glob("0*.npy"))[:2]:
        (bare / path.name).write_bytes(path.read_bytes())
    status, _, err = run(capsys, "compare", bare, "--lacosmic", "--out", tmp_path / "c2")
    assert status == 2 and len(err) == 1 and "--read-noise" in err[0]
    assert not (tmp_path / "c2").exists()


def test_demo_quick_end_to_end(tmp_path, capsys):
    from cosmiq_pyro.app.demo import DemoConfig

    out = tmp_path / "demo_out"
    status, stdout, err = run(capsys, "demo", "--quick", "--out", out)
    assert status == 0, err
    stages = [line.split("]")[0] for line in err if line.startswith("cosmiq demo [")]
    assert stages == [f"cosmiq demo [{k}/5" for k in range(1, 6)]  # says which stage runs
    assert any("training the VI model" in line for line in err)
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "deterministic.pth", "vi.pth", "table.csv", "table.md", "roc.png", "maps.png",
            "training.png", "frame.fits", "frame_cosmiq.fits"} <= names
    assert not load(out / "deterministic.pth").bayesian and load(out / "vi.pth").bayesian
    report = (out / "report.md").read_text()
    for fragment in ("VI (ours)", "deterministic (ours)", "ACS-WFC-VI (ours, shipped)", "LACosmic",
                     "![maps](maps.png)", "| total |"):
        assert fragment in report
    table = pd.read_csv(out / "table.csv")  # the shipped model was compared on the same frames
    shipped = table[(table["predictor"] == "ACS-WFC-VI (ours, shipped)") & (table["field"] == "all")
                    & (table["filter"] == "all")]
    assert len(shipped) == 1 and 0 <= float(shipped["brier"].iloc[0]) <= 1
    with fits.open(out / "frame_cosmiq.fits") as hdul:
        assert [h.name for h in hdul[1:]] == ["PROB", "ENTROPY", "EPISTEMIC", "MASK"]
        assert hdul[0].header["CQMSHA"] == hashlib.sha256((out / "vi.pth").read_bytes()).hexdigest()
        assert hdul[0].header["CQT"] == DemoConfig.quick().T
    assert str(out) in stdout and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_predict_with_deepcr_published_weights(tmp_path, capsys):
    pytest.importorskip("deepCR")
    from cosmiq_pyro.models.unet import deepcr_weights_file

    source = hst_file(tmp_path / "c_flc.fits", n_chips=1, shape=(64, 72))  # one whole novelty block
    status, _, err = run(capsys, "predict", source, "--model", "ACS-WFC", "-o", tmp_path)
    # its sky, N(100, 8) e-, is quieter than Poisson allows: one warning line names the frame
    assert status == 0 and len(err) == 1 and "c_flc.fits is unlike the model's training frames" in err[0]
    header = fits.getheader(tmp_path / "c_flc_cosmiq.fits")
    assert header["CQKIND"] == "UNet2Sigmoid" and header["CQT"] == 1 and header["CQMODEL"] == "ACS-WFC.pth"
    assert header["CQMSHA"] == hashlib.sha256(deepcr_weights_file("ACS-WFC").read_bytes()).hexdigest()


def test_python_dash_m_runs_the_same_command_line():
    """``python -m cosmiq_pyro.app.cli`` is the ``cosmiq`` script (for environments without it)."""
    import cosmiq_pyro

    out = subprocess.run([sys.executable, "-m", "cosmiq_pyro.app.cli", "--version"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert cosmiq_pyro.__version__ in out.stdout
