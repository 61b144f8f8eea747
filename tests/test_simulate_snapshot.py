"""ACS/WFC frames stay the same when the simulator's constants move into the ACS-WFC spec.

The expected values below were computed by the simulator of commit eebcf90 (before the
instrument specs), run from a checkout of that commit on the 2-core x86_64 development machine
(2026-12-07, numpy 2.4.6, scipy 1.17.1, GalSim 2.8.5): per frame, the float64 sums of the image,
its square, the CR charge and the noiseless scene, the sky level, the pixel counts of the label
and ignore masks and the event counts in ``meta``.  They are a regression guard of that move,
independent of the new code.  (An earlier version compared SHA-256 digests of the raw bytes; they
differ in the last bit between x86 machines with the same library versions -- FFT and GalSim
kernels pick CPU-specific code paths -- so a digest made on one machine failed on another.  On
the machine above, the arrays of eebcf90 and of the spec-driven simulator are bit-identical.)
Sums compare to a relative 1e-6, counts exactly; other library versions skip the test.
"""
import numpy as np
import pytest

from cosmiq_pyro.data import simulate as sim

VERSIONS = {"numpy": "2.4.6", "scipy": "1.17.1", "galsim": "2.8.5"}
COUNTS = ("n_cr_px", "n_crs", "n_stars", "n_galaxies", "n_hot_flagged", "n_bad_column_px", "n_cte_trail_px")

FRAMES = [
    dict(field="EX", filter="F435W", exptime_s=120.0, seed=1, size=64),
    dict(field="EX", filter="F606W", exptime_s=700.0, seed=2, size=64),
    dict(field="EX", filter="F814W", exptime_s=1100.0, seed=3, size=64),
    dict(field="GC", filter="F435W", exptime_s=300.0, seed=4, size=64),
    dict(field="GC", filter="F606W", exptime_s=900.0, seed=5, size=64),
    dict(field="GC", filter="F814W", exptime_s=1200.0, seed=6, size=96),
    dict(field="GAL", filter="F435W", exptime_s=500.0, seed=7, size=64),
    dict(field="GAL", filter="F606W", exptime_s=250.0, seed=8, size=64),
    dict(field="GAL", filter="F814W", exptime_s=1000.0, seed=9, size=64),
    dict(field="mixed", filter="F606W", exptime_s=400.0, seed=10, size=48),
    dict(field="EX", filter="F606W", exptime_s=600.0, seed=11, size=48, label_rule="sigma",
         mask_threshold_sigma=2.0),
    dict(field="GC", filter="F435W", exptime_s=800.0, seed=12, size=48, defects=()),
    dict(field="GAL", filter="F814W", exptime_s=150.0, seed=13, size=48,
         defects=("hot_pixels", "cte_trails")),
]

