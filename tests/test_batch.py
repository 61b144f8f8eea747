"""`predict_many` and `cosmiq predict` over many frames: inputs, resume, failures, a Dask cluster."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits

from cosmiq_pyro import load, predict, predict_many
from cosmiq_pyro.app.batch import expand_inputs, summary
from cosmiq_pyro.app.cli import main
from cosmiq_pyro.io.fitsio import read_hst

H, W = 36, 32


def frame(path, seed=0, n_chips=1):
    """An HST-like file in electrons: (SCI, DQ) per chip, a CR streak, a hot pixel."""
    rng = np.random.default_rng(seed)
    hdus = [fits.PrimaryHDU()]
    for chip in range(1, n_chips + 1):
        image = rng.normal(100.0, 8.0, (H, W)).astype(np.float32)
        image[5 + seed, 4:11] += 3000.0
        sci = fits.ImageHDU(image, name="SCI", ver=chip)
        sci.header["BUNIT"] = "ELECTRONS"
        dq = np.zeros((H, W), np.int16)
        dq[0, 0] = 16
        hdus += [sci, fits.ImageHDU(dq, name="DQ", ver=chip)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList(hdus).writeto(path)
    return Path(path)


def touch(path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(b"")
    return Path(path)


def written(card):
    """A card's keyword, value and comment; DATASUM's comment is the time it was computed."""
    return (card.keyword, card.value, "" if card.keyword == "DATASUM" else card.comment)


def hdus_equal(a, b):
    """Every HDU's data unit equal byte for byte as stored (compressed maps: their compressed bytes)
    and every header card equal except DATE (write time), CHECKSUM (which covers DATE) and the time
    stamp in DATASUM's comment (its value must agree)."""
    with fits.open(a, disable_image_compression=True) as x, fits.open(b, disable_image_compression=True) as y:
        assert [h.name for h in x] == [h.name for h in y]
        for i, (p, q) in enumerate(zip(x, y)):
            assert stored_data(a, x.fileinfo(i)) == stored_data(b, y.fileinfo(i))
            assert "DATASUM" in p.header and "CHECKSUM" in p.header and "CHECKSUM" in q.header
            assert [written(c) for c in p.header.cards if c.keyword not in ("DATE", "CHECKSUM")] == \
                [written(c) for c in q.header.cards if c.keyword not in ("DATE", "CHECKSUM")]


def stored_data(path, info) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(info["datLoc"])
        return fh.read(info["datSpan"])


# ---------------------------------------------------------------- inputs


def test_directories_prefer_hst_exposures_and_skip_products(tmp_path):
    hst = tmp_path / "hst"
    for name in ("j1_flc.fits", "j1_flt.fits", "j2_flt.fits", "j3_raw.fits", "j4_drz.fits", "j1_flc_cosmiq.fits",
                 "notes.txt"):
        touch(hst / name)
    assert [p.name for p in expand_inputs(hst)] == ["j1_flc.fits", "j2_flt.fits"]
    plain = tmp_path / "plain"
    for name in ("b.fits.gz", "a.FITS", "c.fit", "a_cosmiq.fits", "d.txt"):
        touch(plain / name)
    assert [p.name for p in expand_inputs(str(plain))] == ["a.FITS", "b.fits.gz", "c.fit"]


def test_globs_lists_and_files_each_once_in_order(tmp_path):
    for name in ("x/a.fits", "x/b.fits", "x/b_cosmiq.fits", "y/c.fits"):
        touch(tmp_path / name)
    listing = tmp_path / "frames.txt"
    listing.write_text("# frames of night 1\n\ny/c.fits\nx/a.fits\n  x/*.fits  \n")
    found = expand_inputs([f"@{listing}", str(tmp_path / "x" / "a.fits"), tmp_path / "missing.fits"])
    assert found == [tmp_path / "y/c.fits", tmp_path / "x/a.fits", tmp_path / "x/b.fits", tmp_path / "missing.fits"]
    assert expand_inputs(str(tmp_path / "*" / "*.fits")) == [tmp_path / "x/a.fits", tmp_path / "x/b.fits",
                                                             tmp_path / "y/c.fits"]


@pytest.mark.parametrize("spec, error, fragment", [
    ("empty", ValueError, "holds no FITS files"),
    ("nothing*.fits", ValueError, "matches no FITS file"),
    ("@nolist.txt", FileNotFoundError, "does not exist"),
    ("@blank.txt", ValueError, "names no input"),
])
def test_inputs_that_name_nothing_are_refused(tmp_path, spec, error, fragment):
    (tmp_path / "empty").mkdir()
    (tmp_path / "blank.txt").write_text("# nothing\n\n")
    spec = f"@{tmp_path / spec[1:]}" if spec.startswith("@") else str(tmp_path / spec)
    with pytest.raises(error, match=fragment):
        expand_inputs(spec)


