"""cosmiq_pyro.io.fitsio: HST-style multi-extension reading, units, DQ, atomic writes."""
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from cosmiq_pyro.io.fitsio import CR_DQ_FLAGS, DEFAULT_DQ_FLAGS, read_hst
from cosmiq_pyro.io.fitswrite import write_hdulist_atomic

H, W = 20, 30


def _tan_header(crval1, crval2):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crpix = [15.0, 10.0]
    w.wcs.crval = [crval1, crval2]
    w.wcs.cdelt = [-0.05 / 3600, 0.05 / 3600]  # ACS/WFC-like 0.05"/pixel
    return w.to_header()


def _hst_file(path, bunit="ELECTRONS", exptime=500.0, gain=2.0, sci=None, dq=None,
              dq_first=False):
    """PRIMARY + (SCI, ERR, DQ) x 2 with EXTVER, like an ACS/WFC _flc file."""
    primary = fits.PrimaryHDU()
    primary.header["INSTRUME"] = "ACS"
    primary.header["DETECTOR"] = "WFC"
    if exptime is not None:
        primary.header["EXPTIME"] = exptime
    if gain is not None:
        primary.header["CCDGAIN"] = gain
    sci = sci if sci is not None else [np.full((H, W), 3.0, np.float32),
                                       np.full((H, W), 5.0, np.float32)]
    dq = dq if dq is not None else [np.zeros((H, W), np.int16), np.zeros((H, W), np.int16)]
    crvals = [(150.1, 2.2), (150.1, 2.3)]
    scis, dqs = [], []
    for k in (1, 2):
        h = _tan_header(*crvals[k - 1])
        if bunit is not None:
            h["BUNIT"] = bunit
        scis.append(fits.ImageHDU(sci[k - 1], header=h, name="SCI", ver=k))
        scis.append(fits.ImageHDU(np.ones((H, W), np.float32), name="ERR", ver=k))
        dqs.append(fits.ImageHDU(dq[k - 1], name="DQ", ver=k))
    if dq_first:  # DQ extensions in reverse order: matching must go by EXTVER
        hdus = [primary, dqs[1], dqs[0], *scis]
    else:
        hdus = [primary, scis[0], scis[1], dqs[0], scis[2], scis[3], dqs[1]]
    fits.HDUList(hdus).writeto(path)
    return path


@pytest.fixture
def gmos_path():
    astroscrappy = pytest.importorskip("astroscrappy")
    p = Path(astroscrappy.__file__).parent / "tests" / "data" / "gmos.fits"
    if not p.exists():
        pytest.skip("astroscrappy distribution without tests/data/gmos.fits")
    return p


# ---------------------------------------------------------------- real CCD frame


def test_gmos_frame_read_as_is(gmos_path):
    with pytest.warns(UserWarning, match="no BUNIT"):
        (img,) = read_hst(gmos_path)
    expected = fits.getdata(gmos_path, "SCI")
    assert img.image.shape == (150, 200)
    assert img.image.dtype == np.float32
    np.testing.assert_array_equal(img.image, expected.astype(np.float32))
    assert not img.ignore.any()
    assert img.extname == "SCI" and img.extver == 1
    assert img.bunit is None and img.electrons_per_unit == 1.0
    assert img.primary_header["INSTRUME"] == "GMOS-S"
    assert img.exptime_s == 90.0
    assert img.wcs is None  # the SCI header carries no WCS
    assert img.header["EXTNAME"] == "SCI"


def test_gmos_frame_gain_and_bunit_override(gmos_path):
    # state that the frame is in ADU with gain 1.933 e-/ADU (astroscrappy's test value)
    (img,) = read_hst(gmos_path, bunit="ADU", gain_e_per_adu=1.933)
    raw = fits.getdata(gmos_path, "SCI").astype(np.float64)
    np.testing.assert_allclose(img.image, raw * 1.933, rtol=1e-6)


# ---------------------------------------------------------------- HST-like files


def test_both_chips_with_their_wcs(tmp_path):
    path = _hst_file(tmp_path / "j_flc.fits")
    chips = read_hst(path)
    assert [(c.extname, c.extver) for c in chips] == [("SCI", 1), ("SCI", 2)]
    np.testing.assert_array_equal(chips[0].image, 3.0)
    np.testing.assert_array_equal(chips[1].image, 5.0)
    # FITS CRPIX is 1-based: 0-based pixel (14, 9) lands on CRVAL of each chip
    for chip, dec in zip(chips, (2.2, 2.3)):
        sky = chip.wcs.pixel_to_world(14, 9)
        assert sky.ra.deg == pytest.approx(150.1, abs=1e-9)
        assert sky.dec.deg == pytest.approx(dec, abs=1e-9)
        assert chip.header["BUNIT"] == "ELECTRONS"
        assert chip.primary_header["EXPTIME"] == 500.0
        assert chip.exptime_s == 500.0


