"""The simulator driven by an instrument spec: WFC3/UVIS and DECam frames validated against their
sources the way tests/test_simulate.py validates ACS/WFC frames (noise, CR counts and pixel
fractions against exposure time, PSF FWHM, sky), the spec plumbing (names, paths, meta,
previews, the CR-rate multiplier) and bad input.

The handbook and paper figures are restated here rather than read from the specs, so that a
wrong number in a spec makes these tests fail.
"""
import math

import numpy as np
import pytest
from scipy import ndimage

from cosmiq_pyro.data import simulate as sim
from cosmiq_pyro.data.simulate.optics import _render, psf_key
from cosmiq_pyro.data.simulate.scenes import _Scene

# ---- WFC3/UVIS: WFC3 Instrument Handbook Table 5.1 / Sec. 6.10.2, MultiDrizzle Handbook 6.6,
# STScI AB zeropoints (as tabulated in hst123) ----
WFC3_GAIN = 1.55  # e-/DN
WFC3_READ_NOISE = (3.1, 3.2)
WFC3_FULL_WELL = (63_000, 72_000)
WFC3_SCALE = 0.040  # "/px
WFC3_CR_RATE = 1.7 / (800 * 15e-4) ** 2  # "comparable to ACS" (WF/PC-1: 1.7 events/s per 800^2 CCD)
WFC3_PSF_FWHM_PX = (1.6, 2.3)  # MultiDrizzle Handbook 6.6: UVIS PSF FWHM 1.6-2.3 px
# sky: ACS-IDT rates (low..high zodiacal light) scaled by the WFC3/ACS zeropoint ratio and pixel area
ACS_SKY = {"F435W": (0.0108, 0.0360), "F606W": (0.0510, 0.1701), "F814W": (0.0453, 0.1511)}
ACS_ZP = {"F435W": 25.673, "F606W": 26.486, "F814W": 25.937}
WFC3_ZP = {"F438W": ("F435W", 24.856), "F606W": ("F606W", 26.103), "F814W": ("F814W", 25.139)}

# ---- DECam: Flaugher et al. 2015, NOIRLab characteristics, DES DR1, DES SV, PDG ----
DECAM_GAIN = 4.0
DECAM_READ_NOISE = (6.0, 9.0)
DECAM_SCALE = 0.263
DECAM_THICKNESS_UM = 250.0
DECAM_SEEING = {"g": 1.12, "r": 0.96, "i": 0.88, "z": 0.84, "Y": 0.90}  # DR1 median FWHM, arcsec
DECAM_RATE_AB20 = {"g": 590, "r": 588, "i": 566, "z": 446, "Y": 159}  # e-/s for AB = 20 (SV-ZP)
DECAM_SKY_MU = {"g": 21.7, "r": 20.7, "i": 20.1, "z": 18.7, "Y": 18.0}  # moonless (PreCam)
MUONS_SEA_LEVEL = 1.0 / 60.0  # PDG: ~1 muon cm^-2 min^-1 through a horizontal detector
ALTITUDE_FACTOR = 1.5  # CTIO, from Engel et al. 2001 (docs/simulation.md)
WORM_SHARE = 0.2
PITCH_CM = 15e-4


def decam(**kw):
    kw.setdefault("size", 128)
    kw.setdefault("instrument", "DECam")
    return sim.simulate_frame(**kw)


def wfc3(**kw):
    kw.setdefault("size", 128)
    kw.setdefault("instrument", "WFC3-UVIS")
    return sim.simulate_frame(**kw)


def residual_z(f):
    var = f.noiseless.astype(float) + f.cr_image + f.meta["read_noise_e"] ** 2
    return ((f.image - f.noiseless.astype(float) - f.cr_image) / np.sqrt(var))[~f.ignore]


# --------------------------------------------------------------------------- noise and detector


