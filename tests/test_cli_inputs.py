"""`cosmiq` on real-world inputs and failures (issue 14): units from the command line, deterministic
models and -T, output checks before work, signals, one-line errors with nothing left on disk."""
import os
import signal

import numpy as np
import pandas as pd
import pytest
import torch
from astropy.io import fits

from cosmiq_pyro.app import cli_runs
from cosmiq_pyro.app.cli import main

H, W = 32, 28


def run(capsys, *argv):
    """``cosmiq argv`` in-process: (exit status, stdout, stderr lines)."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, [line for line in err.splitlines() if line.strip()]


def _electrons(seed=0):
    image = np.random.default_rng(seed).normal(200.0, 15.0, (H, W))
    image[9, 4:11] += 2500.0  # a CR streak
    return image


def _frame(path, data, **keywords):
    hdu = fits.PrimaryHDU(np.asarray(data, np.float32))
    for key, value in keywords.items():
        hdu.header[key] = value
    hdu.writeto(path)
    return path


# ---------------------------------------------------------------- units from the command line


@pytest.mark.parametrize("kind", ["det", "vi"])
def test_adu_times_gain_gives_the_maps_of_the_frame_in_electrons(models, tmp_path, capsys, kind):
    gain = 2.5
    electrons = _electrons()
    _frame(tmp_path / "e.fits", electrons, BUNIT="ELECTRONS")
    _frame(tmp_path / "adu.fits", electrons / gain, BUNIT="ADU", GAIN=gain)  # converted by the header gain
    _frame(tmp_path / "raw.fits", electrons / gain)  # no BUNIT, no GAIN: stated on the command line
    out = tmp_path / "out"
    extra = ("-T", "4") if kind == "vi" else ()
    assert run(capsys, "predict", tmp_path / "e.fits", tmp_path / "adu.fits", "--model", models[kind],
               "-o", out, *extra)[0] == 0
    status, _, err = run(capsys, "predict", tmp_path / "raw.fits", "--model", models[kind], "-o", out,
                         "--bunit", "ADU", "--gain", str(gain), *extra)
    assert status == 0 and err == []
    names = ("PROB", "ENTROPY", "EPISTEMIC", "MASK") if kind == "vi" else ("PROB", "ENTROPY", "MASK")
    with fits.open(out / "e_cosmiq.fits") as ref:
        assert ref[1].header["CQBUNIT"] == "ELECTRONS" and "CQGAIN" not in ref[1].header
        for other in ("adu", "raw"):
            with fits.open(out / f"{other}_cosmiq.fits") as hdul:
                assert [h.name for h in hdul[1:]] == list(names)
                assert hdul[1].header["CQBUNIT"] == "ADU" and hdul[1].header["CQGAIN"] == gain
                assert hdul[1].header["CQEPERU"] == gain
                for name in names:  # same pixels to float32 rounding of (e / g) * g, each stored to CQPREC
                    atol = hdul[name].header["CQPREC"] + ref[name].header["CQPREC"] + 1e-6
                    np.testing.assert_allclose(hdul[name].data, ref[name].data, rtol=0, atol=atol)


def test_real_raw_uint16_frame_in_adu(models, tmp_path, capsys):
    """ccdproc's raw SAAO frame (uint16 as int16 + BZERO 32768, GAIN 1.9): read, converted, written."""
    ccdproc = pytest.importorskip("ccdproc")
    source = os.path.join(os.path.dirname(ccdproc.__file__), "tests", "data", "a8280271.fits")
    if not os.path.exists(source):
        pytest.skip("ccdproc distribution without tests/data/a8280271.fits")
    status, _, err = run(capsys, "predict", source, "--model", models["det"], "-o", tmp_path, "--bunit", "ADU")
    assert status == 0 and err == []
    with fits.open(tmp_path / "a8280271_cosmiq.fits") as hdul:
        assert hdul["PROB"].data.shape == (520, 536)
        assert hdul["PROB"].header["CQGAIN"] == 1.9 and hdul["PROB"].header["CQBUNIT"] == "ADU"