def test_one_extension_selected(tmp_path):
    path = _hst_file(tmp_path / "j_flc.fits")
    (chip,) = read_hst(path, ext=("SCI", 2))
    assert chip.extver == 2
    np.testing.assert_array_equal(chip.image, 5.0)
    with pytest.raises(ValueError, match=r"no extension \('SCI', 3\)"):
        read_hst(path, ext=("SCI", 3))


@pytest.mark.parametrize("bunit, factor", [
    ("ELECTRONS", 1.0),
    ("ELECTRONS/S", 500.0),       # x EXPTIME
    ("electrons / sec", 500.0),
    ("COUNTS", 2.0),              # x CCDGAIN
    ("COUNTS/S", 1000.0),         # x CCDGAIN x EXPTIME
    ("DN", 2.0),
])
def test_units_to_electrons(tmp_path, bunit, factor):
    path = _hst_file(tmp_path / "u.fits", bunit=bunit)
    chips = read_hst(path)
    np.testing.assert_allclose(chips[0].image, 3.0 * factor)
    np.testing.assert_allclose(chips[1].image, 5.0 * factor)
    assert chips[0].electrons_per_unit == pytest.approx(factor)
    assert chips[0].bunit == bunit


def test_counts_without_gain_refused(tmp_path):
    path = _hst_file(tmp_path / "u.fits", bunit="COUNTS", gain=None)
    with pytest.raises(ValueError, match=r"u\.fits.*BUNIT 'COUNTS'.*gain"):
        read_hst(path)
    np.testing.assert_allclose(read_hst(path, gain_e_per_adu=1.5)[0].image, 4.5)


def test_rate_without_exptime_refused(tmp_path):
    path = _hst_file(tmp_path / "u.fits", bunit="ELECTRONS/S", exptime=None)
    with pytest.raises(ValueError, match="EXPTIME is missing"):
        read_hst(path)
    np.testing.assert_allclose(read_hst(path, exptime_s=10.0)[0].image, 30.0)


def test_unknown_unit_refused(tmp_path):
    path = _hst_file(tmp_path / "u.fits", bunit="MJy/sr")
    with pytest.raises(ValueError, match=r"BUNIT 'MJy/sr' cannot be converted"):
        read_hst(path)


def test_missing_bunit_warns_and_reads_electrons(tmp_path):
    path = _hst_file(tmp_path / "u.fits", bunit=None)
    with pytest.warns(UserWarning, match="no BUNIT"):
        chips = read_hst(path)
    np.testing.assert_array_equal(chips[0].image, 3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(read_hst(path, bunit="ELECTRONS/S")[1].image, 2500.0)


def test_dq_bits_to_ignore(tmp_path):
    dq1 = np.zeros((H, W), np.int16)
    cases = {  # pixel -> (DQ value, expected ignore with the default flags)
        (0, 0): (4, True),          # bad detector pixel
        (0, 1): (16, True),         # hot
        (0, 2): (64, False),        # warm: usable
        (0, 3): (256, True),        # full-well saturation
        (0, 4): (2048 | 256, True),  # A-to-D saturation
        (0, 5): (4096, False),      # CR from AstroDrizzle: never hidden
        (0, 6): (8192, False),      # CR from CALACS: never hidden
        (0, 7): (8192 | 16, True),  # hot pixel also flagged CR
        (0, 8): (512, False),       # flat-field reference (dust motes)
        (0, 9): (128, True),        # bad column
    }
    for (y, x), (v, _) in cases.items():
        dq1[y, x] = v
    dq2 = np.zeros((H, W), np.int16)
    dq2[5, 5] = 4
    path = _hst_file(tmp_path / "dq.fits", dq=[dq1, dq2], dq_first=True)
    chip1, chip2 = read_hst(path)
    for (y, x), (v, expected) in cases.items():
        assert chip1.ignore[y, x] == expected, f"DQ={v}"
    assert chip1.ignore.sum() == sum(e for _, e in cases.values())
    # chip 2 takes DQ,2 (written before DQ,1 in the file)
    assert chip2.ignore.sum() == 1 and chip2.ignore[5, 5]
    assert chip1.ignore.dtype == bool

    assert not read_hst(path, dq_flags=0)[0].ignore.any()
    only_cr = read_hst(path, dq_flags=CR_DQ_FLAGS)[0].ignore
    assert set(zip(*np.nonzero(only_cr))) == {(0, 5), (0, 6), (0, 7)}


def test_default_dq_flags_exclude_cosmic_ray_bits():
    assert DEFAULT_DQ_FLAGS & 4096 == 0 and DEFAULT_DQ_FLAGS & 8192 == 0
    assert DEFAULT_DQ_FLAGS == 1 + 2 + 4 + 8 + 16 + 32 + 128 + 256 + 1024 + 2048


def test_nonfinite_pixels_ignored_and_filled(tmp_path):
    sci1 = np.arange(H * W, dtype=np.float32).reshape(H, W)
    sci1[2, 3] = np.nan
    sci1[4, 5] = np.inf
    sci1[6, 7] = -np.inf
    path = _hst_file(tmp_path / "nan.fits", bunit="ELECTRONS/S",
                     sci=[sci1, np.ones((H, W), np.float32)])
    chip = read_hst(path)[0]
    assert set(zip(*np.nonzero(chip.ignore))) == {(2, 3), (4, 5), (6, 7)}
    assert np.isfinite(chip.image).all()
    finite = sci1[np.isfinite(sci1)] * 500.0
    assert chip.image[2, 3] == pytest.approx(np.median(finite))
    assert chip.image[0, 1] == pytest.approx(500.0)


def test_simple_primary_image(tmp_path):
    data = np.arange(12, dtype=">i2").reshape(3, 4)  # big-endian ints, as FITS stores them
    hdu = fits.PrimaryHDU(data)
    hdu.header["BUNIT"] = "ELECTRONS"
    hdu.header.update(_tan_header(10.0, -5.0))
    hdu.writeto(tmp_path / "simple.fits")
    (img,) = read_hst(tmp_path / "simple.fits")
    assert img.extname == "PRIMARY" and img.extver == 1
    assert img.image.dtype == np.float32 and img.image.dtype.isnative
    np.testing.assert_array_equal(img.image, data)
    assert img.wcs is not None and img.wcs.has_celestial


# ---------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.fits"):
        read_hst(tmp_path / "nope.fits")


def test_not_fits(tmp_path):
    p = tmp_path / "notes.fits"
    p.write_text("this is not a FITS file\n" * 200)
    with pytest.raises(ValueError, match="notes.fits.*not a readable FITS"):
        read_hst(p)


def test_no_image_extension(tmp_path):
    table = fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=[1.0])])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(tmp_path / "tab.fits")
    with pytest.raises(ValueError, match="tab.fits.*no image extension"):
        read_hst(tmp_path / "tab.fits")
    with pytest.raises(ValueError, match="tab.fits.*extension PRIMARY,1 is empty"):
        read_hst(tmp_path / "tab.fits", ext=0)
    with pytest.raises(ValueError, match="BinTableHDU, not an image"):
        read_hst(tmp_path / "tab.fits", ext=1)


