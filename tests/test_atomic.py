"""Atomic writes: complete or absent, the old file kept on failure, ordinary permissions."""
import os

import pytest

from cosmiq_pyro.atomic import atomic_open, write_bytes_atomic


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
