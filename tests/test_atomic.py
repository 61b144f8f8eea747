"""Atomic writes: complete or absent, the old file kept on failure, ordinary permissions."""
import os

import pytest

from cosmiq_pyro.io.atomic import atomic_open, staged_directory, write_bytes_atomic


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "table.csv"
    with pytest.raises(TypeError):
        write_bytes_atomic(target, "not bytes")
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_bytes_atomic(target, None)
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
    write_bytes_atomic(target, b"new")
    umask = os.umask(0)
    os.umask(umask)
    assert target.read_bytes() == b"new"
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~umask  # as open() would create it, not 0600


def test_exception_inside_the_block_discards_the_partial_file(tmp_path):
    target = tmp_path / "x.bin"
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_staged_directory_moves_on_success_and_cleans_up_on_failure(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("theirs")
    (out / "report.md").write_text("old")
    with staged_directory(out, overwrite=True) as stage:
        (stage / "report.md").write_text("new")
        (stage / "sub").mkdir()
        (stage / "sub" / "a.png").write_bytes(b"png")
    assert (out / "report.md").read_text() == "new" and (out / "keep.txt").read_text() == "theirs"
    assert (out / "sub" / "a.png").read_bytes() == b"png"
    with pytest.raises(RuntimeError):
        with staged_directory(out, overwrite=True) as stage:
            (stage / "report.md").write_text("half")
            raise RuntimeError("interrupted")
    assert (out / "report.md").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging directory left
    with pytest.raises(FileExistsError, match="not empty"):
        with staged_directory(out, overwrite=False):
            pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        with staged_directory(tmp_path / "file", overwrite=True):
            pass


def _dead_pid():
    """The id of a process that has exited (reaped)."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.parametrize("writer", ["bytes", "fits"])
def test_stale_temporaries_of_killed_writers_are_removed(tmp_path, writer):
    from astropy.io import fits
    from cosmiq_pyro.io.atomic import _host
    from cosmiq_pyro.io.fitswrite import write_hdulist_atomic

    target = tmp_path / "out.fits"
    stale = tmp_path / f".out.fits.{_host()}-{_dead_pid()}.0123456789ab.tmp"
    live = tmp_path / f".out.fits.{_host()}-{os.getpid()}.0123456789ab.tmp"  # a writer still running
    foreign = [tmp_path / f".out.fits.otherhost-{_dead_pid()}.0123456789ab.tmp",  # another machine
               tmp_path / ".out.fits.0123456789ab.tmp",  # not our naming
               tmp_path / f".other.fits.{_host()}-{_dead_pid()}.0123456789ab.tmp"]  # another target
    for p in [stale, live, *foreign]:
        p.write_bytes(b"x" * 100)
    if writer == "bytes":
        write_bytes_atomic(target, b"new")
    else:
        write_hdulist_atomic(fits.PrimaryHDU(), target)
    assert not stale.exists()
    assert live.exists() and all(p.exists() for p in foreign)


def test_stale_staging_directory_is_removed(tmp_path):
    from cosmiq_pyro.io.atomic import _host

    stale = tmp_path / f".out.{_host()}-{_dead_pid()}.0123456789ab.tmp"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "big.npy").write_bytes(b"x" * 100)
    with staged_directory(tmp_path / "out", overwrite=False) as stage:
        (stage / "a.txt").write_text("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_file_and_directory_are_fsynced(tmp_path, monkeypatch):
    import stat
    from astropy.io import fits
    from cosmiq_pyro.io.fitswrite import write_hdulist_atomic

    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_hdulist_atomic(fits.PrimaryHDU(), tmp_path / "a.fits")
    assert synced == ["file", "dir"]
    synced.clear()
    write_bytes_atomic(tmp_path / "b.bin", b"b")
    assert synced == ["file", "dir"]


def test_unwritable_destination_found_before_work(tmp_path, monkeypatch):
    from cosmiq_pyro.io.atomic import check_writable_directory

    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="file"):
        check_writable_directory(tmp_path / "file" / "out")
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a non-root user on a read-only dir
    with pytest.raises(PermissionError, match="not writable"):
        check_writable_directory(tmp_path / "new" / "deeper")
    with pytest.raises(PermissionError, match="not writable"):
        with staged_directory(tmp_path / "out", overwrite=False):
            raise AssertionError("the block must not run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_failure_leaves_no_parent_directories_it_created(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_directory(tmp_path / "a" / "b" / "out", overwrite=False) as stage:
            (stage / "x.txt").write_text("x")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with staged_directory(tmp_path / "a" / "b" / "out", overwrite=False) as stage:
        (stage / "x.txt").write_text("x")
    assert (tmp_path / "a" / "b" / "out" / "x.txt").read_text() == "x"
