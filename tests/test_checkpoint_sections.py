"""What travels inside a checkpoint besides the weights (its sections: the novelty model first),
the shipped ACS-WFC-VI file with its novelty model inside, and the version-1 files still read."""
import hashlib
import json
import math
import shutil

import numpy as np
import pytest
import torch
from astropy.io import fits

import cosmiq_pyro as cq
from cosmiq_pyro import UNet2Sigmoid, load, save
from cosmiq_pyro.io.checkpoint import VERSION, read_payload, update_sections
from cosmiq_pyro.models.registry import PUBLISHED_DIR
from cosmiq_pyro.models.results import FitResult

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SHIPPED = PUBLISHED_DIR / "ACS-WFC-VI.pth"


def _novelty_state(threshold=1.5):
    """A small but complete NoveltyModel state (2 features, one class)."""
    return {"version": 1, "mean": torch.zeros(1, 2, dtype=torch.float64),
            "whiten": torch.eye(2, dtype=torch.float64)[None], "classes": ["all"],
            "noise_block": [0.0, 1.0], "noise_frame": [0.0, 1.0],
            "frame_ref": {"features": [0.0, 1.0], "noise": [0.0, 1.0]},
            "block_ref": {"features": [0.0, 1.0], "noise": [0.0, 1.0]},
            "threshold": threshold, "block_px": 64, "read_noise_e": 4.7}


def _weights_sha256(payload):
    """The digest ACS-WFC-VI.json records: net_state then guide_state, keys sorted, each key
    then its tensor's raw bytes."""
    h = hashlib.sha256()
    for part in ("net_state", "guide_state"):
        for key in sorted(payload[part]):
            h.update(f"{part}/{key}".encode())
            h.update(payload[part][key].contiguous().numpy().tobytes())
    return h.hexdigest()


def test_shipped_checkpoint_holds_its_novelty_model_and_the_trained_weights_bit_for_bit():
    assert SHIPPED.stat().st_size <= 2_000_000
    payload = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    assert payload["version"] == VERSION and "novelty" not in payload
    novelty = payload["sections"]["novelty"]
    assert math.isfinite(novelty["threshold"]) and novelty["mean"].shape[1] == 2 * 32  # 2h bottleneck features
    meta = json.loads((PUBLISHED_DIR / "ACS-WFC-VI.json").read_text())
    assert _weights_sha256(payload) == meta["weights_sha256"]  # the weights the recipe trained
    # one file per checkpoint: nothing beside it any more
    assert not (PUBLISHED_DIR / "ACS-WFC-VI.novelty.pt").exists()


def _gmos_electrons():
    pytest.importorskip("astroscrappy")
    pytest.importorskip("ccdproc")
    from cosmiq_pyro.evaluation.shifts import real_ground_frames
    try:
        return real_ground_frames()["gmos"]
    except FileNotFoundError as err:
        pytest.skip(str(err))


def test_a_copy_loaded_by_path_flags_gmos_as_the_name_does(tmp_path, capsys):
    from cosmiq_pyro.app.cli import main
    gmos = _gmos_electrons()
    copy = tmp_path / "elsewhere" / "my_model.pth"
    copy.parent.mkdir()
    shutil.copy(SHIPPED, copy)
    by_name, by_path = load("ACS-WFC-VI"), load(copy)
    assert by_path.novelty["threshold"] == by_name.novelty["threshold"]
    a, b = (cq.predict(r, gmos, T=2, seed=1) for r in (by_name, by_path))
    assert a.is_novel and b.is_novel and a.novelty == b.novelty > 1.0
    source = tmp_path / "gmos.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(gmos, name="SCI", header=fits.Header({"BUNIT": "ELECTRONS"}))]
                 ).writeto(source)
    assert main(["predict", str(source), "--model", str(copy), "-o", str(tmp_path / "out"), "-T", "2"]) == 0
    assert "is unlike the model's training frames" in capsys.readouterr().err
    with fits.open(tmp_path / "out" / "gmos_cosmiq.fits") as hdul:
        assert "NOVELTY" in [h.name for h in hdul]
        assert hdul["PROB"].header["CQISNOV"] is True


def test_cosmicray_cosmiq_warns_on_a_novel_frame_and_records_it_in_meta():
    from astropy.nddata import CCDData
    gmos = _gmos_electrons()
    with pytest.warns(UserWarning, match="unlike the training frames of ACS-WFC-VI "):
        out = cq.cosmicray_cosmiq(CCDData(gmos, unit="electron"), model="ACS-WFC-VI", T=2)
    assert out.meta["CQISNOV"] is True and out.meta["CQNOVEL"] == out.cr_prediction.novelty > 1.0


