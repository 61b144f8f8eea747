"""Real-world FITS inputs for `read_hst`: raw scaled-integer frames, truncated files, fill values,
files without SCI or BUNIT (issue 14)."""
import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from cosmiq_pyro.io.fitsio import MAX_ABS_ELECTRONS, read_hst


@pytest.fixture
def saao_path():
    """ccdproc's test frame: a raw SAAO 1.0m CCD frame, uint16 stored as int16 with BZERO 32768."""
    ccdproc = pytest.importorskip("ccdproc")
    p = Path(ccdproc.__file__).parent / "tests" / "data" / "a8280271.fits"
    if not p.exists():
        pytest.skip("ccdproc distribution without tests/data/a8280271.fits")
    return p


def _raw_uint16(path):
    """The frame decoded by hand: one 2880-byte header block, big-endian int16 + BZERO 32768."""
    raw = np.frombuffer(path.read_bytes()[2880:2880 + 536 * 520 * 2], dtype=">i2")
    return (raw.astype(np.int64) + 32768).reshape(520, 536)


def test_raw_uint16_frame_is_read(saao_path):
    with pytest.warns(UserWarning, match=r"a8280271\.fits.*no BUNIT.*gain of 1\.9 e-/ADU.*--bunit ADU"):
        (img,) = read_hst(saao_path)
    expected = _raw_uint16(saao_path)
    assert expected.min() > 0 and (expected - 32768).max() < 0  # every stored value needs BZERO
    np.testing.assert_array_equal(img.image, expected.astype(np.float32))
    assert img.bunit_used is None and img.gain_e_per_adu is None


def test_raw_frame_in_adu_uses_the_header_gain(saao_path):
    (img,) = read_hst(saao_path, bunit="ADU")  # GAIN = 1.9 e-/ADU in the header
    np.testing.assert_allclose(img.image, _raw_uint16(saao_path) * 1.9, rtol=1e-6)
    assert img.gain_e_per_adu == 1.9 and img.bunit_used == "ADU"
    (img,) = read_hst(saao_path, bunit="ADU", gain_e_per_adu=2.5)  # the option wins
    np.testing.assert_allclose(img.image, _raw_uint16(saao_path) * 2.5, rtol=1e-6)


def test_scaled_int16_with_blank_and_scaled_uint16_dq(tmp_path):
    stored = np.arange(20, dtype=np.int16).reshape(4, 5)
    stored[1, 2] = -32768  # BLANK
    sci = fits.ImageHDU(stored, name="SCI", ver=1)
    sci.header["BSCALE"], sci.header["BZERO"], sci.header["BLANK"] = 0.5, 10.0, -32768
    sci.header["BUNIT"] = "ELECTRONS"
    dq = fits.ImageHDU(np.array([[16] + [0] * 4] * 4, dtype=np.uint16), name="DQ", ver=1)
    fits.HDUList([fits.PrimaryHDU(), sci, dq]).writeto(tmp_path / "scaled.fits")
    assert fits.getheader(tmp_path / "scaled.fits", "DQ")["BZERO"] == 32768  # uint16 is scaled too
    (img,) = read_hst(tmp_path / "scaled.fits")
    expected = stored * 0.5 + 10.0
    good = np.ones((4, 5), bool)
    good[1, 2] = False
    np.testing.assert_allclose(img.image[good], expected[good])
    assert img.ignore[1, 2] and img.ignore[:, 0].all()  # BLANK and DQ 16 (hot pixel)
    assert img.ignore.sum() == 5


def _random_file(path, n=64):
    hdu = fits.ImageHDU(np.random.default_rng(0).normal(100, 5, (n, n)).astype(np.float32), name="SCI")
    hdu.header["BUNIT"] = "ELECTRONS"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path.read_bytes()


def test_truncated_fits_names_the_file(tmp_path):
    whole = _random_file(tmp_path / "whole.fits")
    (tmp_path / "cut.fits").write_bytes(whole[:-5000])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no astropy warning before the error
        with pytest.raises(ValueError, match=r"cut\.fits.*truncated"):
            read_hst(tmp_path / "cut.fits")


