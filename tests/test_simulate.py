"""cosmiq_pyro.data.simulate: noise model, CR statistics against the HST handbooks, truth masks,
field types, reproducibility, argument checks and deepCR's 'pair' file layout.

Handbook figures are restated here rather than read from the module, so that a wrong
constant in the simulator makes these tests fail.
"""
import math

import numpy as np
import pytest
from scipy import ndimage

from cosmiq_pyro.data import simulate as sim

# ---- figures from the sources the simulator cites (see cosmiq_pyro/simulate/__init__.py) ----
CR_RATE_PER_CM2_S = 1.7 / (800 * 15e-4) ** 2  # WF/PC-1: 1.7 events/s per 800^2 CCD, 15 um px
PIXEL_PITCH_CM = 15e-4  # ACS IHB Table 3.1
CCD_THICKNESS_UM = (12.0, 17.0)  # ACS IHB 5.6.6
IHB_CR_FRACTION_PER_1000S = (0.015, 0.03)  # ACS IHB (Cycle 14) 4.3 / ACS ISR 2002-07
IHB_CR_MEDIAN_CHARGE_E = 1000.0  # same: "median of ~1000 electrons", cut-off ~500 e-
SKY_E_PER_S = {"F435W": (0.0108, 0.0360), "F606W": (0.0510, 0.1701),
               "F814W": (0.0453, 0.1511)}  # ACS IDT table, low..high zodiacal light
GAIN = 2.0  # ACS IHB Table 3.1, GAIN=2


def frame(**kw):
    kw.setdefault("size", 256)
    return sim.simulate_frame(**kw)


def sigma_e(f):
    """Noise of each pixel without its CR: sqrt(noiseless + read_noise^2)."""
    return np.sqrt(f.noiseless.astype(float) + f.meta["read_noise_e"] ** 2)


# --------------------------------------------------------------------------- noise


@pytest.mark.parametrize("field, filter, exptime_s, seed", [
    ("EX", "F435W", 120.0, 1),  # read-noise dominated
    ("EX", "F606W", 1000.0, 2),
    ("GC", "F814W", 1200.0, 3),  # crowded, saturated stars
    ("GAL", "F606W", 600.0, 4),  # bright extended light
])
def test_residuals_are_unit_normal(field, filter, exptime_s, seed):
    """(image - noiseless - cr) / sqrt(noiseless + cr + rn^2) has std 1 off ignored pixels:
    Poisson noise on all charge (CR charge included) plus read noise."""
    f = frame(field=field, filter=filter, exptime_s=exptime_s, seed=seed)
    rn = f.meta["read_noise_e"]
    var = f.noiseless.astype(float) + f.cr_image + rn**2
    z = ((f.image - f.noiseless.astype(float) - f.cr_image) / np.sqrt(var))[~f.ignore]
    assert z.size > 0.9 * f.image.size
    assert abs(z.std() - 1.0) < 0.05
    assert abs(z.mean()) < 0.05
    # CR pixels alone: their Poisson noise counts too
    zc = ((f.image - f.noiseless - f.cr_image) / np.sqrt(var))[f.mask & ~f.ignore]
    assert abs(zc.std() - 1.0) < 0.15


def test_detector_constants():
    f = frame(field="EX", filter="F606W", exptime_s=500.0, seed=7)
    assert f.meta["gain_e_per_adu"] == GAIN
    np.testing.assert_array_equal(np.mod(f.image, GAIN), 0.0)  # ADC steps of 2 e-
    assert 3.75 <= f.meta["read_noise_e"] <= 5.65  # IHB Table 3.1
    assert 72_000 <= f.meta["full_well_e"] <= 82_000  # IHB 4.3.1
    for filt, (lo, hi) in SKY_E_PER_S.items():
        g = frame(field="EX", filter=filt, exptime_s=800.0, seed=8, size=32)
        assert lo <= g.sky_e / 800.0 <= hi
    assert f.image.dtype == f.noiseless.dtype == f.cr_image.dtype == np.float32
    assert f.mask.dtype == f.ignore.dtype == np.bool_
    assert f.image.shape == f.mask.shape == f.ignore.shape == (256, 256)


def test_saturation_bleeds_along_columns():
    f = frame(field="GC", filter="F814W", exptime_s=1200.0, seed=3)
    full = f.meta["full_well_e"]
    rn = f.meta["read_noise_e"]
    # nothing exceeds the full well by more than read noise and an ADC step
    assert f.image.max() <= full + 6 * rn + GAIN
    saturated = f.image > full - 6 * rn
    assert saturated.sum() > 20
    assert f.ignore[saturated].all()
    # bleed trails run along columns: saturated blobs are taller than wide
    lab, n = ndimage.label(saturated)
    boxes = ndimage.find_objects(lab)
    heights = np.array([b[0].stop - b[0].start for b in boxes])
    widths = np.array([b[1].stop - b[1].start for b in boxes])
    assert (heights > widths).sum() > (heights < widths).sum()
    assert heights.max() >= 8