@pytest.mark.parametrize("make, field, filter, exptime_s, seed", [
    (wfc3, "EX", "F606W", 150.0, 1),  # read-noise dominated
    (wfc3, "GC", "F814W", 900.0, 2),
    (decam, "EX", "g", 60.0, 3),
    (decam, "GAL", "z", 400.0, 4),
])
def test_residuals_are_poisson_plus_read_noise(make, field, filter, exptime_s, seed):
    f = make(field=field, filter=filter, exptime_s=exptime_s, seed=seed, cr_rate_multiplier=20.0)
    z = residual_z(f)
    assert z.size > 0.9 * f.image.size
    assert abs(z.std() - 1.0) < 0.05 and abs(z.mean()) < 0.05


def test_wfc3_detector_numbers():
    f = wfc3(field="EX", filter="F606W", exptime_s=500.0, seed=7)
    assert f.meta["instrument"] == "WFC3-UVIS" and f.meta["gain_e_per_adu"] == WFC3_GAIN
    np.testing.assert_allclose(np.mod(f.image / WFC3_GAIN + 1e-3, 1.0), 1e-3, atol=2e-3)  # ADC steps
    assert WFC3_READ_NOISE[0] <= f.meta["read_noise_e"] <= WFC3_READ_NOISE[1]
    assert WFC3_FULL_WELL[0] <= f.meta["full_well_e"] <= WFC3_FULL_WELL[1]
    assert f.meta["label_rule"] == "drizcr"  # AstroDrizzle makes WFC3/UVIS CR masks
    assert "cte_trails" not in f.meta["defects"]


def test_decam_detector_numbers():
    f = decam(field="EX", filter="r", exptime_s=90.0, seed=7)
    assert f.meta["instrument"] == "DECam" and f.meta["gain_e_per_adu"] == DECAM_GAIN
    np.testing.assert_array_equal(np.mod(f.image, DECAM_GAIN), 0.0)
    assert DECAM_READ_NOISE[0] <= f.meta["read_noise_e"] <= DECAM_READ_NOISE[1]
    assert f.meta["ccd_thickness_um"] == DECAM_THICKNESS_UM
    assert f.meta["label_rule"] == "sigma"


@pytest.mark.slow
def test_sky_levels_follow_their_sources():
    for name, (acs, zp) in WFC3_ZP.items():
        ratio = 10 ** (0.4 * (zp - ACS_ZP[acs])) * (WFC3_SCALE / 0.05) ** 2
        lo, hi = (ratio * s for s in ACS_SKY[acs])
        rates = [wfc3(size=16, filter=name, exptime_s=700.0, seed=s).sky_e / 700.0 for s in range(6)]
        assert all(lo * 0.999 <= r <= hi * 1.001 for r in rates)
    for band, mu in DECAM_SKY_MU.items():
        zp = 20.0 + 2.5 * math.log10(DECAM_RATE_AB20[band])
        per_px = lambda m: 10 ** (-0.4 * (m - zp)) * DECAM_SCALE**2  # noqa: E731
        lo, hi = per_px(mu + 0.3), per_px(mu - 0.7)  # darker than moonless .. grey moon
        rates = [decam(size=16, filter=band, exptime_s=90.0, seed=s).sky_e / 90.0 for s in range(6)]
        assert all(lo * 0.999 <= r <= hi * 1.001 for r in rates)
        # the image's median is the sky (EX fields are mostly empty on 16 px)
        f = decam(size=64, filter=band, exptime_s=90.0, seed=11)
        assert np.median(f.image) == pytest.approx(f.sky_e, rel=0.03)


# --------------------------------------------------------------------------- PSF


def _star_fwhm_px(inst_name, band, fwhm=None, beta=None, offset=(0.25, -0.25)):
    """FWHM (px) of one bright star rendered by the simulator's point-source path, measured
    by GalSim's half-maximum radius about the star's position, and the star's flux."""
    import galsim

    inst = sim.resolve_instrument(inst_name)
    key = psf_key(inst, inst.simulation.filter(band), fwhm, beta)
    scene = _Scene(shape=(96, 96), pad=0, size=96, pixel_scale_arcsec=inst.detector.pixel_scale_arcsec)
    x, y = 48 + offset[0], 48 + offset[1]
    scene.add_stars([[x, y]], [1e6])
    image = _render(scene, key)
    centre = galsim.PositionD(x + 1, y + 1)  # GalSim images start at (1, 1)
    return galsim.Image(image, scale=1.0).calculateFWHM(center=centre), image.sum()


