"""`cosmicray_cosmiq`: astropy CCDData in, CCDData out, like ccdproc's cosmicray_lacosmic."""
import copy
import hashlib
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.nddata import CCDData

from cosmiq_pyro import UNet2SigmoidVI, cosmicray_cosmiq, fit_svi, load, predict, predict_many, save

H, W = 40, 44


@pytest.fixture(scope="module")
def vi_model(tmp_path_factory):
    torch.manual_seed(0)
    image = np.random.default_rng(1).normal(100, 10, (4, 16, 16)).astype(np.float32)
    vi = fit_svi(UNet2SigmoidVI(hidden=4), (image, image > 115, None), epochs=1, batch_size=2,
                 init_scale=0.05, progress=False)
    return save(tmp_path_factory.mktemp("models") / "vi.pth", vi)


def electrons(seed=0):
    image = np.random.default_rng(seed).normal(120.0, 9.0, (H, W))
    image[12, 6:14] += 2500.0  # a CR streak
    image[30:33, 20] += 1800.0
    return image


def test_adu_with_gain_gives_the_mask_of_the_frame_in_electrons(vi_model):
    gain = 2.0  # e-/ADU; a power of two, so ADU x gain is exactly the electron frame
    e = CCDData(electrons().astype(np.float32), unit="electron")
    adu = CCDData((electrons() / gain).astype(np.float32), unit="adu")
    kilo = CCDData((electrons() / 1000).astype(np.float32), unit=1000 * u.electron)  # a scaled unit
    ref = cosmicray_cosmiq(e, model=vi_model, T=4, seed=2, threshold=0.3)
    other = cosmicray_cosmiq(adu, model=vi_model, T=4, seed=2, threshold=0.3, gain=gain * u.electron / u.adu)
    scaled = cosmicray_cosmiq(kilo, model=vi_model, T=4, seed=2, threshold=0.3)
    assert 0 < ref.mask.sum() < ref.mask.size
    np.testing.assert_array_equal(other.mask, ref.mask)
    np.testing.assert_array_equal(scaled.mask, ref.mask)
    # and they are what predict gives on the electrons
    prob = predict(load(vi_model), e.data, T=4, seed=2).prob
    np.testing.assert_array_equal(ref.mask, prob > 0.3)
    np.testing.assert_array_equal(ref.cr_prediction.prob, prob)
    assert other.unit == u.adu and np.array_equal(other.data, adu.data)  # pixels returned as given


def test_mask_merged_input_untouched_and_provenance_in_meta(vi_model):
    bad = np.zeros((H, W), bool)
    bad[0, :] = True  # a bad row already masked
    ccd = CCDData(electrons().astype(np.float32), unit="electron", mask=bad.copy(), meta={"OBJECT": "test"})
    before = copy.deepcopy(ccd)
    out = cosmicray_cosmiq(ccd, model=vi_model, T=3)
    assert np.array_equal(ccd.data, before.data) and np.array_equal(ccd.mask, before.mask)
    assert dict(ccd.meta) == dict(before.meta) and not hasattr(ccd, "cr_prediction")
    crs = (out.cr_prediction.prob > 0.5) & ~bad  # a masked pixel is no cosmic ray (issue 25, item 5)
    np.testing.assert_array_equal(out.mask, bad | crs)
    maps = out.cr_prediction
    assert maps.prob.shape == maps.entropy.shape == maps.epistemic.shape == (H, W) and maps.T == 3
    np.testing.assert_allclose(maps.entropy, maps.aleatoric + maps.epistemic, atol=1e-6)
    sha = hashlib.sha256(Path(vi_model).read_bytes()).hexdigest()
    assert out.meta["OBJECT"] == "test" and out.meta["CQMSHA"] == sha and out.meta["CQT"] == 3
    assert out.meta["CQNCRPIX"] == int(crs.sum()) and out.meta["CQKIND"] == "UNet2SigmoidVI"


def test_same_mask_as_the_batch_product(vi_model, tmp_path):
    data = electrons(3).astype(np.float32)
    sci = fits.ImageHDU(data, name="SCI")
    sci.header["BUNIT"] = "ELECTRONS"
    fits.HDUList([fits.PrimaryHDU(), sci]).writeto(tmp_path / "f.fits")
    table = predict_many(tmp_path / "f.fits", model=vi_model, outdir=tmp_path / "out", T=3, seed=5)
    assert table.loc[0, "status"] == "done"
    ccd = CCDData.read(tmp_path / "f.fits", hdu="SCI", unit="electron")
    out = cosmicray_cosmiq(ccd, model=vi_model, T=3, seed=5)
    np.testing.assert_array_equal(out.mask, fits.getdata(tmp_path / "out" / "f_cosmiq.fits", "MASK").astype(bool))
    assert table.loc[0, "cr_pixels"] == out.meta["CQNCRPIX"]


def test_real_raw_frame_in_adu_with_the_default_model():
    from cosmiq_pyro.app.automodel import candidate_models
    ccdproc = pytest.importorskip("ccdproc")
    path = Path(ccdproc.__file__).parent / "tests" / "data" / "a8280271.fits"
    if not path.exists():
        pytest.skip("ccdproc's test frame a8280271.fits is not installed")
    raw = CCDData.read(path, unit="adu")  # SAAO 1.0 m, uint16 with BZERO, GAIN 1.9
    gain = 2.0 * u.electron / u.adu  # a power of two: ADU x gain is exact
    in_adu = cosmicray_cosmiq(raw, gain=gain, T=2)
    in_e = cosmicray_cosmiq(CCDData(raw.data.astype(np.float32) * 2, unit="electron"), T=2)
    np.testing.assert_array_equal(in_adu.mask, in_e.mask)
    assert in_adu.mask.any() and in_adu.meta["CQT"] == 2 and in_adu.meta["CQKIND"] == "UNet2SigmoidVI"
    # no spec matches the SAAO camera: "auto" took the least novel shipped model, and says so
    assert in_adu.meta["CQMREQ"] == "auto" and in_adu.meta["CQMNAME"] in candidate_models()
    assert in_adu.meta["CQMODEL"] == f"{in_adu.meta['CQMNAME']}.pth"
    assert in_adu.meta["CQMWHY"].startswith(f"lowest novelty of {len(candidate_models())} model")


@pytest.mark.parametrize("ccd, gain, error, fragment", [
    (np.zeros((8, 8)), None, TypeError, "must be an astropy.nddata.CCDData"),
    (CCDData(np.zeros((2, 8, 8)), unit="electron"), None, ValueError, "2-D"),
    (CCDData(np.zeros((8, 8)), unit="adu"), None, ValueError, "pass gain="),
    (CCDData(np.zeros((8, 8)), unit="adu"), 1.9, TypeError, "Quantity in electron / adu"),
    (CCDData(np.zeros((8, 8)), unit="adu"), 1.9 * u.electron, ValueError, "electron / adu"),
    (CCDData(np.zeros((8, 8)), unit="adu"), -1.0 * u.electron / u.adu, ValueError, "positive"),
    (CCDData(np.zeros((8, 8)), unit="electron"), 1.9 * u.electron / u.adu, ValueError, "applied twice"),
    (CCDData(np.zeros((8, 8)), unit="electron / s"), None, ValueError, "unit electron / s"),
])
def test_bad_input_is_a_clear_error(vi_model, ccd, gain, error, fragment):
    with pytest.raises(error, match=fragment):
        cosmicray_cosmiq(ccd, model=vi_model, gain=gain)