# --------------------------------------------------------------------------- cosmic rays


def test_cr_count_is_rate_times_area_times_time():
    side_cm = 256 * PIXEL_PITCH_CM
    expected = CR_RATE_PER_CM2_S * side_cm**2 * 1000.0  # ~174 per frame
    counts = [frame(field="EX", exptime_s=1000.0, seed=s, size=256).meta["n_crs"]
              for s in range(6)]
    total, mean = sum(counts), 6 * expected
    assert abs(total - mean) < 4 * math.sqrt(mean)  # Poisson, 4 sigma
    short = sum(frame(field="EX", exptime_s=100.0, seed=s, size=256).meta["n_crs"]
                for s in range(6))
    assert abs(short - mean / 10) < 4 * math.sqrt(mean / 10)


def test_cr_pixel_fraction_matches_handbook():
    """Expected CR-pixel fraction from rate x area x time and the track-length distribution.

    An isotropic flux through a plane has sin^2(theta) uniform, so the mean projected track
    length is E[L] = (d / pitch) E[tan theta] = (d / pitch) pi / 2.  A CR covers at least the
    L + 1 pixels its track crosses and, with at most one pixel of charge-diffusion halo on
    each side, at most 3 (L + 3).  With N = R A t CRs (4-sigma Poisson range) this brackets
    the fraction; the handbook's 1.5-3 % must lie inside, and so must what we simulate.
    Pixels "affected" are those whose CR charge is above their noise (the 1-sigma rule); the
    default driz_cr labels are stricter and cover fewer (tests/test_labels.py).
    """
    npix = 256 * 256
    n_mean = CR_RATE_PER_CM2_S * (256 * PIXEL_PITCH_CM) ** 2 * 1000.0
    n_lo, n_hi = n_mean - 4 * math.sqrt(n_mean), n_mean + 4 * math.sqrt(n_mean)
    mean_length = np.mean(CCD_THICKNESS_UM) / (PIXEL_PITCH_CM * 1e4) * math.pi / 2
    lo = n_lo * (mean_length + 1) / npix
    hi = n_hi * 3 * (mean_length + 3) / npix
    assert lo < IHB_CR_FRACTION_PER_1000S[0] < IHB_CR_FRACTION_PER_1000S[1] < hi
    fractions = [frame(field="EX", filter="F606W", exptime_s=1000.0, seed=s,
                       label_rule="sigma").mask.mean() for s in range(20, 24)]
    assert all(lo < x < hi for x in fractions)
    assert IHB_CR_FRACTION_PER_1000S[0] < np.mean(fractions) < IHB_CR_FRACTION_PER_1000S[1]


def test_cr_charge_and_footprints_match_handbook():
    """Per-CR charge: median ~1000 e-, few events under 500 e-; 3-sigma footprints peak at
    4-5 pixels (ACS IHB Cycle 14, 4.3 / ACS ISR 2002-07).  Measured on the deposit without
    CTE trails (2002 data had little CTE loss; trails would split the footprints)."""
    charges, sizes = [], []
    for s in range(8):  # short exposures: few overlapping CRs; ~430 CRs in all
        f = frame(field="EX", filter="F606W", exptime_s=300.0, seed=40 + s,
                  defects=("hot_pixels", "bad_columns"))
        lab, n = ndimage.label(f.cr_image > 0.5, structure=np.ones((3, 3)))
        charges.append(ndimage.sum(f.cr_image, lab, np.arange(1, n + 1)))
        lab3, _ = ndimage.label(f.cr_image > 3 * sigma_e(f), structure=np.ones((3, 3)))
        sizes.append(np.bincount(lab3.ravel())[1:])
    charges, sizes = np.concatenate(charges), np.concatenate(sizes)
    assert len(charges) > 120
    assert 0.75 * IHB_CR_MEDIAN_CHARGE_E < np.median(charges) < 1.35 * IHB_CR_MEDIAN_CHARGE_E
    # below the handbook's ~500 e- cut-off: mostly the single-pixel hits we add on purpose
    assert (charges < 500).mean() < 0.07
    assert (charges > 4 * IHB_CR_MEDIAN_CHARGE_E).mean() > 0.02  # Landau tail
    assert 3 <= np.bincount(sizes).argmax() <= 6
    assert sizes.max() >= 15  # a tail of long tracks