def test_truncated_gzip_names_the_file(tmp_path):
    packed = gzip.compress(_random_file(tmp_path / "whole.fits"))
    (tmp_path / "cut.fits.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match=r"cut\.fits\.gz.*truncated or corrupt gzip"):
        read_hst(tmp_path / "cut.fits.gz")
    (tmp_path / "ok.fits.gz").write_bytes(packed)
    (img,) = read_hst(tmp_path / "ok.fits.gz")
    assert img.image.shape == (64, 64)


def test_all_nan_extension_warns(tmp_path):
    hdu = fits.PrimaryHDU(np.full((8, 8), np.nan, np.float32))
    hdu.header["BUNIT"] = "ELECTRONS"
    hdu.writeto(tmp_path / "blank.fits")
    with pytest.warns(UserWarning, match=r"blank\.fits.*every pixel is NaN.*ignored"):
        (img,) = read_hst(tmp_path / "blank.fits")
    assert img.ignore.all() and np.isfinite(img.image).all()


def test_fill_values_are_ignored_with_a_warning(tmp_path):
    data = np.full((8, 8), 50.0, np.float32)
    data[3, 4] = 1e30
    data[5, 6] = -1e31
    data[0, 0] = 0.5 * MAX_ABS_ELECTRONS  # large but possible: kept
    hdu = fits.PrimaryHDU(data)
    hdu.header["BUNIT"] = "ELECTRONS"
    hdu.writeto(tmp_path / "fill.fits")
    with pytest.warns(UserWarning, match=r"fill\.fits.*2 pixel\(s\) beyond.*row 3, column 4.*ignored"):
        (img,) = read_hst(tmp_path / "fill.fits")
    assert set(zip(*np.nonzero(img.ignore))) == {(3, 4), (5, 6)}
    assert img.image[3, 4] == 50.0 and img.image[0, 0] == pytest.approx(0.5 * MAX_ABS_ELECTRONS)


def test_file_without_sci_says_which_extension(tmp_path):
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(np.ones((4, 4), np.float32), name="IMG"),
            fits.ImageHDU(np.zeros((4, 4), np.float32), name="VAR")]
    for h in hdus[1:]:
        h.header["BUNIT"] = "ELECTRONS"
    fits.HDUList(hdus).writeto(tmp_path / "nosci.fits")
    with pytest.warns(UserWarning, match=r"nosci\.fits.*no SCI extension; reading extension 1 \(IMG,1\).*of 2"):
        (img,) = read_hst(tmp_path / "nosci.fits")
    assert img.extname == "IMG"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (img,) = read_hst(tmp_path / "nosci.fits", ext="VAR")  # chosen: no warning
    assert img.extname == "VAR"


def test_missing_bunit_warns_once_per_file(tmp_path):
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(np.ones((4, 4), np.float32), name="SCI", ver=v)
                                  for v in (1, 2)]
    fits.HDUList(hdus).writeto(tmp_path / "two.fits")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_hst(tmp_path / "two.fits")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "SCI,1, SCI,2" in messages[0]


@pytest.mark.parametrize("kwargs, error", [
    (dict(gain_e_per_adu=0.0), ValueError), (dict(gain_e_per_adu=float("nan")), ValueError),
    (dict(gain_e_per_adu="2"), TypeError), (dict(exptime_s=-1.0), ValueError), (dict(bunit=3), TypeError)])
def test_bad_unit_options_named(tmp_path, kwargs, error):
    fits.PrimaryHDU(np.ones((4, 4), np.float32)).writeto(tmp_path / "a.fits")
    with pytest.raises(error, match=next(iter(kwargs))):
        read_hst(tmp_path / "a.fits", **kwargs)


def test_numpy_scalars_accepted_as_gain(saao_path):
    (img,) = read_hst(saao_path, bunit="ADU", gain_e_per_adu=np.float32(2.0))
    assert img.gain_e_per_adu == 2.0
