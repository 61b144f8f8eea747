"""cosmiq_pyro.instruments: shipped specs, round trip, user specs, header recognition, bad specs."""
import re
import tomllib
from pathlib import Path

import pytest
from astropy.io import fits

from cosmiq_pyro.instruments import (
    Instrument, SpecError, get_instrument, instrument_for_header, list_instruments, read_spec, spec_path,
)
from cosmiq_pyro.models.registry import PUBLISHED

ACS_TOML = spec_path("ACS-WFC").read_text()


def _write(tmp_path, text, name="cam.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _edited(old, new, text=ACS_TOML):
    assert old in text, old
    return text.replace(old, new, 1)


# ---------------------------------------------------------------- shipped specs


def test_shipped_specs_load_and_round_trip():
    names = list_instruments()
    assert "ACS-WFC" in names
    for name in names:
        inst = get_instrument(name)
        assert inst.name == name and Path(inst.source).name == f"{name}.toml"
        again = Instrument.from_dict(tomllib.loads(inst.to_toml()))
        assert again == inst
        assert again.detector == inst.detector and again.reader == inst.reader  # field by field
        # frozen: a spec cannot be edited in place
        with pytest.raises(AttributeError):
            inst.detector.gain_e_per_adu = 1.0
        if inst.models.published is not None:
            assert inst.models.published in PUBLISHED
        assert inst.reader.dq_ignore_bits & inst.reader.dq_cr_bits == 0


def test_names_are_case_insensitive_and_cached():
    assert get_instrument("acs-wfc") is get_instrument("ACS-WFC")


def test_acs_spec_holds_todays_constants():
    """The values the code used before they moved into the spec (handbook figures)."""
    acs = get_instrument("ACS-WFC")
    d = acs.detector
    assert (d.pixel_scale_arcsec, d.pixel_pitch_um, d.gain_e_per_adu) == (0.05, 15.0, 2.0)
    assert d.read_noise_e == (3.75, 5.65) and d.read_noise_mid_e == 4.7
    assert d.saturation_e == (72000.0, 82000.0) and d.dark_e_per_s == 0.0161
    assert d.ccd_thickness_um == (12.0, 17.0)
    assert acs.reader.dq_ignore_bits == 1 + 2 + 4 + 8 + 16 + 32 + 128 + 256 + 1024 + 2048
    assert acs.reader.dq_cr_bits == 4096 + 8192
    assert acs.models.deepcr == "ACS-WFC" and acs.models.deepcr_input_unit == "ELECTRONS"
    assert acs.models.published == "ACS-WFC-VI"


def test_the_code_reads_the_spec():
    """One place: the reader, the simulator and novelty read these numbers from the spec."""
    from cosmiq_pyro.data import simulate
    from cosmiq_pyro.inference.novelty_stats import READ_NOISE_REF_E
    from cosmiq_pyro.io.fitsio import CR_DQ_FLAGS, DEFAULT_DQ_FLAGS

    acs = get_instrument("ACS-WFC")
    assert DEFAULT_DQ_FLAGS == acs.reader.dq_ignore_bits and CR_DQ_FLAGS == acs.reader.dq_cr_bits
    frame = simulate.simulate_frame(size=16, seed=3)  # the simulator reads the spec per call
    assert frame.meta["instrument"] == "ACS-WFC"
    assert frame.meta["gain_e_per_adu"] == acs.detector.gain_e_per_adu
    assert acs.detector.read_noise_e[0] <= frame.meta["read_noise_e"] <= acs.detector.read_noise_e[1]
    assert acs.detector.ccd_thickness_um[0] <= frame.meta["ccd_thickness_um"] <= acs.detector.ccd_thickness_um[1]
    assert READ_NOISE_REF_E == acs.detector.read_noise_mid_e


# ---------------------------------------------------------------- user specs


def test_user_spec_from_toml_path(tmp_path):
    text = _edited('name = "ACS-WFC"', 'name = "MyCam"')
    text = _edited('TELESCOP = "HST"\nINSTRUME = "ACS"\nDETECTOR = "WFC"',
                   'INSTRUME = ["MYCAM", "MYCAM2"]', text)
    text = _edited("pixel_scale_arcsec = 0.05 ", 'pixel_scale_arcsec = "50 mas" ', text)
    text = _edited("pixel_pitch_um = 15.0 ", 'pixel_pitch_um = "0.015 mm" ', text)
    path = _write(tmp_path, text)
    mine = get_instrument(path)
    assert mine.name == "MyCam" and mine.source == str(path)
    assert get_instrument(str(path)) == mine
    # the digest follows the values, not the comments or the file
    assert mine.digest() == Instrument.from_dict(tomllib.loads(mine.to_toml())).digest()
    assert mine.digest() != get_instrument("ACS-WFC").digest()
    commented = _write(tmp_path, "# my notes\n" + text, "commented.toml")
    assert get_instrument(commented).digest() == mine.digest()
    assert mine.detector.pixel_scale_arcsec == pytest.approx(0.05)  # converted by astropy.units
    assert mine.detector.pixel_pitch_um == pytest.approx(15.0)
    assert mine.match.instrume == ("MYCAM", "MYCAM2") and mine.match.telescop == ()
    header = fits.Header({"INSTRUME": "mycam2 "})
    assert instrument_for_header(header) is None  # not among the shipped specs
    assert instrument_for_header(header, candidates=[path, "ACS-WFC"]) == mine


def test_missing_spec_file_and_unknown_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        get_instrument(tmp_path / "nope.toml")
    with pytest.raises(ValueError, match=r"no shipped instrument spec 'HRC'.*ACS-WFC"):
        get_instrument("HRC")
    with pytest.raises(TypeError, match="instrument must be"):
        get_instrument(3)


BAD_SPECS = [  # (edit, the field the error names, a phrase of it)
    (("gain_e_per_adu = 2.0 ", "gain_e_per_adu = -2.0 "), r"\[detector\] gain_e_per_adu", "must be > 0"),
    (("dark_e_per_s = 0.0161", 'dark_e_per_s = "0.0161 arcsec"'), r"\[detector\] dark_e_per_s",
     "not in a unit convertible to electron/s"),
    (("pixel_pitch_um = 15.0 ", 'pixel_pitch_um = "15 arcsec" '), r"\[detector\] pixel_pitch_um",
     "convertible to um"),
    (("pixel_scale_arcsec = 0.05 ", ""), r"\[detector\] pixel_scale_arcsec", "missing"),
    (("pixel_scale_arcsec = 0.05 ", "pixel_scale = 0.05 "), r"\[detector\] pixel_scale_arcsec",
     "found 'pixel_scale'"),
    (("ccds = 2 ", "ccds = 2\nfocal_ratio = 5 "), r"\[detector\] focal_ratio", "unknown field"),
    (("read_noise_e = [3.75, 5.65]", "read_noise_e = [5.65, 3.75]"), r"\[detector\] read_noise_e",
     "above high"),
    (('exptime_keyword = "EXPTIME"', 'exptime_keyword = "EXPTIME"\nbunit = "MJy/sr"'),
     r"\[reader\] bunit", "not a pixel unit"),
    (("dq_cr_bits = [4096, 8192]", "dq_cr_bits = [4096, 8192, 12]"), r"\[reader\] dq_cr_bits",
     "not a single DQ bit"),
    (("dq_ignore_bits = [1, 2,", "dq_ignore_bits = [4096, 1, 2,"), r"\[reader\] dq_ignore_bits",
     "also in dq_cr_bits"),
    (('deepcr_input_unit = "ELECTRONS"', 'deepcr_input_unit = "JANSKY"'), r"\[models\] deepcr_input_unit",
     "not a pixel unit"),
    (('name = "ACS-WFC"', "name = 7"), r"\[camera\] name", "non-empty string"),
    (('TELESCOP = "HST"\nINSTRUME = "ACS"\nDETECTOR = "WFC"', 'FILTER = "F606W"'),
     r"\[camera.match\] FILTER", "unknown field"),
    (("[models]", "[model]"), r": model: unknown field", "known: camera, detector, models"),
]


@pytest.mark.parametrize("edit, field, phrase", BAD_SPECS, ids=[b[1].replace("\\", "") for b in BAD_SPECS])
def test_bad_spec_is_one_line_error_naming_the_field(tmp_path, edit, field, phrase):
    path = _write(tmp_path, _edited(*edit))
    with pytest.raises((ValueError, TypeError)) as info:
        read_spec(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert re.search(field, message), message
    assert phrase in message, message


def test_invalid_toml_is_a_spec_error(tmp_path):
    path = _write(tmp_path, "[camera\nname = 1")
    with pytest.raises(SpecError, match="not valid TOML"):
        read_spec(path)


# ---------------------------------------------------------------- header recognition


def test_synthetic_acs_header_recognised_with_primary_then_extension():
    primary = fits.Header({"TELESCOP": "HST", "INSTRUME": "ACS", "DETECTOR": "WFC"})
    assert instrument_for_header(primary).name == "ACS-WFC"
    assert instrument_for_header({"TELESCOP": "HST", "INSTRUME": "acs", "DETECTOR": "wfc"}).name == "ACS-WFC"
    # DETECTOR only in the extension header: searched after the primary
    assert instrument_for_header([fits.Header({"TELESCOP": "HST", "INSTRUME": "ACS"}),
                                  fits.Header({"DETECTOR": "WFC"})]).name == "ACS-WFC"
    # another ACS channel, or a keyword missing: no spec
    assert instrument_for_header({"TELESCOP": "HST", "INSTRUME": "ACS", "DETECTOR": "HRC"}) is None
    assert instrument_for_header({"INSTRUME": "ACS", "DETECTOR": "WFC"}) is None
    assert instrument_for_header(fits.Header()) is None


def test_synthetic_wfc3_and_decam_headers_recognised():
    assert set(list_instruments()) >= {"ACS-WFC", "WFC3-UVIS", "DECam"}
    wfc3 = instrument_for_header({"TELESCOP": "HST", "INSTRUME": "WFC3", "DETECTOR": "UVIS"})
    assert wfc3.name == "WFC3-UVIS" and wfc3.detector.ccd_shape_px == (2051, 4096)
    assert instrument_for_header({"TELESCOP": "HST", "INSTRUME": "WFC3", "DETECTOR": "IR"}) is None
    # DECam Community Pipeline primary header (DECaPS data model of the _ooi_ files)
    decam = instrument_for_header(fits.Header({"TELESCOP": "CTIO 4.0-m telescope", "INSTRUME": "DECam"}))
    assert decam.name == "DECam"
    assert decam.reader.bunit == "ADU" and decam.models.deepcr == "decam"
    assert decam.models.deepcr_input_unit == "ADU"  # deepCR model zoo, DECam Note 2
    assert decam.reader.is_science("S29") and decam.reader.is_science("n4")
    assert not decam.reader.is_science("PRIMARY") and not decam.reader.is_science("SCI")
    assert not decam.reader.is_science("FN1") and not decam.reader.is_science("GS2")  # focus, guide
    assert decam.detector.dark_e_per_s == pytest.approx(2.0 / 3600)  # "2 electron / h"
    assert decam.detector.ccd_thickness_um == (250.0, 250.0)  # one value -> (v, v)


def test_real_headers_of_cameras_without_spec():
    """gmos.fits (Gemini GMOS-S, astroscrappy) and a8280271.fits (SAAO 1.0 m, ccdproc): no spec."""
    astroscrappy = pytest.importorskip("astroscrappy")
    ccdproc = pytest.importorskip("ccdproc")
    gmos = Path(astroscrappy.__file__).parent / "tests" / "data" / "gmos.fits"
    saao = Path(ccdproc.__file__).parent / "tests" / "data" / "a8280271.fits"
    for path in (gmos, saao):
        if not path.exists():
            pytest.skip(f"{path.name} not shipped with this distribution")
        with fits.open(path) as hdul:
            headers = [h.header for h in hdul]
        assert instrument_for_header(headers) is None, path.name


def test_ambiguous_match_is_an_error(tmp_path):
    a = _write(tmp_path, _edited('name = "ACS-WFC"', 'name = "A"'), "a.toml")
    b = _write(tmp_path, _edited('name = "ACS-WFC"', 'name = "B"'), "b.toml")
    header = {"TELESCOP": "HST", "INSTRUME": "ACS", "DETECTOR": "WFC"}
    with pytest.raises(ValueError, match="'A' and 'B' equally"):
        instrument_for_header(header, candidates=[a, b])
    # the more specific spec wins over one that constrains fewer keywords
    c = _write(tmp_path, _edited('TELESCOP = "HST"\n', "", _edited('name = "ACS-WFC"', 'name = "C"')), "c.toml")
    assert instrument_for_header(header, candidates=[c, a]).name == "A"


def test_deepcr_facade_reports_the_unit_its_model_takes():
    """The facade reads the unit from the spec of the camera deepCR's model was made for."""
    pytest.importorskip("deepCR")
    from cosmiq_pyro.deepcr.model import deepCR

    assert deepCR(mask="decam").input_unit == "ADU"  # deepCR model zoo, DECam Note 2
    assert deepCR(mask="ACS-WFC").input_unit == "ELECTRONS"
    assert deepCR(mask="example_model").input_unit is None  # no camera's model


def _uncited_values(name: str, in_table) -> list[str]:
    """``"[table] key"`` of every value of the tables ``in_table(header)`` accepts, in the
    shipped spec ``name``, with no comment on its line nor on the comment lines right above it."""
    missing, table, above = [], None, []
    for line in spec_path(name).read_text().splitlines():
        text = line.strip()
        if text.startswith("["):
            table, above = text, []
            continue
        if text.startswith("#"):
            above.append(text)
            continue
        if table is not None and in_table(table) and "=" in text:
            key, value = (part.strip() for part in text.split("=", 1))
            if "#" not in value and not above:
                missing.append(f"{table} {key}")
        above = [] if text else above
    return missing


def test_every_detector_number_cites_its_source():
    """In each shipped spec, every [detector] value carries a comment (on its line, or on the
    comment lines right above it) naming where it comes from."""
    for name in list_instruments():
        missing = _uncited_values(name, lambda table: table == "[detector]")
        assert not missing, f"{name}.toml: no source comment for {missing}"


def test_every_simulation_number_cites_its_source():
    """In each shipped spec, every value of the [simulation] tables carries a comment (on its
    line, or on the comment lines right above it) naming its source or saying "assumed"."""
    for name in list_instruments():
        missing = _uncited_values(name, lambda table: table.startswith("[simulation"))
        assert not missing, f"{name}.toml: no source comment for {missing}"