def test_ext_option_reads_one_extension(models, tmp_path, capsys):
    hdus = [fits.PrimaryHDU()]
    for v in (1, 2):
        hdu = fits.ImageHDU(_electrons(v).astype(np.float32), name="SCI", ver=v)
        hdu.header["BUNIT"] = "ELECTRONS"
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(tmp_path / "two.fits")
    status, _, err = run(capsys, "predict", tmp_path / "two.fits", "--model", models["det"], "-o", tmp_path,
                         "--ext", "SCI,2")
    assert status == 0 and err == []
    with fits.open(tmp_path / "two_cosmiq.fits") as hdul:
        assert [(h.name, h.ver) for h in hdul[1:]] == [("PROB", 2), ("ENTROPY", 2), ("MASK", 2)]
        assert hdul[1].header["CQSRCEXT"] == "SCI,2"
    status, _, err = run(capsys, "predict", tmp_path / "two.fits", "--model", models["det"], "-o",
                         tmp_path / "x", "--ext", "SCI,3")
    assert status == 1 and len(err) == 1 and "two.fits" in err[0] and "('SCI', 3)" in err[0]  # input failed
    assert not (tmp_path / "x").exists()


def test_output_directory_defaults_to_the_current_one(models, tmp_path, capsys, monkeypatch):
    source = _frame(tmp_path / "in.fits", _electrons(), BUNIT="ELECTRONS")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    status, out, _ = run(capsys, "predict", source, "--model", models["det"])
    assert status == 0 and sorted(os.listdir(work)) == ["in_cosmiq.fits"]


def test_missing_bunit_warned_once_per_file(models, tmp_path, capsys):
    source = _frame(tmp_path / "raw.fits", _electrons(), GAIN=1.9)
    status, _, err = run(capsys, "predict", source, "--model", models["det"], "-o", tmp_path / "o")
    warned = [line for line in err if "no BUNIT" in line]
    assert status == 0 and len(warned) == 1 and "raw.fits" in warned[0] and "1.9 e-/ADU" in warned[0]
    with fits.open(tmp_path / "o" / "raw_cosmiq.fits") as hdul:
        assert hdul["PROB"].header["CQBUNIT"].startswith("ELECTRONS (assumed")


# ---------------------------------------------------------------- deterministic model and -T


def test_deterministic_model_writes_no_epistemic_and_says_T_was_not_used(models, tmp_path, capsys):
    source = _frame(tmp_path / "a.fits", _electrons(), BUNIT="ELECTRONS")
    status, _, err = run(capsys, "predict", source, "--model", models["det"], "-o", tmp_path / "o1", "-T", "16")
    assert status == 0 and len(err) == 1 and "T=16 was not used" in err[0] and "deterministic" in err[0]
    with fits.open(tmp_path / "o1" / "a_cosmiq.fits") as hdul:
        assert [h.name for h in hdul[1:]] == ["PROB", "ENTROPY", "MASK"] and hdul[1].header["CQT"] == 1
    status, _, err = run(capsys, "predict", source, "--model", models["det"], "-o", tmp_path / "o2")
    assert status == 0 and err == []  # -T not given: nothing to say


# ---------------------------------------------------------------- failures: one line, exit 2, nothing left


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["predict", "train"])
def test_cuda_without_cuda_is_one_line(models, tmp_path, capsys, command):
    out = tmp_path / "out"
    if command == "predict":
        source = _frame(tmp_path / "a.fits", _electrons(), BUNIT="ELECTRONS")
        argv = ("predict", source, "--model", models["det"], "-o", out, "--device", "cuda")
    else:
        argv = ("train", "simulate:4", "--deterministic", "--out", out / "m.pth", "--device", "cuda")
    status, stdout, err = run(capsys, *argv)
    assert status == 2 and len(err) == 1 and "CUDA is not available" in err[0] and "--device" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("seed", ["1e23", str(10**23), "-1"])
def test_out_of_range_seed_is_one_line(tmp_path, capsys, seed):
    status, _, err = run(capsys, "train", "simulate:4", "--deterministic", "--out", tmp_path / "m.pth",
                         "--seed", seed)
    assert status == 2 and len(err) == 1 and "--seed" in err[0] and "2**63 - 1" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_one_pair_dataset_says_two_are_needed(tmp_path, capsys):
    data = tmp_path / "pairs"
    data.mkdir()
    np.save(data / "000001_EX_F606W.npy", np.zeros((3, 16, 16), np.float32))
    status, _, err = run(capsys, "train", data, "--deterministic", "--out", tmp_path / "m.pth")
    assert status == 2 and len(err) == 1 and "at least 2" in err[0] and "part=" not in err[0]
    assert not (tmp_path / "m.pth").exists()