def test_refused_before_any_work(models, tmp_path):
    frame(tmp_path / "a" / "f.fits")
    frame(tmp_path / "b" / "f.fits", seed=1)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="would both write f_cosmiq.fits"):
        predict_many([tmp_path / "a" / "f.fits", tmp_path / "b" / "f.fits"], model=models["det"], outdir=out)
    with pytest.raises(TypeError, match="unknown option.*tresh"):
        predict_many(tmp_path / "a", model=models["det"], outdir=out, tresh=0.3)
    with pytest.raises(ValueError, match="T must be a positive int"):
        predict_many(tmp_path / "a", model=models["vi"], outdir=out, T=0)
    with pytest.raises(ValueError, match="not a cosmiq_pyro checkpoint"):
        predict_many(tmp_path / "a", model=tmp_path / "a" / "f.fits", outdir=out)
    assert not out.exists()


# ---------------------------------------------------------------- serial: done, failed, skipped, overwrite


def test_serial_batch_goes_on_past_bad_inputs_and_resumes(models, tmp_path):
    data = tmp_path / "data"
    good = [frame(data / f"j{k}_flc.fits", seed=k, n_chips=2 if k == 0 else 1) for k in range(3)]
    (data / "j9_flc.fits").write_bytes(b"SIMPLE  = T" + b" " * 100)  # a corrupt file among them
    out = tmp_path / "out"
    table = predict_many([data, data / "missing.fits"], model=models["vi"], outdir=out, T=3, seed=7,
                         threshold=0.4)
    assert list(table.columns) == ["input", "output", "status", "seconds", "cr_pixels", "novelty", "model",
                                   "model_reason", "error", "note"]
    assert list(table["status"]) == ["done", "done", "done", "failed", "failed"]
    assert list(table["model"]) == ["vi.pth"] * 3 + [""] * 2 and set(table.loc[:2, "model_reason"]) == {"given"}
    bad, missing = table.iloc[3], table.iloc[4]
    assert "j9_flc.fits" in bad["error"] and "not a readable FITS file" in bad["error"]
    assert "missing.fits" in missing["error"] and "does not exist" in missing["error"]
    assert sorted(p.name for p in out.iterdir()) == [f"j{k}_flc_cosmiq.fits" for k in range(3)]  # nothing else
    assert (table.loc[:2, "seconds"] > 0).all() and summary(table).startswith("3 done, 0 redone, 0 skipped, 2 failed")
    assert table["novelty"].isna().all()  # this model has no novelty score
    # each product holds what predict gives on the frame, and cr_pixels counts its MASK over all chips
    model = load(models["vi"])
    for k, source in enumerate(good):
        chips = read_hst(source)
        expected = [predict(model, chip.image, T=3, seed=7, ignore=chip.ignore).prob for chip in chips]
        with fits.open(out / f"j{k}_flc_cosmiq.fits") as hdul:
            for v, (prob, chip) in enumerate(zip(expected, chips), start=1):  # stored to 2e-5, NaN where ignored
                np.testing.assert_allclose(hdul["PROB", v].data, np.where(chip.ignore, np.nan, prob), rtol=0, atol=2e-5)
        # ignored pixels (the hot pixel) are no cosmic ray, whatever their probability
        assert table.loc[k, "cr_pixels"] == sum(int(((p > 0.4) & ~c.ignore).sum()) for p, c in zip(expected, chips))

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = predict_many([data, data / "missing.fits"], model=models["vi"], outdir=out, T=3, seed=7, threshold=0.4)
    assert list(again["status"]) == ["skipped"] * 3 + ["failed"] * 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    other = predict_many(good[0], model=models["vi"], outdir=out, T=3, seed=8, threshold=0.4)
    assert other.loc[0, "status"] == "failed" and "made with CQSEED 7, not 8" in other.loc[0, "error"]
    assert "overwrite" in other.loc[0, "error"] and (out / "j0_flc_cosmiq.fits").read_bytes() == before["j0_flc_cosmiq.fits"]
    # other reading options read other pixels: never taken for the product made without them
    regain = predict_many(good[1], model=models["vi"], outdir=out, T=3, seed=7, threshold=0.4, gain_e_per_adu=2.0)
    assert regain.loc[0, "status"] == "failed" and "CQREAD" in regain.loc[0, "error"]
    assert "gain=2.0" in regain.loc[0, "error"] and "gain=None" in regain.loc[0, "error"]
    redo = predict_many(good[0], model=models["vi"], outdir=out, T=3, seed=8, threshold=0.4, overwrite=True)
    assert redo.loc[0, "status"] == "done" and fits.getheader(out / "j0_flc_cosmiq.fits")["CQSEED"] == 8