@pytest.mark.parametrize("band", ["g", "r", "z"])
def test_decam_star_fwhm_is_the_frames_seeing(band):
    f = decam(size=32, filter=band, seed=5)
    fwhm_arcsec, beta = f.meta["seeing_fwhm_arcsec"], f.meta["moffat_beta"]
    measured, flux = _star_fwhm_px("DECam", band, fwhm_arcsec, beta)
    assert measured == pytest.approx(fwhm_arcsec / DECAM_SCALE, rel=0.08)
    assert flux == pytest.approx(1e6, rel=0.03)  # the Moffat wings beyond the stamp are small


@pytest.mark.slow
def test_decam_seeing_distribution_matches_des_dr1():
    for band, median in DECAM_SEEING.items():
        seeing = [decam(size=16, filter=band, seed=s).meta["seeing_fwhm_arcsec"] for s in range(40)]
        assert np.median(seeing) == pytest.approx(median, rel=0.08)
        assert min(seeing) >= 0.7 and max(seeing) <= 1.7
        assert np.std(np.log(seeing)) > 0.05  # the seeing varies from frame to frame


@pytest.mark.parametrize("band", ["F438W", "F606W", "F814W"])
def test_wfc3_star_fwhm_within_the_handbook_range(band):
    measured, _ = _star_fwhm_px("WFC3-UVIS", band)
    assert WFC3_PSF_FWHM_PX[0] * 0.9 <= measured <= WFC3_PSF_FWHM_PX[1] * 1.1


@pytest.mark.slow
def test_wfc3_psf_is_broader_in_pixels_than_acs_at_the_same_filter():
    """The same HST optics on 0.040" pixels instead of 0.05": the optical core is 1.25x more
    pixels across, charge diffusion (0.56 px at 432 nm on both) is not, so the FWHM in pixels
    grows by less than 1.25."""
    w, _ = _star_fwhm_px("WFC3-UVIS", "F814W")
    a, _ = _star_fwhm_px("ACS-WFC", "F814W")
    assert 1.03 < w / a < 1.25


# --------------------------------------------------------------------------- cosmic rays


def expected_decam_crs(size, exptime_s, multiplier):
    area = (size * PITCH_CM) ** 2
    return MUONS_SEA_LEVEL * ALTITUDE_FACTOR / (1 - WORM_SHARE) * area * exptime_s * multiplier


@pytest.mark.slow
def test_decam_cr_count_is_muon_rate_times_area_times_time():
    for exptime_s in (60.0, 600.0):
        counts = [decam(field="EX", filter="r", exptime_s=exptime_s, seed=s, cr_rate_multiplier=40.0,
                        size=128).meta["n_crs"] for s in range(8)]
        mean = 8 * expected_decam_crs(128, exptime_s, 40.0)
        assert abs(sum(counts) - mean) < 4 * math.sqrt(mean) + 1


@pytest.mark.slow
def test_decam_real_rate_is_a_few_tenths_per_frame_minute():
    per_minute = expected_decam_crs(256, 60.0, 1.0)
    assert 0.1 < per_minute < 0.6  # issue 21: "a few tenths per 256x256 frame per minute"
    assert sim.expected_cr_count(256, 60.0, "DECam") == pytest.approx(per_minute, rel=1e-6)
    counts = [decam(size=256, field="EX", exptime_s=600.0, seed=s).meta["n_crs"] for s in range(10)]
    assert abs(sum(counts) - 100 * per_minute) < 4 * math.sqrt(100 * per_minute) + 1