def test_landau_draws_follow_landaus_phi():
    """The simulator maps scipy.stats.landau onto Landau's phi(lambda), whose peak is at
    lambda = -0.22278; compare with phi computed here from its integral definition
    phi(lambda) = (1/pi) int_0^inf exp(-t ln t - lambda t) sin(pi t) dt."""
    from scipy import integrate, stats

    def phi(lam):
        f = lambda t: math.exp(-t * math.log(t) - lam * t) * math.sin(math.pi * t)
        return integrate.quad(f, 0, np.inf, limit=400)[0] / math.pi

    for lam in (-2.0, -0.22278, 1.0, 5.0):
        x = sim.SCIPY_LANDAU_PEAK + (lam + 0.22278) / sim.LANDAU_SCALE
        assert stats.landau.pdf(x) / sim.LANDAU_SCALE == pytest.approx(phi(lam), rel=2e-3)


def test_cr_charge_does_not_go_through_the_telescope():
    """CRs hit the detector, not the sky: the same seed gives the same CR charge whatever
    the filter (PSF) or field, so CRs stay sharp while sources are PSF-smoothed.  Without
    CTE trails: how much of a CR the read-out trails depends on the light behind it."""
    no_cte = ("hot_pixels", "bad_columns")
    a = frame(field="EX", filter="F435W", exptime_s=700.0, seed=9, defects=no_cte)
    b = frame(field="GC", filter="F814W", exptime_s=700.0, seed=9, defects=no_cte)
    np.testing.assert_array_equal(a.cr_image, b.cr_image)
    assert a.cr_image.max() > 100


@pytest.mark.parametrize("k", [1.0, 2.5])
def test_mask_is_exactly_the_thresholded_cr_charge(k):
    f = frame(field="GAL", filter="F435W", exptime_s=900.0, seed=11, label_rule="sigma",
              mask_threshold_sigma=k)
    threshold = k * sigma_e(f)
    above = f.cr_image.astype(float) > threshold
    np.testing.assert_array_equal(f.mask, above)
    assert f.mask.sum() > 500
    # there is faint CR charge below the threshold, and it is left out
    faint = (f.cr_image > 0.05) & ~above
    assert faint.sum() > 100 and not f.mask[faint].any()
    assert f.meta["mask_threshold_sigma"] == k and f.meta["label_rule"] == "sigma"
    assert f.meta["n_cr_px"] == f.mask.sum()


# --------------------------------------------------------------------------- fields


def test_gc_holds_far_more_stars_than_ex():
    for s in range(3):
        ex = frame(field="EX", filter="F606W", exptime_s=600.0, seed=s)
        gc = frame(field="GC", filter="F606W", exptime_s=600.0, seed=s)
        assert gc.meta["n_stars"] >= 1000
        assert gc.meta["n_stars"] > 50 * max(ex.meta["n_stars"], 1)
        assert ex.meta["n_galaxies"] > ex.meta["n_stars"]
        # the images agree: count bright local maxima of the noiseless sources
        peaks = []
        for f in (ex, gc):
            src = np.where(f.ignore, 0.0, f.noiseless - np.median(f.noiseless))
            peak = (src == ndimage.maximum_filter(src, size=5)) & (src > 20 * sigma_e(f))
            peaks.append(int(peak.sum()))
        assert peaks[1] > 5 * max(peaks[0], 1)


def test_gal_field_is_bright_extended_light():
    f = frame(field="GAL", filter="F606W", exptime_s=500.0, seed=5)
    above_sky = f.noiseless - f.sky_e
    assert f.meta["n_galaxies"] >= 1
    # most of the frame is covered by galaxy light well above the sky noise
    assert (above_sky > 5 * np.sqrt(f.sky_e + f.meta["read_noise_e"] ** 2)).mean() > 0.5


def test_mixed_draws_each_field_and_records_it():
    seen = {frame(field="mixed", size=32, seed=s).meta["field"] for s in range(15)}
    assert seen == set(sim.FIELDS)


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_same_frame_and_different_seeds_differ():
    a = frame(field="GC", filter="F435W", exptime_s=400.0, seed=21)
    b = frame(field="GC", filter="F435W", exptime_s=400.0, seed=21)
    c = frame(field="GC", filter="F435W", exptime_s=400.0, seed=22)
    for name in ("image", "mask", "ignore", "cr_image", "noiseless"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.meta == b.meta and a.sky_e == b.sky_e
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.mask, c.mask)
    assert not np.array_equal(a.noiseless, c.noiseless)