def test_cli_reports_each_failure_in_one_line_and_exits_1(models, tmp_path, capsys):
    data = tmp_path / "data"
    for k in range(2):
        frame(data / f"f{k}.fits", seed=k)
    (data / "broken.fits.gz").write_bytes(b"\x1f\x8b not really gzip")
    listing = tmp_path / "list.txt"
    listing.write_text("data\n")
    out = tmp_path / "out"
    argv = ["predict", f"@{listing}", "--model", str(models["det"]), "-o", str(out)]
    status = main(argv)
    stdout, stderr = capsys.readouterr()
    errors = [line for line in stderr.splitlines() if line.strip()]
    assert status == 1 and len(errors) == 1 and "broken.fits.gz" in errors[0]
    assert "2 done, 0 redone, 0 skipped, 1 failed" in stdout and f"wrote {out / 'f0_cosmiq.fits'}" in stdout
    (data / "broken.fits.gz").unlink()
    assert main(argv) == 0 and "0 done, 0 redone, 2 skipped, 0 failed" in capsys.readouterr()[0]
    assert main(argv + ["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "not allowed with" in capsys.readouterr()[1]


# ---------------------------------------------------------------- a Dask cluster


def worker_processes_left(psutil, timeout_s=15.0):
    """Child processes still alive ``timeout_s`` after a cluster closed (multiprocessing's resource
    tracker aside): a worker killed by its nanny may take a moment to be reaped."""
    children = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                children.append(child)
        except psutil.Error:  # already gone, or a zombie about to be reaped
            continue
    _, alive = psutil.wait_procs(children, timeout=timeout_s)
    return alive


def kill_worker_on_j6(job):
    """`batch._run_job`, except that the worker running frame j6 dies (as on a node failure)."""
    from cosmiq_pyro.app import batch

    if Path(job.input).name.startswith("j6"):
        os._exit(1)
    return batch._run_job(job)


@pytest.mark.slow  # a 2-process Dask LocalCluster: ~70 s of process start-up on a busy 2-core machine
def test_local_cluster_products_equal_serial_ones(models, tmp_path, monkeypatch):
    psutil = pytest.importorskip("psutil")
    from cosmiq_pyro.app import batch
    from cosmiq_pyro.app.modelcache import cache_info
    from cosmiq_pyro.app.workers import local_client

    data = tmp_path / "data"
    for k in range(5):
        frame(data / f"j{k}_flc.fits", seed=k, n_chips=2 if k == 2 else 1)
    (data / "j5_flc.fits").write_text("not FITS")
    serial = predict_many(data, model=models["vi"], outdir=tmp_path / "serial", T=2, seed=3)
    frame(data / "j6_flc.fits", seed=6)  # kills the worker that runs it, twice
    threads_here = torch.get_num_threads()
    monkeypatch.setattr(batch, "_run_job", kill_worker_on_j6)
    with local_client(2) as client:
        table = predict_many(data, model=models["vi"], outdir=tmp_path / "dask", T=2, seed=3, client=client)
        monkeypatch.undo()
        status = main(["predict", str(data), "--model", str(models["vi"]), "-T", "2", "--seed", "3",
                       "-o", str(tmp_path / "cli"), "--scheduler", client.scheduler.address])
        per_worker = client.run(cache_info)  # the workers that ran the CLI's batch (some restarted)
        threads = client.run(torch.get_num_threads)
    assert worker_processes_left(psutil) == []  # no worker left running
    assert list(serial["status"]) == ["done"] * 5 + ["failed"]
    assert list(table["status"]) == ["done"] * 5 + ["failed"] * 2
    assert "j5_flc.fits" in table.loc[5, "error"]
    assert "j6_flc.fits" in table.loc[6, "error"] and "died (retried once)" in table.loc[6, "error"]
    for k in range(5):
        hdus_equal(tmp_path / "serial" / f"j{k}_flc_cosmiq.fits", tmp_path / "dask" / f"j{k}_flc_cosmiq.fits")
        hdus_equal(tmp_path / "serial" / f"j{k}_flc_cosmiq.fits", tmp_path / "cli" / f"j{k}_flc_cosmiq.fits")
    assert status == 1 and (tmp_path / "cli" / "j6_flc_cosmiq.fits").exists()  # j5 failed; j6 fine here
    assert list(table["cr_pixels"][:5]) == list(serial["cr_pixels"][:5])
    assert per_worker and all(info["loads"] <= 1 for info in per_worker.values())  # once per worker process
    assert sum(info["loads"] for info in per_worker.values()) >= 1
    assert set(threads.values()) == {1}
    assert torch.get_num_threads() == threads_here  # set inside the workers, not here
