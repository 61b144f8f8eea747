"""ACS/WFC frames stay bit-identical when the simulator's constants move into the ACS-WFC spec.

The digests below were computed from the simulator on main at commit eebcf90 (before the
instrument specs), on the 2-core x86_64 development machine with numpy 2.4.6, scipy 1.17.1
and GalSim 2.8.5; they are a regression guard of that move, independent of the new code.
Each digest is the SHA-256 of every array of a frame (dtype, shape and bytes) and of the
``meta`` entries it had then (`META_KEYS`) as sorted JSON (floats by ``repr``: exact); new
entries (the instrument's name, the CR-rate multiplier) may join ``meta``.  Floating-point results of FFTs and
GalSim may differ in the last bit with other library builds, so the comparison is made only
with the library versions that made the digests (the test says so when it skips).
"""
import hashlib
import json

import numpy as np
import pytest

from cosmiq_pyro.data import simulate as sim

# the meta entries of a frame at eebcf90
META_KEYS = (
    "ccd_thickness_um", "cte_jd", "cte_readout_towards_row0", "cte_rows_to_register",
    "cte_trap_density", "defects", "exptime_s", "field", "filter", "full_well_e",
    "gain_e_per_adu", "label_rule", "mask_threshold_sigma", "n_bad_column_px", "n_bad_columns",
    "n_cr_px", "n_crs", "n_cte_trail_px", "n_galaxies", "n_hot_flagged", "n_hot_new_unflagged",
    "n_stars", "n_warm_unflagged", "read_noise_e", "seed", "sky_e",
)
VERSIONS = {"numpy": "2.4.6", "scipy": "1.17.1", "galsim": "2.8.5"}

# (kwargs of simulate_frame) -> digest, made at eebcf90
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
DIGESTS = [
    "5a7b05938d974a22c372e3ead654f399a671efe8dac05cbf8375a9479160ee08",
    "5000f975ebf61e42402c502e3ff95cd07a1f85d943ab0e4d3c4576a553b1618c",
    "1c25976d29d5d123017b96a82030acaa274e26b3eb901cebf54c578787f40c10",
    "505753d7b9ef29ee25568cb0937c7e220d44d073622500d3ab0374146ab68250",
    "466b774f566007d98726069db3321d317ee710c6edfe3e4300fdd5363be4bb70",
    "832261df95ace3efe8f1222b1bbe7b77c468c2288512b2e55247b1fb9e3fdd24",
    "6aba7cb0cafec969346a0acc64339315f0e615afa7dd6973a1af11650d2224a1",
    "16b1ee877057f4b8fcdf5cbab19bb0d459560f89ad4326666b3f6d5be145c6e8",
    "29afcd7c83089593a464af2121cce3823fa9ae84487e56e910d8a300ae457ed0",
    "96c59b05eff8afe6d7928eac2e01174ad555e78a9ea7c7fe732945b915c221f9",
    "af7a3ee7f276bd75b991cee2d50964603f414eff46b6218332dd94188e55ff72",
    "51ec2a8c48271f14f78085a6aab170192dfff7bab83391f6ea7fad7a1bfa2159",
    "014dc3a0b2e3ba016776bf434e55ccea804d2b00f3cb97f2df810ede911c6762",
]
DATASET_DIGEST = "0defc3365997173e9532111767079df6229bdd14324b3286ec540465a6f6c9f0"  # make_dataset(3, size=32, seed=5)


def _update(h, array):
    array = np.ascontiguousarray(array)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.tobytes())


def _meta_json(meta):
    def plain(v):
        if isinstance(v, np.generic):
            return v.item()
        return v
    return json.dumps({k: plain(meta[k]) for k in META_KEYS}, sort_keys=True,
                      default=repr).encode()


def frame_digest(frame):
    h = hashlib.sha256()
    for name in ("image", "mask", "ignore", "cr_image", "noiseless"):
        _update(h, getattr(frame, name))
    h.update(repr(float(frame.sky_e)).encode())
    h.update(_meta_json(frame.meta))
    return h.hexdigest()


def dataset_digest(data):
    h = hashlib.sha256()
    for name in ("image", "mask", "ignore", "sky"):
        _update(h, getattr(data, name))
    h.update(data.meta[["index", *META_KEYS]].to_json(orient="records", double_precision=15).encode())
    return h.hexdigest()


def _versions_match():
    import galsim
    import scipy

    found = {"numpy": np.__version__, "scipy": scipy.__version__, "galsim": galsim.__version__}
    return found == VERSIONS, found


@pytest.fixture(scope="module")
def same_libraries():
    ok, found = _versions_match()
    if not ok:
        pytest.skip(f"digests were made with {VERSIONS}; this environment has {found}")


@pytest.mark.parametrize("i", range(len(FRAMES)))
def test_acs_frames_are_bit_identical_to_the_snapshot(same_libraries, i):
    assert frame_digest(sim.simulate_frame(**FRAMES[i])) == DIGESTS[i]


def test_acs_dataset_is_bit_identical_to_the_snapshot(same_libraries):
    assert dataset_digest(sim.make_dataset(3, size=32, seed=5)) == DATASET_DIGEST