def test_unwritable_output_found_before_any_work(models, tmp_path, capsys, monkeypatch):
    source = _frame(tmp_path / "a.fits", _electrons(), BUNIT="ELECTRONS")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if "ro" in str(p) else real_access(p, mode))
    (tmp_path / "ro").mkdir()

    import cosmiq_pyro.app.batch as batch

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not be loaded before the output is checked")

    monkeypatch.setattr(batch, "cached_model", no_model)  # what cosmiq predict loads models with
    status, _, err = run(capsys, "predict", source, "--model", models["det"], "-o", tmp_path / "ro" / "out")
    assert status == 2 and len(err) == 1 and "not writable" in err[0]
    status, _, err = run(capsys, "train", "simulate:4", "--deterministic", "--out", tmp_path / "ro" / "m.pth")
    assert status == 2 and len(err) == 1 and "not writable" in err[0]
    assert list((tmp_path / "ro").iterdir()) == []


def test_failure_during_predict_leaves_no_empty_directory(models, tmp_path, capsys, monkeypatch):
    import cosmiq_pyro.app.products as products

    source = _frame(tmp_path / "a.fits", _electrons(), BUNIT="ELECTRONS")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(products, "predict_fits", fail)
    status, _, err = run(capsys, "predict", source, "--model", models["det"], "-o", tmp_path / "new" / "out")
    assert status == 1 and len(err) == 1 and "disk full" in err[0]  # the input failed (exit 1), not the usage
    assert not (tmp_path / "new" / "out").exists()


def test_sigterm_is_handled_like_ctrl_c(tmp_path, capsys, monkeypatch):
    import cosmiq_pyro.data.simulate as simulate

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM must interrupt")

    monkeypatch.setattr(simulate, "make_dataset", terminated)
    before = signal.getsignal(signal.SIGTERM)
    status, _, err = run(capsys, "simulate", tmp_path / "sim", "--n", "2", "--size", "16")
    assert status == 130 and err == ["cosmiq: interrupted"]
    assert list(tmp_path.iterdir()) == []  # neither the directory nor its staging copy
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is restored


# ---------------------------------------------------------------- simulate: files and meta.csv agree


def test_simulate_meta_rows_name_their_files(tmp_path, capsys):
    out = tmp_path / "sim"
    assert run(capsys, "simulate", out, "--n", "3", "--size", "16", "--previews", "0", "--seed", "5")[0] == 0
    meta = pd.read_csv(out / "meta.csv")
    files = sorted(p.name for p in out.glob("0*.npy"))
    assert list(meta["file"]) == files and files[0].startswith("000001_")
    for _, row in meta.iterrows():
        assert row["file"].endswith(f"_{row['field']}_{row['filter']}.npy")
    # train reads the rows back by file name, also for a subset of the files
    (out / files[0]).unlink()
    rows = cli_runs._pair_meta(sorted(out.glob("0*.npy")))
    assert list(rows["file"]) == files[1:] and list(rows["seed"]) == list(meta["seed"][1:])


# ---------------------------------------------------------------- demo figure


def test_demo_maps_figure_is_readable():
    import matplotlib
    from matplotlib.colors import LogNorm

    from cosmiq_pyro.app.demo import maps_figure
    from cosmiq_pyro.data.simulate import simulate_frame
    from cosmiq_pyro.inference.predictive import Prediction

    frame = simulate_frame(size=32, seed=3)
    frame.mask[:] = False
    frame.mask[20, 5:12] = True
    frame.ignore[:] = False
    epistemic = np.full((32, 32), 1e-4, np.float32)
    epistemic[frame.mask] = 0.1  # decades apart, as on a real frame
    epistemic[0, 0] = 0.0
    prob = frame.mask.astype(np.float32) * 0.9
    prediction = Prediction(prob=prob, entropy=epistemic * 2, aleatoric=epistemic, epistemic=epistemic, T=8)
    fig = maps_figure(frame, prediction)
    try:
        axes = fig.axes
        panels = [ax for ax in axes if ax.images]
        assert fig.get_size_inches()[0] >= 15 and len(panels) == 5
        epi = panels[3].images[0]
        assert isinstance(epi.norm, LogNorm) and epi.norm.vmax == pytest.approx(0.1)
        assert epi.norm.vmin == pytest.approx(1e-4) and "log" in panels[3].get_title()  # smallest > 0
        legend_axes = [ax for ax in axes if ax.get_legend() is not None]
        assert len(legend_axes) == 1 and not legend_axes[0].images  # a cell of its own, clear of labels
    finally:
        matplotlib.pyplot.close(fig)