def test_cube_refused(tmp_path):
    fits.PrimaryHDU(np.zeros((3, 4, 5), np.float32)).writeto(tmp_path / "cube.fits")
    with pytest.raises(ValueError, match=r"cube.fits.*shape \(3, 4, 5\).*2-D"):
        read_hst(tmp_path / "cube.fits")


def test_dq_shape_mismatch(tmp_path):
    path = _hst_file(tmp_path / "bad_dq.fits",
                     dq=[np.zeros((H, W + 1), np.int16), np.zeros((H, W), np.int16)])
    with pytest.raises(ValueError, match=r"DQ,1 has shape \(20, 31\)"):
        read_hst(path)


def test_bad_dq_flags(tmp_path):
    path = _hst_file(tmp_path / "x.fits")
    with pytest.raises(ValueError, match="dq_flags"):
        read_hst(path, dq_flags=-1)
    with pytest.raises(TypeError, match="dq_flags"):
        read_hst(path, dq_flags=1.5)


# ---------------------------------------------------------------- atomic writer


def test_atomic_write_roundtrip_and_refusal(tmp_path):
    out = tmp_path / "out.fits"
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_hdulist_atomic(fits.HDUList([fits.PrimaryHDU(data)]), out)
    np.testing.assert_array_equal(fits.getdata(out), data)

    with pytest.raises(FileExistsError, match="out.fits"):
        write_hdulist_atomic(fits.PrimaryHDU(data * 2), out)
    np.testing.assert_array_equal(fits.getdata(out), data)  # untouched

    write_hdulist_atomic(fits.ImageHDU(data * 2, name="PROB"), out, overwrite=True)
    np.testing.assert_array_equal(fits.getdata(out, "PROB"), data * 2)
    assert sorted(os.listdir(tmp_path)) == ["out.fits"]  # no temporary left behind


def test_atomic_write_failure_leaves_nothing(tmp_path, monkeypatch):
    def half_write(self, fileobj, **kwargs):
        fileobj.write(b"SIMPLE  =                    T")
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_hdulist_atomic(fits.PrimaryHDU(np.zeros((2, 2))), tmp_path / "out.fits")
    assert os.listdir(tmp_path) == []


def test_atomic_write_bad_input(tmp_path):
    with pytest.raises(TypeError, match="HDUList"):
        write_hdulist_atomic(np.zeros((2, 2)), tmp_path / "a.fits")
    with pytest.raises(FileNotFoundError, match="no_dir"):
        write_hdulist_atomic(fits.PrimaryHDU(), tmp_path / "no_dir" / "a.fits")