def test_frames_smaller_than_a_novelty_block_say_so():
    from astropy.nddata import CCDData
    shipped = load("ACS-WFC-VI")
    image = np.random.default_rng(0).normal(200.0, 15.0, (64, 100)).astype(np.float32)
    assert cq.predict(shipped, image, T=1).novelty is not None  # one whole block: scored
    with pytest.warns(UserWarning, match=r"40x100 px is smaller than one novelty block \(64x64 px\)"):
        pred = cq.predict(shipped, image[:40], T=1)
    assert pred.novelty is None and pred.is_novel is None and pred.novelty_map is None
    with pytest.warns(UserWarning, match="smaller than one novelty block"):
        out = cq.cosmicray_cosmiq(CCDData(image[:, :63], unit="electron"), model="ACS-WFC-VI", T=1)
    assert "CQNOVEL" not in out.meta and "CQISNOV" not in out.meta
    with pytest.raises(ValueError, match="smaller than one novelty block"):
        cq.inference.novelty.image_novelty(shipped, image[:40])


def test_a_non_finite_novelty_threshold_is_refused(tmp_path):
    net = UNet2Sigmoid(hidden=2)
    for bad in (float("nan"), float("inf"), None, "1.2", True):
        with pytest.raises(ValueError, match="novelty threshold must be a finite number"):
            save(tmp_path / "m.pth", FitResult(model=net, novelty=_novelty_state(bad)))
        assert not (tmp_path / "m.pth").exists()  # refused before writing
    path = save(tmp_path / "m.pth", FitResult(model=net, novelty=_novelty_state()))
    payload = torch.load(path, weights_only=True)
    payload["sections"]["novelty"]["threshold"] = float("nan")  # a file edited or written by another tool
    torch.save(payload, tmp_path / "nan.pth")
    with pytest.raises(ValueError, match=r"nan\.pth.*novelty threshold must be a finite number, got nan"):
        load(tmp_path / "nan.pth")
    payload["sections"]["novelty"]["threshold"] = 1.5
    payload["sections"]["novelty"]["mean"][0, 0] = float("inf")
    torch.save(payload, tmp_path / "inf.pth")
    with pytest.raises(ValueError, match=r"section 'novelty'\['mean'\] holds 1 non-finite"):
        load(tmp_path / "inf.pth")


def test_version_1_files_still_load_with_their_novelty_model(tmp_path):
    """Version 1 kept the novelty model at the top level; it is read as the novelty section."""
    net = UNet2Sigmoid(hidden=2)
    payload = torch.load(save(tmp_path / "v2.pth", FitResult(model=net, novelty=_novelty_state(2.5))),
                         weights_only=True)
    v1 = {k: v for k, v in payload.items() if k != "sections"} | {"version": 1, "novelty": _novelty_state(2.5)}
    torch.save(v1, tmp_path / "v1.pth")
    old = load(tmp_path / "v1.pth")
    assert old.novelty["threshold"] == 2.5 and old.sections == {}
    v1["novelty"]["threshold"] = float("inf")
    torch.save(v1, tmp_path / "v1_bad.pth")
    with pytest.raises(ValueError, match="novelty threshold must be a finite number, got inf"):
        load(tmp_path / "v1_bad.pth")
    v1.pop("novelty")
    torch.save(v1, tmp_path / "v1_none.pth")
    assert load(tmp_path / "v1_none.pth").novelty is None
    torch.save(payload | {"version": VERSION + 1}, tmp_path / "future.pth")
    with pytest.raises(ValueError, match=f"checkpoint version {VERSION + 1}; this cosmiq_pyro reads <= {VERSION}"):
        load(tmp_path / "future.pth")


def test_other_sections_round_trip_and_update_keeps_the_weights(tmp_path):
    """Notes or a calibration constant ride along as a section, untouched by this package (the
    model card has its own attribute, `FitResult.card`: test_adapt.py); `update_sections` adds one
    without touching a weight."""
    net = UNet2Sigmoid(hidden=2)
    card = {"name": "mine", "trained_on": ["a", "b"], "scores": torch.arange(3.0), "note": None}
    path = save(tmp_path / "m.pth", FitResult(model=net, sections={"notes": card}, history={"x": 1}))
    back = load(path)
    assert back.novelty is None and list(back.sections) == ["notes"]
    assert back.sections["notes"]["trained_on"] == ["a", "b"] and torch.equal(back.sections["notes"]["scores"],
                                                                            card["scores"])
    again = save(tmp_path / "again.pth", back)  # a loaded model written again keeps its sections
    assert load(again).sections["notes"]["name"] == "mine"
    before = torch.load(path, weights_only=True)
    update_sections(path, {"novelty": _novelty_state(), "variance_scale": 1.25})
    after = read_payload(path)
    assert set(after["sections"]) == {"notes", "novelty", "variance_scale"} and after["history"] == {"x": 1}
    assert _weights_sha256(after | {"guide_state": {}}) == _weights_sha256(before | {"guide_state": {}})
    update_sections(path, {"notes": None})
    assert set(read_payload(path)["sections"]) == {"novelty", "variance_scale"}
    # a value weights_only loading would refuse is a TypeError before anything is written
    with pytest.raises(TypeError, match=r"section 'notes'\['when'\] is a datetime"):
        import datetime
        save(tmp_path / "bad.pth", FitResult(model=net, sections={"notes": {"when": datetime.datetime.now()}}))
    assert not (tmp_path / "bad.pth").exists()