@pytest.mark.slow
def test_decam_muon_tracks_follow_thickness_and_cos2_zenith():
    """Straight tracks: projected length L = (d / pitch) tan(theta) with cos(theta) = U^(1/4)
    (cos^2 intensity through a horizontal CCD): median at cos(theta) = 0.5^(1/4), 10.7 px,
    and P(L > 40 px) = cos(atan(40 / 16.7))^4 = 2.2 %; measured as the diagonal of each CR
    footprint's bounding box (charge > 200 e-) away from the edges, without defects."""
    lengths = []
    for s in range(6):
        f = decam(size=256, field="EX", exptime_s=300.0, seed=60 + s, cr_rate_multiplier=30.0, defects=())
        lab, n = ndimage.label(f.cr_image > 200.0, structure=np.ones((3, 3)))
        for box in ndimage.find_objects(lab):
            h, w = box[0].stop - box[0].start, box[1].stop - box[1].start
            if box[0].start > 0 and box[1].start > 0 and box[0].stop < 256 and box[1].stop < 256:
                lengths.append(math.hypot(h, w))
    lengths = np.array(lengths)
    assert len(lengths) > 150
    scale = DECAM_THICKNESS_UM / 15.0
    median = scale * math.tan(math.acos(0.5 ** 0.25))  # 10.7 px
    long_share = math.cos(math.atan(40.0 / scale)) ** 4  # P(cos(theta) < cos(theta_40)) = 2.2 %
    # tracks and worms (a fifth, 5-30 px walks) together, diffusion adding ~1 px
    assert abs(np.median(lengths) - median) < 3.0
    assert 0.3 * long_share < (lengths > 40).mean() < 2.0 * long_share


@pytest.mark.slow
@pytest.mark.parametrize("exptime_s", [120.0, 480.0])
def test_decam_cr_pixel_fraction_scales_with_exposure_time(exptime_s):
    """Fraction of pixels whose CR charge is above their noise: between N (E[L] + 1) and
    N 3 (E[L] + 3) of the track pixels, N = R A t m events (4 sigma Poisson range)."""
    mult, size = 30.0, 192
    n_mean = expected_decam_crs(size, exptime_s, mult) * 4
    n_lo, n_hi = n_mean - 4 * math.sqrt(n_mean), n_mean + 4 * math.sqrt(n_mean)
    mean_length = DECAM_THICKNESS_UM / 15.0 * math.pi / 4
    npix = 4 * size * size
    lo = n_lo * (1 - WORM_SHARE) * 0.8 * (mean_length + 1) / npix  # 0.8: tracks leaving the frame
    hi = n_hi * 3 * (mean_length + 31) / npix  # worms: up to 30 px walks
    frac = sum(decam(size=size, field="EX", exptime_s=exptime_s, seed=80 + s, cr_rate_multiplier=mult,
                     label_rule="sigma", mask_threshold_sigma=1.0).mask.sum() for s in range(4)) / npix
    assert lo < frac < hi


@pytest.mark.slow
def test_wfc3_cr_count_matches_the_acs_rate():
    counts = [wfc3(field="EX", exptime_s=1000.0, seed=s, size=128).meta["n_crs"] for s in range(6)]
    mean = 6 * WFC3_CR_RATE * (128 * PITCH_CM) ** 2 * 1000.0
    assert abs(sum(counts) - mean) < 4 * math.sqrt(mean)


@pytest.mark.slow
def test_wfc3_cr_pixel_fraction_scales_with_exposure_time():
    """As for ACS/WFC (tests/test_simulate.py): N = R A t events, each covering between L + 1
    and 3 (L + 3) pixels above 1 sigma, E[L] = (14.5 um / 15 um) pi / 2 for an isotropic flux;
    at 1000 s the fraction must also lie in the ACS handbook's 1.5-3 % (WFC3 IHB 6.10.2: CR
    fluxes comparable to ACS's)."""
    npix = 3 * 192 * 192
    mean_length = 14.5 / 15.0 * math.pi / 2
    for exptime_s in (300.0, 1000.0):
        n_mean = WFC3_CR_RATE * (192 * PITCH_CM) ** 2 * exptime_s * 3
        n_lo, n_hi = n_mean - 4 * math.sqrt(n_mean), n_mean + 4 * math.sqrt(n_mean)
        frac = sum(wfc3(size=192, field="EX", exptime_s=exptime_s, seed=30 + s, label_rule="sigma",
                        mask_threshold_sigma=1.0).mask.sum() for s in range(3)) / npix
        assert n_lo * (mean_length + 1) / npix < frac < n_hi * 3 * (mean_length + 3) / npix
    assert 0.015 < frac < 0.03


