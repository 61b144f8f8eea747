"""read_hst with camera specs: recognition from the header, all CCDs of a multi-CCD file, units,
gain keywords and DQ bits from the spec, and the precedence argument > header > spec."""
import warnings

import numpy as np
import pytest
from astropy.io import fits

from cosmiq_pyro.instruments import spec_path
from cosmiq_pyro.io.fitsio import read_hst

H, W = 12, 16


def _decam_file(path, gains=(4.2, 3.9, None), bunits=(None, None, None)):
    """A DECam Community-Pipeline-like exposure: PRIMARY + one fpacked image per CCD (ADU)."""
    primary = fits.PrimaryHDU()
    primary.header.update(TELESCOP="CTIO 4.0-m telescope", INSTRUME="DECam", EXPTIME=90.0)
    hdus = [primary]
    for k, (name, gain, bunit) in enumerate(zip(("S1", "N4", "S29"), gains, bunits)):
        data = np.full((H, W), 100 * (k + 1), np.int32)  # integers: Rice compression is lossless
        hdu = fits.CompImageHDU(data, name=name)
        if gain is not None:
            hdu.header["GAINA"] = gain
        if bunit is not None:
            hdu.header["BUNIT"] = bunit
        hdus.append(hdu)
    hdus.append(fits.ImageHDU(np.zeros((H, W), np.float32), name="WGT"))  # not a CCD
    fits.HDUList(hdus).writeto(path)
    return path


def test_decam_all_ccds_in_adu_with_each_ccds_gain(tmp_path):
    path = _decam_file(tmp_path / "c4d_190503_101849_ooi_z_v1.fits.fz")
    with pytest.warns(UserWarning, match=r"no gain keyword \(GAINA/GAINB/GAIN\) in extension\(s\) S29,1; "
                                         r"using the DECam spec's gain 4 e-/ADU") as record:
        chips = read_hst(path)
    assert len([w for w in record if "gain" in str(w.message)]) == 1  # one warning per file
    assert [c.extname for c in chips] == ["S1", "N4", "S29"]  # every CCD, in file order; WGT is not one
    assert all(c.instrument == "DECam" for c in chips)
    # ADU (the spec's unit: no BUNIT in the file) x the CCD's GAINA, else the spec's 4.0 e-/ADU
    for chip, adu, gain in zip(chips, (100, 200, 300), (4.2, 3.9, 4.0)):
        np.testing.assert_allclose(chip.image, adu * gain, rtol=1e-6)
        assert chip.bunit is None and chip.bunit_used == "ADU"
        assert chip.gain_e_per_adu == gain and chip.electrons_per_unit == pytest.approx(gain)
        assert not chip.ignore.any()  # no DQ extension in a DECam image file
    assert [c.gain_from_spec for c in chips] == [False, False, True]
    (n4,) = read_hst(path, ext="N4")
    np.testing.assert_allclose(n4.image, 200 * 3.9, rtol=1e-6)


