"""Issue 25 item 12: the smaller failure paths, each reproduced as a user meets it."""
import errno
import os

import numpy as np
import pytest
import torch
from astropy.io import fits

import cosmiq_pyro as cq
from cosmiq_pyro.app.cli import main

H, W = 24, 28


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, [line for line in err.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def twin_file(tmp_path_factory):
    return cq.save(tmp_path_factory.mktemp("m") / "twin.pth", cq.UNet2Sigmoid(hidden=2).eval())


def electrons_file(path, header=None, data=None):
    data = np.random.default_rng(0).normal(100.0, 8.0, (H, W)).astype(np.float32) if data is None else data
    header = fits.Header({"BUNIT": "ELECTRONS", **(header or {})})
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=header, name="SCI")]).writeto(path)
    return path


def test_dq_flags_out_of_range_is_a_usage_error(twin_file, tmp_path, capsys):
    source = electrons_file(tmp_path / "f.fits")
    for flags in (2**63, 2**70):
        status, _, err = run(capsys, "predict", source, "--model", twin_file, "-o", tmp_path / "o",
                             "--dq-flags", flags)
        assert status == 2 and len(err) == 1 and "a DQ bit mask in [0, 2**63 - 1]" in err[0]
    assert not (tmp_path / "o").exists()
    from cosmiq_pyro.io.fitsio import read_hst
    with pytest.raises(ValueError, match=r"dq_flags must be a bit mask in \[0, 2\*\*63 - 1\]"):
        read_hst(source, dq_flags=2**63)
    assert run(capsys, "predict", source, "--model", twin_file, "-o", tmp_path / "o",
               "--dq-flags", 2**63 - 1)[0] == 0  # the largest mask is fine


def test_a_vi_checkpoint_without_its_guide_is_refused_at_load(tmp_path):
    image = np.random.default_rng(0).normal(100, 10, (2, 16, 16)).astype(np.float32)
    vi = cq.fit_svi(cq.UNet2SigmoidVI(hidden=2), (image, image > 115, None), epochs=1, batch_size=2,
                    progress=False)
    payload = torch.load(cq.save(tmp_path / "vi.pth", vi), weights_only=True)
    payload["guide_state"] = None
    torch.save(payload, tmp_path / "no_guide.pth")
    with pytest.raises(ValueError, match=r"no_guide\.pth.*UNet2SigmoidVI without its guide"):
        cq.load(tmp_path / "no_guide.pth")


def test_dangling_symlinks_in_an_input_directory_are_reported(twin_file, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    electrons_file(folder / "good.fits")
    os.symlink(tmp_path / "gone.fits", folder / "broken.fits")
    table = cq.predict_many(folder, model=twin_file, outdir=tmp_path / "out")
    assert list(table["status"]) == ["failed", "done"]  # sorted by name: broken, good
    assert "symbolic link to" in table.loc[0, "error"] and "gone.fits" in table.loc[0, "error"]
    status, _, err = run(capsys, "predict", folder, "--model", twin_file, "-o", tmp_path / "out2")
    assert status == 1 and any("broken.fits" in line and "symbolic link" in line for line in err)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e30])
def test_non_finite_pixels_name_the_fix_each_entry_point_offers(twin_file, bad):
    from astropy.nddata import CCDData
    from cosmiq_pyro.model import deepCR
    image = np.random.default_rng(1).normal(100.0, 8.0, (H, W)).astype(np.float32)
    image[3, 4] = bad
    mdl = deepCR(mask=str(twin_file))
    with pytest.raises(ValueError, match=r"row 3, column 4.*clean\(\) takes no ignore=.*clean_vi\(img0, ignore="):
        mdl.clean(image)
    ignore = ~np.isfinite(image) | (np.abs(image) > 1e9)
    with pytest.warns(UserWarning, match="deterministic"):
        assert mdl.clean_vi(image, ignore=ignore, T=1).shape == image.shape  # the fix it names works
    ccd = CCDData(image, unit="electron")
    if np.isfinite(bad):  # a fill value: only the user knows it is bad
        with pytest.raises(ValueError, match=r"row 3, column 4.*set them in ccd\.mask"):
            cq.cosmicray_cosmiq(ccd, model=twin_file)
        ccd.mask = np.abs(image) > 1e9
    out = cq.cosmicray_cosmiq(ccd, model=twin_file)  # NaN/inf: left out by themselves
    assert np.isfinite(out.cr_prediction.prob).all()
    if ccd.mask is not None:  # the user's bad pixel stays masked
        assert out.mask[3, 4]


def _astropy_write_fails_with_a_full_disk(monkeypatch):
    """What a full disk does inside astropy: its low-level write fails with ENOSPC."""
    from astropy.io.fits import file as fits_file

    def full(self, string):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fits_file._File, "write", full)