def test_multiplier_is_recorded_and_scales_the_count():
    a = decam(exptime_s=300.0, seed=3, cr_rate_multiplier=1.0)
    b = decam(exptime_s=300.0, seed=3, cr_rate_multiplier=200.0)
    assert a.meta["cr_rate_multiplier"] == 1.0 and b.meta["cr_rate_multiplier"] == 200.0
    assert b.meta["n_crs"] > 20 * max(a.meta["n_crs"], 1)
    np.testing.assert_array_equal(a.noiseless, b.noiseless)  # only the CRs change
    with pytest.raises(ValueError, match="cr_rate_multiplier"):
        decam(cr_rate_multiplier=0.0)


def test_decam_labels_are_the_k_sigma_rule_of_its_spec():
    k = sim.resolve_instrument("DECam").simulation.label_sigma
    f = decam(size=128, exptime_s=300.0, seed=9, cr_rate_multiplier=50.0)
    sigma = np.sqrt(f.noiseless.astype(float) + f.meta["read_noise_e"] ** 2)
    np.testing.assert_array_equal(f.mask, f.cr_image.astype(float) > k * sigma)
    assert f.meta["mask_threshold_sigma"] == k and f.mask.sum() > 50


# --------------------------------------------------------------------------- datasets and specs


def test_training_set_needs_its_minimum_of_cr_pixels():
    with pytest.raises(ValueError, match="min_cr_pixels"):
        sim.make_dataset(2, size=32, instrument="DECam", exptime_s=30.0, min_cr_pixels=10_000)
    data = sim.make_dataset(2, size=64, instrument="DECam", cr_rate_multiplier=50.0, seed=1)
    assert set(data.meta["instrument"]) == {"DECam"} and set(data.meta["cr_rate_multiplier"]) == {50.0}
    assert set(data.meta["filter"]) <= set("grizY")


def test_simulated_dataset_and_frame_spec_take_an_instrument():
    from cosmiq_pyro.data import SimulatedDataset

    ds = SimulatedDataset(3, size=32, instrument="DECam", cr_rate_multiplier=50.0, seed=2)
    assert set(ds.meta["instrument"]) == {"DECam"}
    image, mask, ignore = ds[1]
    f = sim.simulate_frame(size=32, instrument="DECam", cr_rate_multiplier=50.0,
                           **sim.frame_spec(1, 2, instrument="DECam"))
    np.testing.assert_array_equal(image[0].numpy(), f.image)
    lo, hi = sim.resolve_instrument("DECam").simulation.exptime_s
    assert all(lo <= t <= hi for t in ds.meta["exptime_s"])


def test_a_users_spec_file_drives_the_simulator(tmp_path):
    from cosmiq_pyro.instruments import spec_path

    text = spec_path("DECam").read_text().replace("gain_e_per_adu = 4.0", "gain_e_per_adu = 3.0")
    path = tmp_path / "my_decam.toml"
    path.write_text(text)
    f = sim.simulate_frame(size=32, instrument=path, seed=1)
    assert f.meta["gain_e_per_adu"] == 3.0
    np.testing.assert_array_equal(np.mod(f.image, 3.0), 0.0)


def test_previews_carry_the_specs_header_values():
    from cosmiq_pyro.app.previews import simulated_hdulist
    from cosmiq_pyro.instruments import instrument_for_header

    for name in ("ACS-WFC", "WFC3-UVIS", "DECam"):
        f = sim.simulate_frame(size=16, instrument=name, seed=1)
        hdul = simulated_hdulist(f.image, f.mask, f.ignore, f.meta)
        assert instrument_for_header(hdul[0].header).name == name
    assert hdul[0].header["SEEING"] == f.meta["seeing_fwhm_arcsec"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(instrument="NoSuchCamera"), "NoSuchCamera"),
    (dict(instrument="DECam", filter="F606W"), "filter"),
    (dict(instrument="DECam", defects=("cte_trails",)), "defects"),
    (dict(instrument=3.5), "instrument"),
])
def test_bad_instrument_arguments_are_one_line_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match) as err:
        sim.simulate_frame(size=16, **kwargs)
    assert "\n" not in str(err.value)