def test_precedence_argument_over_header_over_spec(tmp_path):
    path = _decam_file(tmp_path / "d.fits.fz", gains=(4.2, 3.9, 4.4), bunits=("ELECTRONS", None, None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every CCD has a gain: no warning
        s1, n4, s29 = read_hst(path)
    assert s1.bunit_used == "ELECTRONS" and s1.electrons_per_unit == 1.0  # header BUNIT over the spec's ADU
    assert n4.bunit_used == "ADU" and n4.gain_e_per_adu == 3.9            # spec's unit, header's gain
    s1, n4, _ = read_hst(path, bunit="ADU", gain_e_per_adu=5.0)           # arguments over both
    np.testing.assert_allclose(s1.image, 100 * 5.0)
    np.testing.assert_allclose(n4.image, 200 * 5.0)


def _flc(path, instrume, detector, dq):
    primary = fits.PrimaryHDU()
    primary.header.update(TELESCOP="HST", INSTRUME=instrume, DETECTOR=detector, EXPTIME=500.0, CCDGAIN=1.5)
    hdus = [primary]
    for k in (1, 2):
        sci = fits.ImageHDU(np.full((H, W), 10.0 * k, np.float32), name="SCI", ver=k)
        sci.header["BUNIT"] = "ELECTRONS"
        hdus += [sci, fits.ImageHDU(np.ones((H, W), np.float32), name="ERR", ver=k),
                 fits.ImageHDU(dq if k == 1 else np.zeros((H, W), np.int16), name="DQ", ver=k)]
    fits.HDUList(hdus).writeto(path)
    return path


def test_wfc3_uvis_flc_with_its_dq_bits(tmp_path):
    dq = np.zeros((H, W), np.int16)
    cases = {(0, 0): (32, True),       # UVIS CTE tail (calwf3 wf3dq.h)
             (0, 1): (16384, False),   # ghost / crosstalk: real light
             (0, 2): (4096, False),    # CR by AstroDrizzle: never hidden
             (0, 3): (8192, False),    # CR by calwf3
             (0, 4): (64, False),      # warm pixel
             (0, 5): (1024, True),     # charge trap / sink pixel
             (0, 6): (256, True)}      # full-well saturation
    for (y, x), (value, _) in cases.items():
        dq[y, x] = value
    chip1, chip2 = read_hst(_flc(tmp_path / "ib2u01abq_flc.fits", "WFC3", "UVIS", dq))
    assert chip1.instrument == chip2.instrument == "WFC3-UVIS"
    for (y, x), (value, expected) in cases.items():
        assert chip1.ignore[y, x] == expected, f"DQ={value}"
    assert chip1.ignore.sum() == 3 and not chip2.ignore.any()
    np.testing.assert_array_equal(chip2.image, 20.0)


def test_acs_reads_the_same_through_its_spec(tmp_path):
    """ACS/WFC users: the spec path gives exactly what the reader gave before specs existed."""
    dq = np.zeros((H, W), np.int16)
    dq[1, :12] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]
    dq[2, :3] = [4096, 8192, 16384]
    recognised = read_hst(_flc(tmp_path / "a_flc.fits", "ACS", "WFC", dq))
    other = read_hst(_flc(tmp_path / "b_flc.fits", "NOTACS", "WFC", dq))  # a camera without spec
    assert [c.instrument for c in recognised] == ["ACS-WFC"] * 2 and other[0].instrument is None
    for a, b in zip(recognised, other):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.ignore, b.ignore)
        assert (a.bunit_used, a.electrons_per_unit) == (b.bunit_used, b.electrons_per_unit)
    assert recognised[0].ignore[1].sum() == 10  # all but warm (64) and reference-file (512) pixels


MYCAM = """
[camera]
name = "MyCam"
description = "a lab camera"
[camera.match]
INSTRUME = "MYCAM"
[reader]
science_extnames = ["IMG*"]
dq_extname = "MASK"
suffixes = [".fits"]
bunit = "ADU"
gain_keywords = ["EGAIN"]
exptime_keyword = "EXPOSURE"
dq_ignore_bits = [1]
dq_cr_bits = [2]
[detector]
ccds = 2
ccd_shape_px = [12, 16]
pixel_scale_arcsec = "0.3 arcsec"
pixel_pitch_um = 13.5
ccd_thickness_um = 40
gain_e_per_adu = 1.25
read_noise_e = 5
saturation_e = 100000
dark_e_per_s = 0
"""


def test_user_spec_by_path(tmp_path):
    spec = tmp_path / "mycam.toml"
    spec.write_text(MYCAM)
    primary = fits.PrimaryHDU()
    primary.header.update(INSTRUME="MYCAM", EXPOSURE=30.0)
    mask = np.zeros((H, W), np.int16)
    mask[0, 0], mask[0, 1] = 1, 2
    img1 = fits.ImageHDU(np.full((H, W), 8, np.int16), name="IMG1", ver=1)
    img1.header["EGAIN"] = 2.0
    img2 = fits.ImageHDU(np.full((H, W), 8, np.int16), name="IMG2", ver=2)
    img2.header["BUNIT"] = "ADU/S"
    hdus = [primary, img1, fits.ImageHDU(mask, name="MASK", ver=1), img2,
            fits.ImageHDU(np.zeros((H, W), np.int16), name="MASK", ver=2)]
    path = tmp_path / "lab.fits"
    fits.HDUList(hdus).writeto(path)

    with warnings.catch_warnings(record=True) as record:  # not a shipped spec: read as before
        warnings.simplefilter("always")
        (plain,) = read_hst(path)
    messages = " | ".join(str(w.message) for w in record)
    assert "no SCI extension" in messages and "no BUNIT keyword" in messages
    assert plain.instrument is None and plain.extname == "IMG1"

    with pytest.warns(UserWarning, match="MyCam spec's gain 1.25"):
        one, two = read_hst(path, instrument=spec)
    assert (one.instrument, one.extname, two.extname) == ("MyCam", "IMG1", "IMG2")
    np.testing.assert_allclose(one.image, 8 * 2.0)           # ADU (spec) x EGAIN (header)
    np.testing.assert_allclose(two.image, 8 * 1.25 * 30.0)   # ADU/S x spec gain x EXPOSURE
    assert one.exptime_s == 30.0
    assert one.ignore[0, 0] and not one.ignore[0, 1] and one.ignore.sum() == 1  # MASK bit 1 only
    assert not read_hst(path, instrument=spec, dq_flags=0, gain_e_per_adu=1.0)[0].ignore.any()
    (shipped,) = read_hst(path, instrument="ACS-WFC", ext="IMG1", bunit="ELECTRONS")  # by name
    assert shipped.instrument == "ACS-WFC"