# fingerprint of each frame above, by eebcf90's simulator
EXPECTED = [
    {"image_sum": 25042.0, "cr_image_sum": 676.3847545557646, "noiseless_sum": 24754.6418466568, "image_sumsq": 389004.0, "mask_px": 4, "ignore_px": 2, "sky_e": 4.0610060282259655, "n_cr_px": 4, "n_crs": 1, "n_stars": 0, "n_galaxies": 1, "n_hot_flagged": 2, "n_bad_column_px": 0, "n_cte_trail_px": 2},
    {"image_sum": 225912.0, "cr_image_sum": 11541.9527774423, "noiseless_sum": 214072.31134796143, "image_sumsq": 20157880.0, "mask_px": 46, "ignore_px": 9, "sky_e": 39.879764334290364, "n_cr_px": 46, "n_crs": 7, "n_stars": 0, "n_galaxies": 1, "n_hot_flagged": 9, "n_bad_column_px": 0, "n_cte_trail_px": 0},
    {"image_sum": 3051946.0, "cr_image_sum": 10204.687191176099, "noiseless_sum": 3039460.5395355225, "image_sumsq": 139856854804.0, "mask_px": 26, "ignore_px": 94, "sky_e": 100.47509457290295, "n_cr_px": 26, "n_crs": 7, "n_stars": 1, "n_galaxies": 1, "n_hot_flagged": 4, "n_bad_column_px": 64, "n_cte_trail_px": 0},
    {"image_sum": 84454.0, "cr_image_sum": 7299.132042624566, "noiseless_sum": 76779.18325614929, "image_sumsq": 6889964.0, "mask_px": 25, "ignore_px": 16, "sky_e": 3.571185823862559, "n_cr_px": 25, "n_crs": 3, "n_stars": 138, "n_galaxies": 0, "n_hot_flagged": 16, "n_bad_column_px": 0, "n_cte_trail_px": 4},
    {"image_sum": 4832958.0, "cr_image_sum": 6415.405752427329, "noiseless_sum": 4827180.488082886, "image_sumsq": 125236236580.0, "mask_px": 8, "ignore_px": 34, "sky_e": 64.76272945538086, "n_cr_px": 8, "n_crs": 4, "n_stars": 338, "n_galaxies": 0, "n_hot_flagged": 14, "n_bad_column_px": 0, "n_cte_trail_px": 569},
    {"image_sum": 21293924.0, "cr_image_sum": 56067.76160468298, "noiseless_sum": 21247777.03904724, "image_sumsq": 856208093440.0, "mask_px": 70, "ignore_px": 184, "sky_e": 85.34999915799875, "n_cr_px": 70, "n_crs": 33, "n_stars": 605, "n_galaxies": 0, "n_hot_flagged": 40, "n_bad_column_px": 0, "n_cte_trail_px": 475},
    {"image_sum": 661744.0, "cr_image_sum": 20647.013797786665, "noiseless_sum": 640257.3654403687, "image_sumsq": 286483888.0, "mask_px": 14, "ignore_px": 43, "sky_e": 7.0819003708971335, "n_cr_px": 14, "n_crs": 2, "n_stars": 120, "n_galaxies": 2, "n_hot_flagged": 43, "n_bad_column_px": 0, "n_cte_trail_px": 14},
    {"image_sum": 343058.0, "cr_image_sum": 4003.2542595203504, "noiseless_sum": 338605.46103286743, "image_sumsq": 36436604.0, "mask_px": 17, "ignore_px": 30, "sky_e": 32.963024420208896, "n_cr_px": 17, "n_crs": 3, "n_stars": 51, "n_galaxies": 1, "n_hot_flagged": 30, "n_bad_column_px": 0, "n_cte_trail_px": 38},
    {"image_sum": 4809676.0, "cr_image_sum": 12544.461612833189, "noiseless_sum": 4797452.645477295, "image_sumsq": 11481694184.0, "mask_px": 20, "ignore_px": 57, "sky_e": 115.57869911701223, "n_cr_px": 20, "n_crs": 11, "n_stars": 40, "n_galaxies": 1, "n_hot_flagged": 4, "n_bad_column_px": 53, "n_cte_trail_px": 0},
    {"image_sum": 3794552.0, "cr_image_sum": 4462.064409447408, "noiseless_sum": 3790317.2568359375, "image_sumsq": 6855769544.0, "mask_px": 8, "ignore_px": 9, "sky_e": 37.83517683797716, "n_cr_px": 8, "n_crs": 2, "n_stars": 12, "n_galaxies": 1, "n_hot_flagged": 9, "n_bad_column_px": 0, "n_cte_trail_px": 0},
    {"image_sum": 105542.0, "cr_image_sum": 1655.5320990584294, "noiseless_sum": 103798.85004043579, "image_sumsq": 38080948.0, "mask_px": 10, "ignore_px": 26, "sky_e": 31.675948349118382, "n_cr_px": 10, "n_crs": 2, "n_stars": 0, "n_galaxies": 0, "n_hot_flagged": 26, "n_bad_column_px": 0, "n_cte_trail_px": 2},
    {"image_sum": 351056.0, "cr_image_sum": 4254.88540357304, "noiseless_sum": 346561.3908996582, "image_sumsq": 2400521672.0, "mask_px": 31, "ignore_px": 0, "sky_e": 10.721644674553996, "n_cr_px": 31, "n_crs": 3, "n_stars": 190, "n_galaxies": 0, "n_hot_flagged": 0, "n_bad_column_px": 0, "n_cte_trail_px": 0},
    {"image_sum": 62326.0, "cr_image_sum": 0.0, "noiseless_sum": 62274.99045753479, "image_sumsq": 2522092.0, "mask_px": 0, "ignore_px": 9, "sky_e": 9.310422229510001, "n_cr_px": 0, "n_crs": 0, "n_stars": 13, "n_galaxies": 1, "n_hot_flagged": 9, "n_bad_column_px": 0, "n_cte_trail_px": 24}
]
DATASET_EXPECTED = {"image_sum": 2379506.0, "sky_sum": 128.14713668823242, "mask_px": 41, "ignore_px": 18}  # make_dataset(3, size=32, seed=5)


def _sums(obj, names):
    return {f"{n}_sum": float(np.asarray(getattr(obj, n), dtype=np.float64).sum()) for n in names}


def fingerprint(frame) -> dict:
    found = _sums(frame, ("image", "cr_image", "noiseless"))
    found["image_sumsq"] = float((np.asarray(frame.image, dtype=np.float64) ** 2).sum())
    found["mask_px"] = int(np.asarray(frame.mask).sum())
    found["ignore_px"] = int(np.asarray(frame.ignore).sum())
    found["sky_e"] = float(frame.sky_e)
    found.update({k: int(frame.meta[k]) for k in COUNTS if k in frame.meta})
    return found


def _assert_matches(found: dict, expected: dict):
    assert found.keys() == expected.keys()
    for key, want in expected.items():
        if isinstance(want, int):
            assert found[key] == want, key
        else:
            assert found[key] == pytest.approx(want, rel=1e-6, abs=1e-9), key


@pytest.fixture(scope="module")
def same_libraries():
    import galsim
    import scipy

    found = {"numpy": np.__version__, "scipy": scipy.__version__, "galsim": galsim.__version__}
    if found != VERSIONS:
        pytest.skip(f"expected values were made with {VERSIONS}; this environment has {found}")


@pytest.mark.parametrize("i", range(len(FRAMES)))
def test_acs_frames_match_the_pre_spec_simulator(same_libraries, i):
    _assert_matches(fingerprint(sim.simulate_frame(**FRAMES[i])), EXPECTED[i])


def test_acs_dataset_matches_the_pre_spec_simulator(same_libraries):
    data = sim.make_dataset(3, size=32, seed=5)
    found = _sums(data, ("image", "sky")) | {"mask_px": int(np.asarray(data.mask).sum()),
                                            "ignore_px": int(np.asarray(data.ignore).sum())}
    _assert_matches(found, DATASET_EXPECTED)