def test_a_full_disk_is_one_line_naming_the_output(twin_file, tmp_path, capsys, monkeypatch):
    source = electrons_file(tmp_path / "f.fits")
    _astropy_write_fails_with_a_full_disk(monkeypatch)
    status, _, err = run(capsys, "predict", source, "--model", twin_file, "-o", tmp_path / "out")
    assert status == 1 and len(err) == 1, err
    assert "f_cosmiq.fits" in err[0] and "AttributeError" not in err[0]
    assert "space" in err[0].lower()
    assert not (tmp_path / "out").exists()  # no temporary left behind (nor the directory made for it)
    # a checkpoint on a full disk: an OSError naming the file, nothing left behind
    monkeypatch.undo()
    from cosmiq_pyro.io import atomic
    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: _FullFile(fd))
    with pytest.raises(OSError, match=r"No space left on device: '.*m\.pth'"):
        cq.save(tmp_path / "ck" / "m.pth", cq.UNet2Sigmoid(hidden=2))
    assert list((tmp_path / "ck").iterdir()) == []


class _FullFile:
    """A file object over ``fd`` whose writes fail as on a full disk."""

    def __init__(self, fd):
        self.fd = fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self):
        pass

    def fileno(self):
        return self.fd


def test_a_gain_keyword_stored_as_a_string_is_read(tmp_path):
    from cosmiq_pyro.io.fitsio import read_hst
    data = np.random.default_rng(2).normal(100.0, 8.0, (H, W)).astype(np.float32)
    for i, gain in enumerate(("2.0", " 2 ", 2.0)):
        path = tmp_path / f"adu_{i}.fits"
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, name="SCI", header=fits.Header(
            {"BUNIT": "ADU", "GAIN": gain}))]).writeto(path)
        frame = read_hst(path)[0]
        np.testing.assert_array_equal(frame.image, data * np.float32(2.0))  # a power of two: exact
        assert frame.gain_e_per_adu == 2.0
    path = tmp_path / "adu_unknown.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, name="SCI", header=fits.Header(
        {"BUNIT": "ADU", "GAIN": "unknown"}))]).writeto(path)
    with pytest.raises(ValueError, match="in counts but no gain"):
        read_hst(path)


def test_a_rate_file_without_exptime_needs_the_option(twin_file, tmp_path, capsys):
    source = electrons_file(tmp_path / "rate.fits", header={"BUNIT": "ELECTRONS/S"})
    status, _, err = run(capsys, "predict", source, "--model", twin_file, "-o", tmp_path / "a")
    assert status == 1 and "EXPTIME is missing; pass exptime_s= (--exptime)" in err[0]
    status, _, _ = run(capsys, "predict", source, "--model", twin_file, "-o", tmp_path / "b", "--exptime", 400)
    assert status == 0
    with fits.open(tmp_path / "b" / "rate_cosmiq.fits") as hdul:
        assert "exptime=400.0" in hdul[0].header["CQREAD"]  # the option is part of the provenance
    # the maps are those of the frame in electrons: rate x 400 s
    from cosmiq_pyro.io.fitsio import read_hst
    np.testing.assert_allclose(read_hst(source, exptime_s=400.0)[0].image, fits.getdata(source, "SCI") * 400.0,
                               rtol=1e-6)


def test_gain_on_an_electrons_file_warns(twin_file, tmp_path, capsys):
    from cosmiq_pyro.io.fitsio import read_hst
    source = electrons_file(tmp_path / "e.fits")
    with pytest.warns(UserWarning, match=r"gain_e_per_adu=1.9 \(--gain\) was not used: the pixels are in ELECTRONS"):
        frame = read_hst(source, gain_e_per_adu=1.9)[0]
    np.testing.assert_array_equal(frame.image, fits.getdata(source, "SCI"))  # not multiplied
    status, _, err = run(capsys, "predict", source, "--model", twin_file, "-o", tmp_path / "o", "--gain", 1.9)
    assert status == 0 and any("(--gain) was not used" in line for line in err)


def test_a_read_only_output_directory_holding_every_product_reports_them_skipped(twin_file, tmp_path, capsys,
                                                                                 monkeypatch):
    from pathlib import Path
    sources = [electrons_file(tmp_path / f"f{i}.fits") for i in range(2)]
    out = tmp_path / "out"
    assert run(capsys, "predict", *sources, "--model", twin_file, "-o", out)[0] == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    out.chmod(0o555)  # read-only; root ignores the mode, so the access check sees it so too
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == out and mode & os.W_OK
                        else real_access(path, mode, **kw))
    try:
        status, stdout, err = run(capsys, "predict", *sources, "--model", twin_file, "-o", out)
        assert status == 0 and err == [] and "0 done, 0 redone, 2 skipped, 0 failed" in stdout
        assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing written
        electrons_file(tmp_path / "f2.fits")  # a new input: its product cannot be written
        status, _, err = run(capsys, "predict", *sources, tmp_path / "f2.fits", "--model", twin_file, "-o", out)
        assert status == 2 and len(err) == 1 and "not writable" in err[0]
    finally:
        out.chmod(0o755)