def test_bad_instrument_argument(tmp_path):
    path = _flc(tmp_path / "x_flc.fits", "ACS", "WFC", np.zeros((H, W), np.int16))
    with pytest.raises(ValueError, match="no shipped instrument spec 'NIRCam'"):
        read_hst(path, instrument="NIRCam")
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        read_hst(path, instrument=tmp_path / "missing.toml")
    with pytest.raises(TypeError, match="instrument must be"):
        read_hst(path, instrument=3)
    assert spec_path("acs-wfc").name == "ACS-WFC.toml"


def test_directories_keep_each_cameras_calibrated_exposures(tmp_path):
    """Directory expansion uses the specs' file endings: DECam's fpacked _ooi_ images, not their
    _ood_ masks or _oow_ weights; HST's _flc before _flt."""
    from cosmiq_pyro.app.inputs import expand_inputs, product_name

    folder = tmp_path / "night"
    folder.mkdir()
    for name in ("c4d_190503_101849_ooi_z_v1.fits.fz", "c4d_190503_101849_ood_z_v1.fits.fz",
                 "c4d_190503_101849_oow_z_v1.fits.fz", "c4d_190503_102011_ooi_g_v1.fits.fz",
                 "j1_flc.fits", "j1_flt.fits", "j2_flt.fits.gz", "j3_drz.fits", "notes.txt"):
        (folder / name).write_bytes(b"")
    assert [p.name for p in expand_inputs(folder)] == [
        "c4d_190503_101849_ooi_z_v1.fits.fz", "c4d_190503_102011_ooi_g_v1.fits.fz", "j1_flc.fits",
        "j2_flt.fits.gz"]
    assert product_name("c4d_190503_101849_ooi_z_v1.fits.fz") == "c4d_190503_101849_ooi_z_v1_cosmiq.fits"
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("a.fits.fz", "b.fits"):
        (plain / name).write_bytes(b"")
    assert [p.name for p in expand_inputs(plain)] == ["a.fits.fz", "b.fits"]


def test_products_record_the_camera_spec(models, tmp_path, capsys):
    """`cosmiq predict` reads every DECam CCD through its spec; each map says which spec (CQINSTR)
    and CQREAD records a spec given on the command line."""
    from cosmiq_pyro.app.cli import main
    from cosmiq_pyro.app.provenance import Provenance

    source = _decam_file(tmp_path / "c4d_1_ooi_z_v1.fits.fz", gains=(4.2, 3.9, 4.0))
    out = tmp_path / "out"
    assert main(["predict", str(source), "--model", str(models["det"]), "-o", str(out)]) == 0
    with fits.open(out / "c4d_1_ooi_z_v1_cosmiq.fits") as hdul:
        probs = [h for h in hdul if h.name == "PROB"]
        assert [h.header["CQSRCEXT"].split(",")[0] for h in probs] == ["S1", "N4", "S29"]
        assert {h.header["CQINSTR"] for h in probs} == {"DECam"}
        assert [h.header["CQGAIN"] for h in probs] == [4.2, 3.9, 4.0]
        assert Provenance.from_header(hdul[0].header).reading.endswith("dq=camera")
    code = main(["predict", str(source), "--model", str(models["det"]), "-o", str(out), "--overwrite",
                 "--instrument", "decam", "--ext", "N4"])
    assert code == 0
    with fits.open(out / "c4d_1_ooi_z_v1_cosmiq.fits") as hdul:
        from cosmiq_pyro.instruments import get_instrument
        assert hdul[0].header["CQREAD"].endswith(f"instrument=DECam:{get_instrument('DECam').digest()}")
        assert [h.header["CQINSTR"] for h in hdul if h.name == "PROB"] == ["DECam"]
    capsys.readouterr()
    assert main(["predict", str(source), "--model", str(models["det"]), "-o", str(out),
                 "--instrument", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope.toml" in err and "does not exist" in err and len(err.splitlines()) == 1