@pytest.mark.parametrize("kwargs, name", [
    (dict(field="XDF"), "field"),
    (dict(filter="F555W"), "filter"),
    (dict(size=15), "size"),
    (dict(size=-4), "size"),
    (dict(exptime_s=0.0), "exptime_s"),
    (dict(exptime_s=-10.0), "exptime_s"),
    (dict(exptime_s=float("nan")), "exptime_s"),
    (dict(seed=-1), "seed"),
    (dict(mask_threshold_sigma=0.0), "mask_threshold_sigma"),
    (dict(label_rule="acsrej"), "label_rule"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        sim.simulate_frame(**kwargs)


def test_bad_argument_types():
    with pytest.raises(TypeError, match="size"):
        sim.simulate_frame(size=64.5)
    with pytest.raises(TypeError, match="seed"):
        sim.simulate_frame(seed="zero")
    with pytest.raises(ValueError, match="fields"):
        sim.frame_spec(0, fields=("EX", "QSO"))
    with pytest.raises(ValueError, match="exptime_s"):
        sim.make_dataset(2, size=32, exptime_s=(500, 100))
    with pytest.raises(ValueError, match="n must"):
        sim.make_dataset(0)


# --------------------------------------------------------------------------- datasets


def test_frame_seed_and_spec():
    assert sim.frame_seed(3, 7) == sim.frame_seed(3, 7)
    assert len({sim.frame_seed(s, i) for s in range(4) for i in range(50)}) == 200
    spec = sim.frame_spec(5, 3, ("GC",), ("F814W",), (200, 800))
    assert spec == sim.frame_spec(5, 3, ("GC",), ("F814W",), (200, 800))
    assert spec["field"] == "GC" and spec["filter"] == "F814W"
    assert 200 <= spec["exptime_s"] <= 800 and spec["seed"] == sim.frame_seed(3, 5)
    assert sim.frame_spec(1, 0, exptime_s=300)["exptime_s"] == 300.0
    specs = [sim.frame_spec(i, 0) for i in range(300)]
    assert {s["field"] for s in specs} == set(sim.FIELDS)
    assert {s["filter"] for s in specs} == {"F435W", "F606W", "F814W"}
    with pytest.raises(ValueError, match="seed"):
        sim.frame_spec(0, seed=-3)


def test_make_dataset_frames_are_the_individual_frames():
    data = sim.make_dataset(3, size=48, fields=("EX", "GAL"), filters=("F606W", "F435W"),
                            exptime_s=(150, 900), seed=5)
    assert data.image.shape == data.mask.shape == data.ignore.shape == (3, 48, 48)
    assert data.image.dtype == np.float32 and data.mask.dtype == np.bool_
    assert data.sky.shape == (3,) and len(data) == 3
    assert list(data.meta["index"]) == [0, 1, 2]
    assert {"field", "filter", "exptime_s", "seed", "n_stars", "n_galaxies", "n_crs",
            "read_noise_e", "gain_e_per_adu"} <= set(data.meta.columns)
    for i in range(3):
        spec = sim.frame_spec(i, 5, ("EX", "GAL"), ("F606W", "F435W"), (150, 900))
        f = sim.simulate_frame(size=48, **spec)
        np.testing.assert_array_equal(data.image[i], f.image)
        np.testing.assert_array_equal(data.mask[i], f.mask)
        np.testing.assert_array_equal(data.ignore[i], f.ignore)
        assert data.sky[i] == np.float32(f.sky_e)
        assert data.meta.iloc[i]["seed"] == spec["seed"]


def test_write_pairs_round_trips_and_deepcr_reads_it(tmp_path):
    data = sim.make_dataset(4, size=32, seed=2)
    paths = sim.write_pairs(tmp_path / "pairs", data)
    assert len(paths) == 4
    for i, p in enumerate(paths):
        arr = np.load(p)
        assert arr.shape == (3, 32, 32) and arr.dtype == np.float32
        np.testing.assert_array_equal(arr[0], data.image[i])
        np.testing.assert_array_equal(arr[1], data.mask[i].astype(np.float32))
        np.testing.assert_array_equal(arr[2], data.ignore[i].astype(np.float32))
    sky = np.load(tmp_path / "pairs" / "sky.npy")
    np.testing.assert_array_equal(sky, data.sky)
    assert not list((tmp_path / "pairs").glob("*.tmp"))  # no temporary file left behind

    # deepCR 0.3.1's own reader for train(mode='pair') with a list of paths
    dataset = pytest.importorskip("deepCR.dataset")
    reader = dataset.PairedDatasetImagePath(paths, skyaug_min=1.0, skyaug_max=1.0)
    for i in range(4):
        image, mask, ignore = reader[i]
        # sky augmentation adds sky[i] * U(1, 1): deepCR found frame i's own sky level
        np.testing.assert_allclose(image, data.image[i] + data.sky[i], rtol=1e-6)
        np.testing.assert_array_equal(mask, data.mask[i])
        np.testing.assert_array_equal(ignore, data.ignore[i])

    with pytest.raises(TypeError, match="SimulatedSet"):
        sim.write_pairs(tmp_path, (data.image, data.mask))
