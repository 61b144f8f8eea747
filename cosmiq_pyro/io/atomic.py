"""Atomic file writes: a file is complete or absent, never half-written."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _default_mode() -> int:
    """0o666 less the process umask: what ``open()`` would have given the file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_open(path, mode: str = "wb"):
    """Open a temporary file beside ``path``; on success flush, fsync and rename it to ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _default_mode())  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb") as fh:
        fh.write(payload)
    return Path(path)


@contextmanager
def staged_directory(outdir, *, overwrite: bool):
    """Fill a staging directory, then move its files into ``outdir`` on success.

    Yields a new, empty directory beside ``outdir`` (same file system, so the final moves are
    renames).  When the ``with`` block ends without an exception, every file in it is moved to
    the same relative path under ``outdir`` (created if needed); on any exception nothing reaches
    ``outdir``.  The staging directory is removed either way.

    Raises
    ------
    NotADirectoryError
        ``outdir`` exists and is not a directory.
    FileExistsError
        ``outdir`` holds files and ``overwrite`` is False (with ``overwrite`` its other files are
        left alone and same-named ones replaced).
    """
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise NotADirectoryError(f"{str(outdir)!r} exists and is not a directory")
    if outdir.is_dir() and any(outdir.iterdir()) and not overwrite:
        raise FileExistsError(f"{str(outdir)!r} is not empty; pass overwrite=True (--overwrite on the "
                              "command line) to write into it")
    parent = outdir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", suffix=".tmp", dir=parent))
    try:
        yield staging
        outdir.mkdir(exist_ok=True)
        for source in sorted(staging.rglob("*")):
            target = outdir / source.relative_to(staging)
            if source.is_dir():
                target.mkdir(exist_ok=True)
            else:
                os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
