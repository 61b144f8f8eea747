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
