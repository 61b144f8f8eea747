"""Products you can trust: the provenance keyword table, input identity, damaged products, names."""
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from cosmiq_pyro import load, predict, predict_many
from cosmiq_pyro.app import products
from cosmiq_pyro.app.cli import main
from cosmiq_pyro.app.productcheck import product_damage
from cosmiq_pyro.io.digest import file_sha256
from cosmiq_pyro.app.provenance import KEYWORDS, REUSE, Provenance

H, W = 36, 32


def frame(path, seed=0, streak_row=5):
    """A one-chip file in electrons (SCI + DQ) with a CR streak on ``streak_row``."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 8.0, (H, W)).astype(np.float32)
    image[streak_row, 4:11] += 3000.0
    sci = fits.ImageHDU(image, name="SCI", ver=1)
    sci.header["BUNIT"] = "ELECTRONS"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([fits.PrimaryHDU(), sci, fits.ImageHDU(np.zeros((H, W), np.int16), name="DQ", ver=1)]
                 ).writeto(path, overwrite=True)
    return Path(path)


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, [line for line in err.splitlines() if line.strip()]


# ---------------------------------------------------------------- the keyword table


def test_keyword_table_and_provenance_agree():
    names = [row.keyword for row in KEYWORDS]
    assert len(names) == len(set(names)) and all(len(k) <= 8 and k == k.upper() for k in names)
    assert all(row.reuse in REUSE and row.where in ("all", "primary", "maps") and row.meaning for row in KEYWORDS)
    recorded = [row.records.split(".", 1)[1] for row in KEYWORDS if row.records.startswith("Provenance.")]
    assert sorted(recorded) == sorted(f.name for f in dataclasses.fields(Provenance))  # one row per field
    settings = {row.records.split(".", 1)[1] for row in KEYWORDS if row.reuse == "setting"}
    assert set(Provenance.RUN_FIELDS) == settings and Provenance.INPUT_FIELDS == ("source_sha256",)


def test_every_keyword_of_a_product_is_in_the_table(models, tmp_path):
    source = frame(tmp_path / "f.fits")
    out = tmp_path / "f_cosmiq.fits"
    products.predict_fits(load(models["vi"]), source, out, model_file=models["vi"], T=2)
    rows = {row.keyword: row for row in KEYWORDS}
    with fits.open(out) as hdul:
        for index, hdu in enumerate(hdul):
            ours = {k for k in hdu.header if k.startswith("CQ") or k in ("ORIGIN", "DATE")}
            assert ours <= set(rows), ours - set(rows)
            expected = {k for k, r in rows.items() if r.where in ("all", "primary" if index == 0 else "maps")
                        and r.records.startswith(("Provenance.", "constant"))}
            assert expected <= ours, expected - ours
        assert hdul[0].header["CQSRCSHA"] == file_sha256(source)
        assert Provenance.from_header(hdul[0].header).source_file == "f.fits"


# ---------------------------------------------------------------- item 1: the input's identity


def test_another_input_of_the_same_name_is_redone_not_skipped(models, tmp_path, capsys):
    v1, v2 = frame(tmp_path / "v1" / "frame.fits", streak_row=5), frame(tmp_path / "v2" / "frame.fits", streak_row=20)
    out = tmp_path / "p"
    product = out / "frame_cosmiq.fits"
    assert run(capsys, "predict", v1, "--model", models["det"], "-o", out)[0] == 0
    mask_v1 = fits.getdata(product, "MASK")
    status, stdout, err = run(capsys, "predict", v2, "--model", models["det"], "-o", out)
    assert status == 0 and not err
    assert f"redid {product}: input changed" in stdout and "0 done, 1 redone, 0 skipped, 0 failed" in stdout
    expected = predict(load(models["det"]), fits.getdata(v2, "SCI")).mask()  # independent: v2's own mask
    np.testing.assert_array_equal(fits.getdata(product, "MASK"), expected.astype(np.uint8))
    assert not np.array_equal(expected, mask_v1.astype(bool))  # so v1's product would have been wrong
    status, stdout, _ = run(capsys, "predict", v2, "--model", models["det"], "-o", out)
    assert status == 0 and "0 done, 0 redone, 1 skipped" in stdout
    # re-reduced in place: same name, same size, same modification time, other pixels
    stat = v2.stat()
    frame(v2, streak_row=30)
    os.utime(v2, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert v2.stat().st_size == stat.st_size
    table = predict_many(v2, model=models["det"], outdir=out)
    assert list(table["status"]) == ["redone"] and "input changed" in table.loc[0, "note"]
    expected = predict(load(models["det"]), fits.getdata(v2, "SCI")).mask()
    np.testing.assert_array_equal(fits.getdata(product, "MASK"), expected.astype(np.uint8))
    # other settings stay an error for that input (unless --overwrite), whatever the input
    frame(v2, streak_row=31)
    status, _, err = run(capsys, "predict", v2, "--model", models["det"], "-o", out, "--threshold", "0.3")
    assert status == 1 and len(err) == 1 and "CQTHRESH" in err[0] and "--overwrite" in err[0]


# ---------------------------------------------------------------- item 2: damaged products


@pytest.mark.parametrize("damage", ["truncate", "flip a data byte", "flip a header byte"])
def test_a_damaged_product_is_redone_and_says_so(models, tmp_path, capsys, damage):
    source = frame(tmp_path / "x.fits")
    out = tmp_path / "p"
    argv = ("predict", source, "--model", models["vi"], "-T", "2", "-o", out)
    assert run(capsys, *argv)[0] == 0
    product = out / "x_cosmiq.fits"
    whole = fits.getdata(product, "PROB", memmap=False)
    assert product_damage(product) == ""
    raw = bytearray(product.read_bytes())
    if damage == "truncate":
        os.truncate(product, 2880)
    else:
        with fits.open(product) as hdul:
            info = hdul.fileinfo(1)  # the first PROB extension
        at = info["datLoc"] + 5 if damage == "flip a data byte" else info["hdrLoc"] + 80 * 40 + 79
        raw[at] ^= 0x01 if damage == "flip a data byte" else 0x20  # a space in a card becomes '\0'
        product.write_bytes(bytes(raw))
    assert product_damage(product) != ""
    status, stdout, err = run(capsys, *argv)
    assert status == 0 and not err and f"redid {product}: damaged" in stdout and "1 redone" in stdout
    assert product_damage(product) == ""
    np.testing.assert_array_equal(fits.getdata(product, "PROB"), whole)


def test_every_hdu_of_a_product_carries_verified_checksums(models, tmp_path):
    out = tmp_path / "f_cosmiq.fits"
    products.predict_fits(load(models["vi"]), frame(tmp_path / "f.fits"), out, model_file=models["vi"], T=2)
    with fits.open(out, checksum=True, disable_image_compression=True) as hdul:
        for hdu in hdul:
            assert hdu.verify_checksum() == 1 and hdu.verify_datasum() == 1


# ---------------------------------------------------------------- item 3: two runs, one directory


def test_two_runs_into_one_directory_make_each_product_once(models, tmp_path, monkeypatch):
    import threading

    from cosmiq_pyro.app import batch

    source = frame(tmp_path / "f.fits")
    out = tmp_path / "p"
    real, calls = products.predict_fits, []
    started, release = threading.Event(), threading.Event()

    def slow_predict(*args, **kwargs):  # the first run holds its frame until the second one has started
        calls.append(args[1])
        started.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(batch.products, "predict_fits", slow_predict)
    tables = {}
    first = threading.Thread(target=lambda: tables.setdefault("first", predict_many(source, model=models["det"], outdir=out)))
    first.start()
    assert started.wait(30)
    second = threading.Thread(target=lambda: tables.setdefault("second", predict_many(source, model=models["det"], outdir=out)))
    second.start()
    second.join(1.0)
    assert second.is_alive()  # waiting for the product the first run is making, not making it too
    release.set()
    first.join(30)
    second.join(30)
    assert tables["first"].loc[0, "status"] == "done" and len(calls) == 1
    assert tables["second"].loc[0, "status"] == "done" and "another run" in tables["second"].loc[0, "note"]
    assert product_damage(out / "f_cosmiq.fits") == "" and sorted(p.name for p in out.iterdir()) == ["f_cosmiq.fits"]


def test_the_loser_of_the_final_rename_takes_the_same_product_as_done(models, tmp_path, monkeypatch):
    from cosmiq_pyro.app import batch

    source = frame(tmp_path / "f.fits")
    out = tmp_path / "p"
    real = products.predict_fits

    def other_run_finishes_first(model, in_path, out_path, **kwargs):  # as a run on another host would
        real(model, in_path, out_path, **kwargs)
        return real(model, in_path, out_path, **kwargs)  # ours: the rename finds the product there

    monkeypatch.setattr(batch.products, "predict_fits", other_run_finishes_first)
    table = predict_many(source, model=models["det"], outdir=out)
    assert table.loc[0, "status"] == "done" and "another run" in table.loc[0, "note"], table.loc[0, "error"]
    monkeypatch.undo()
    with_other_seed = predict_many(source, model=models["vi"], outdir=tmp_path / "q", T=2, seed=1)
    assert with_other_seed.loc[0, "status"] == "done"


@pytest.mark.slow  # two subprocesses, each importing the package: make test-slow and CI run it
def test_two_processes_into_one_directory(models, tmp_path):
    import subprocess
    import sys

    data = tmp_path / "data"
    for k in range(4):
        frame(data / f"f{k}.fits", seed=k)
    out = tmp_path / "p"
    argv = [sys.executable, "-c", "import sys; from cosmiq_pyro.app.cli import main; sys.exit(main(sys.argv[1:]))", "predict", str(data), "--model", str(models["vi"]),
            "-T", "2", "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(products.__file__).parents[2])}
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    stdout = "".join(out_text for out_text, _ in results)
    assert stdout.count("wrote ") == 4 and "failed" not in "".join(err for _, err in results)
    assert all(product_damage(out / f"f{k}_cosmiq.fits") == "" for k in range(4))


# ---------------------------------------------------------------- item 4: names that are not ASCII


def test_non_ascii_and_long_file_names_are_stored_fits_legal(models, tmp_path, capsys):
    from urllib.parse import unquote

    name = "Ωmega_frame_" + "x" * 70 + "_é.fits"
    source = frame(tmp_path / "données" / name)
    model = tmp_path / "modèle ß.pth"
    model.write_bytes(Path(models["det"]).read_bytes())
    status, stdout, err = run(capsys, "predict", source, "--model", model, "-o", tmp_path / "p")
    assert status == 0 and not err, err
    product = tmp_path / "p" / (name[:-5] + "_cosmiq.fits")
    with fits.open(product) as hdul:
        for hdu in hdul:
            assert unquote(hdu.header["CQSOURCE"]) == name and unquote(hdu.header["CQMODEL"]) == model.name
        assert hdul[0].header["CQSOURCE"].isascii()
    assert product_damage(product) == ""
    assert "1 skipped" in run(capsys, "predict", source, "--model", model, "-o", tmp_path / "p")[1]


# ---------------------------------------------------------------- item 5: ignored pixels


def flagged_frame(path, flag_streak=True):
    """A frame whose CR streak (row 5, columns 4-10) is DQ-flagged (bit 16, hot pixels), plus a NaN."""
    rng = np.random.default_rng(3)
    image = rng.normal(100.0, 8.0, (H, W)).astype(np.float32)
    image[5, 4:11] += 3000.0
    image[20, 20] = np.nan
    dq = np.zeros((H, W), np.int16)
    if flag_streak:
        dq[5, 4:11] = 16
    sci = fits.ImageHDU(image, name="SCI", ver=1)
    sci.header["BUNIT"] = "ELECTRONS"
    fits.HDUList([fits.PrimaryHDU(), sci, fits.ImageHDU(dq, name="DQ", ver=1)]).writeto(path)
    return Path(path)


def test_dq_flagged_and_nan_pixels_are_marked_and_not_counted(models, tmp_path):
    source = flagged_frame(tmp_path / "f.fits")
    model = load(models["vi"])
    flagged = predict_many(source, model=models["vi"], outdir=tmp_path / "a", T=2, threshold=0.0)
    unflagged = predict_many(source, model=models["vi"], outdir=tmp_path / "b", T=2, threshold=0.0, dq_flags=0)
    ignored = np.zeros((H, W), bool)
    ignored[5, 4:11] = ignored[20, 20] = True
    # threshold 0: every usable pixel is a CR, so the counts are the usable pixels
    assert flagged.loc[0, "cr_pixels"] == H * W - 8 and unflagged.loc[0, "cr_pixels"] == H * W - 1
    with fits.open(tmp_path / "a" / "f_cosmiq.fits") as a, fits.open(tmp_path / "b" / "f_cosmiq.fits") as b:
        for name in ("PROB", "ENTROPY", "EPISTEMIC"):
            assert np.array_equal(np.isnan(a[name].data), ignored)
            nan_only = np.zeros((H, W), bool)
            nan_only[20, 20] = True
            assert np.array_equal(np.isnan(b[name].data), nan_only)  # --dq-flags 0: the streak is read
        assert np.array_equal(a["MASK"].data == 2, ignored) and set(np.unique(a["MASK"].data)) == {1, 2}
        assert a["MASK"].header["CQIGNORE"] == 8 and b["MASK"].header["CQIGNORE"] == 1
    prediction = predict(model, np.where(np.isnan(fits.getdata(source, "SCI")), 0, fits.getdata(source, "SCI")),
                         T=2, ignore=ignored)
    assert np.array_equal(prediction.ignore, ignored) and not prediction.mask(0.0)[ignored].any()
    assert prediction.mask(0.0).sum() == H * W - 8


def test_an_all_nan_frame_is_an_error_for_that_input(models, tmp_path, capsys):
    path = tmp_path / "nan.fits"
    sci = fits.ImageHDU(np.full((H, W), np.nan, np.float32), name="SCI", ver=1)
    sci.header["BUNIT"] = "ELECTRONS"
    fits.HDUList([fits.PrimaryHDU(), sci]).writeto(path)
    good = frame(tmp_path / "good.fits")
    status, stdout, err = run(capsys, "predict", path, good, "--model", models["det"], "-o", tmp_path / "p")
    errors = [line for line in err if "error" in line]
    assert status == 1 and len(errors) == 1 and "nan.fits" in errors[0] and "nothing to predict" in errors[0], err
    assert "1 done, 0 redone, 0 skipped, 1 failed" in stdout and not (tmp_path / "p" / "nan_cosmiq.fits").exists()
    with pytest.raises(ValueError, match="nothing to predict"):
        predict(load(models["det"]), np.ones((8, 8)), ignore=np.ones((8, 8), bool))


def test_novelty_noise_statistic_leaves_ignored_pixels_out():
    from cosmiq_pyro.inference import novelty as nv

    rn = nv.READ_NOISE_REF_E
    rng = np.random.default_rng(0)
    electrons = rng.poisson(1000.0, (256, 256)) + rng.normal(0.0, rn, (256, 256))
    filled = electrons.copy()
    ignore = np.zeros(filled.shape, bool)
    ignore[:, 100:180] = True  # bad columns, filled with one value as predict fills NaN
    filled[ignore] = np.median(electrons)
    clean = nv.noise_excess(electrons, block_px=256)[0, 0]
    assert clean == pytest.approx(0.0, abs=0.05)
    assert nv.noise_excess(filled, block_px=256)[0, 0] < clean - 0.3  # the fill reads as missing noise
    assert nv.noise_excess(filled, block_px=256, ignore=ignore)[0, 0] == pytest.approx(clean, abs=0.05)


# ---------------------------------------------------------------- item 9: compact products


def test_products_are_compressed_to_their_stated_precision_and_fitsverify_accepts_them(models, tmp_path):
    import shutil
    import subprocess

    source = flagged_frame(tmp_path / ("Ωmega_" + "x" * 70 + ".fits"))
    out = tmp_path / "p_cosmiq.fits"
    model = load(models["vi"])
    products.predict_fits(model, source, out, model_file=models["vi"], T=2)
    chip = products.read_hst(source)[0]
    computed = predict(model, chip.image, T=2, ignore=chip.ignore)
    with fits.open(out) as hdul:
        assert all(isinstance(h, fits.CompImageHDU) for h in hdul[1:])
        for name, values in (("PROB", computed.prob), ("ENTROPY", computed.entropy), ("EPISTEMIC", computed.epistemic)):
            stored, prec = hdul[name].data, hdul[name].header["CQPREC"]
            assert 0 < prec <= 2e-5
            err = np.abs(stored.astype(np.float64) - values)[~chip.ignore]
            assert err.max() <= prec and err.max() > prec / 10  # quantised, not lossless
        assert hdul["MASK"].header["CQPREC"] == 0
        np.testing.assert_array_equal(hdul["MASK"].data, np.where(chip.ignore, 2, computed.prob > 0.5))
    fitsverify = shutil.which("fitsverify")
    if fitsverify is None:
        pytest.skip("fitsverify is not installed (Debian package fitsverify)")
    done = subprocess.run([fitsverify, str(out)], capture_output=True, text=True, timeout=60)
    assert "Verification found 0 warning(s) and 0 error(s)" in done.stdout, done.stdout[-2000:]


def test_maps_option_chooses_the_extensions_and_is_part_of_the_provenance(models, tmp_path, capsys):
    source = frame(tmp_path / "f.fits")
    out = tmp_path / "p"
    status, _, err = run(capsys, "predict", source, "--model", models["vi"], "-T", "2", "-o", out, "--maps", "prob")
    assert status == 0 and not err
    with fits.open(out / "f_cosmiq.fits") as hdul:
        assert [h.name for h in hdul[1:]] == ["PROB", "MASK"] and hdul[0].header["CQMAPS"] == "PROB,MASK"
    assert product_damage(out / "f_cosmiq.fits") == ""
    status, _, err = run(capsys, "predict", source, "--model", models["vi"], "-T", "2", "-o", out)
    assert status == 1 and "CQMAPS" in err[0] and "--overwrite" in err[0]
    assert run(capsys, "predict", source, "--model", models["vi"], "-o", out, "--maps", "PROB,bogus")[0] == 2


def test_the_docs_page_lists_every_keyword_of_the_table():
    page = (Path(__file__).resolve().parents[1] / "docs" / "products.md").read_text()
    assert all(f"| `{row.keyword}` | {row.records} |" in page for row in KEYWORDS)