def test_a_spec_without_simulation_cannot_be_simulated(tmp_path):
    from cosmiq_pyro.instruments import spec_path

    text = spec_path("DECam").read_text()
    path = tmp_path / "bare.toml"
    path.write_text(text[:text.index("# ---------------------------------------------------------------- simulation")])
    with pytest.raises(ValueError, match=r"\[simulation\]"):
        sim.simulate_frame(size=16, instrument=path)


def test_cli_simulate_instrument(tmp_path, capsys):
    import pandas as pd
    from astropy.io import fits

    from cosmiq_pyro.app.cli import main

    # a training set too small for the spec's minimum count of CR pixels: refused, nothing written
    assert main(["simulate", str(tmp_path / "small"), "--instrument", "DECam", "--n", "2", "--size", "32",
                 "--cr-rate-multiplier", "training"]) == 2
    assert "min_cr_pixels" in capsys.readouterr().err and not (tmp_path / "small").exists()
    out = tmp_path / "decam"
    assert main(["simulate", str(out), "--instrument", "DECam", "--n", "2", "--size", "192",
                 "--cr-rate-multiplier", "training", "--previews", "1", "--exptime", "600"]) == 0
    meta = pd.read_csv(out / "meta.csv")
    assert set(meta["instrument"]) == {"DECam"} and set(meta["cr_rate_multiplier"]) == {50.0}
    preview = next(out.glob("*.fits"))
    assert fits.getheader(preview)["INSTRUME"].upper() == "DECAM"
    assert main(["simulate", str(tmp_path / "x"), "--instrument", "Nope", "--n", "1"]) == 2
    assert "Nope" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("old, new, field", [
    ('moffat_beta = [2.5, 4.765]', 'moffat_beta = [0.8, 4.765]', r"\[simulation.psf\] moffat_beta"),
    ('model = "moffat"', 'model = "airy"', r"\[simulation.psf\] model"),
    ('reference_filter = "r"', 'reference_filter = "g"', "reference_filter"),
    ('worm_fraction = 0.2 ', 'worm_fraction = 1.0 ', "spot_fraction"),
    ('rate_per_cm2_s = 0.03125', 'rate_per_cm2_s = "0.03125 m"', "rate_per_cm2_s"),
    ('label_rule = "sigma"', 'label_rule = "median"', "label_rule"),
    ('cr_rate_multiplier = 50.0', 'cr_rate_multiplier = -50.0', "cr_rate_multiplier"),
])
def test_bad_simulation_sections_are_one_line_errors_naming_the_field(tmp_path, old, new, field):
    from cosmiq_pyro.instruments import get_instrument, spec_path

    text = spec_path("DECam").read_text()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises((ValueError, TypeError), match=field) as err:
        get_instrument(path)
    assert "\n" not in str(err.value)


def test_simulation_sections_round_trip():
    from cosmiq_pyro.instruments import Instrument, get_instrument

    for name in ("ACS-WFC", "WFC3-UVIS", "DECam"):
        inst = get_instrument(name)
        again = Instrument.from_dict(inst.to_dict())
        assert again.simulation == inst.simulation


@pytest.mark.parametrize("make, band", [(decam, "r"), (wfc3, "F606W")])
def test_star_positions_are_where_the_light_peaks(make, band):
    """``star_xy`` / ``star_e`` list the frame's point sources: as many as ``meta["n_stars"]``,
    and the few brightest peak (noiseless image) at their rounded positions."""
    f = make(size=64, field="GC", filter=band, seed=1, defects=())
    assert f.star_xy.shape == (f.meta["n_stars"], 2) and f.star_e.shape == (f.meta["n_stars"],)
    assert f.meta["n_stars"] > 20 and np.all(f.star_e > 0)
    assert np.all((f.star_xy >= -0.5) & (f.star_xy < 63.5))
    checked = 0
    for k in np.argsort(f.star_e)[::-1][:2]:
        x, y = f.star_xy[k]
        r, c = int(round(y)), int(round(x))
        if 2 <= r < 62 and 2 <= c < 62:
            box = f.noiseless[r - 2:r + 3, c - 2:c + 3]
            assert np.unravel_index(np.argmax(box), box.shape) == (2, 2)
            checked += 1
    assert checked
