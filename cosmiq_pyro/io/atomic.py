"""Atomic file writes: a file is complete or absent, never half-written.

Every temporary file or staging directory is named ``.<name>.<host>-<pid>.<hex>.tmp`` beside its
target.  A process killed while writing (SIGKILL, power loss) cannot remove its temporary, so
the next write to the same target removes those of its name whose process is gone
(`remove_stale_temporaries`): same host, process id no longer running.  Temporaries of live
processes, of other hosts (a shared file system) and files of any other naming are never touched.

Concurrency: `file_lock` is an advisory per-file lock (``flock`` on ``.<name>.lock`` beside the
target, removed on release), so two processes that would make the same file can take turns
instead of both making it; the kernel releases it when a process dies.

Durability: the temporary file is flushed and ``fsync``-ed before it is renamed, and the
directory is ``fsync``-ed after the rename, so after a crash the target is either the old file
or the complete new one.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_open", "write_bytes_atomic", "staged_directory", "temporary_path",
           "remove_stale_temporaries", "fsync_directory", "check_writable_directory", "file_lock",
           "naming_output"]


def _host() -> str:
    """This host's name, reduced to characters safe in a file name."""
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:32] or "host"


def temporary_path(path) -> Path:
    """A fresh temporary name beside ``path``: ``.<name>.<host>-<pid>.<hex>.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{_host()}-{os.getpid()}.{secrets.token_hex(6)}.tmp")


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def remove_stale_temporaries(path) -> list[Path]:
    """Remove temporaries of ``path`` left by dead processes of this host; returns those removed.

    Only names matching ``.<name>.<host>-<pid>.<12 hex>.tmp`` (what `temporary_path` makes) with
    this host's name and a process id that is not running are removed (files or staging
    directories); a name that does not match exactly is never touched.
    """
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.{re.escape(_host())}-(\d+)\.[0-9a-f]{{12}}\.tmp$")
    removed = []
    try:
        candidates = list(path.parent.iterdir())
    except OSError:  # missing or unreadable directory: nothing of ours to clean
        return removed
    for candidate in candidates:
        match = pattern.match(candidate.name)
        if not match or _pid_running(int(match.group(1))):
            continue
        try:
            if candidate.is_dir() and not candidate.is_symlink():
                shutil.rmtree(candidate)
            else:
                candidate.unlink()
        except OSError:
            continue
        removed.append(candidate)
    return removed


def fsync_directory(directory) -> None:
    """``fsync`` a directory so a rename inside it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def check_writable_directory(directory, what: str = "output directory") -> None:
    """Raise PermissionError / NotADirectoryError unless files can be created in ``directory``.

    A directory that does not exist yet is judged by its nearest existing parent (where it
    would be created).  Meant to be called before a long computation, so a read-only
    destination is found at once rather than at the end.
    """
    directory = Path(directory)
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise NotADirectoryError(f"{what} {str(directory)!r}: {str(probe)!r} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {str(directory)!r} is not writable "
                              f"({str(probe)!r} does not allow creating files)")


def naming_output(err: OSError, path) -> OSError:
    """``err`` as an OSError naming the output ``path`` (its errno and message kept).

    A full disk (ENOSPC), a quota or an I/O error while writing is reported by the writer as
    ``[Errno 28] No space left on device`` without a file name; this one reads
    ``<path>: No space left on device``.  An error that names its file already is returned as is.
    """
    if err.filename is not None:
        return err
    chain, cause = [], err
    while isinstance(cause, OSError) and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    number = next((e.errno for e in chain if e.errno is not None), None)
    if number is not None:
        message = os.strerror(number)
    else:  # astropy's "Not enough space on disk: requested N, available M. <the same for each HDU>..."
        message = (str(err) or type(err).__name__).split(". ")[0]
    return OSError(number, message, str(path))


def _default_mode() -> int:
    """0o666 less the process umask: what ``open()`` would have given the file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_open(path, mode: str = "wb"):
    """Open a temporary file beside ``path``; on success flush, fsync and rename it to ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was.  Stale
    temporaries of ``path`` from killed processes are removed first.
    """
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = temporary_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _default_mode())
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_directory(path.parent)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise naming_output(err, path) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
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
    ``outdir`` and parent directories created for it are removed again.  The staging directory
    is removed either way; staging directories of ``outdir`` left by killed processes are
    removed first.

    Raises
    ------
    NotADirectoryError
        ``outdir`` exists and is not a directory.
    FileExistsError
        ``outdir`` holds files and ``overwrite`` is False (with ``overwrite`` its other files are
        left alone and same-named ones replaced).
    PermissionError
        The directory that would hold ``outdir`` does not allow creating files.
    """
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise NotADirectoryError(f"{str(outdir)!r} exists and is not a directory")
    if outdir.is_dir() and any(outdir.iterdir()) and not overwrite:
        raise FileExistsError(f"{str(outdir)!r} is not empty; pass overwrite=True (--overwrite on the "
                              "command line) to write into it")
    resolved = outdir.resolve()
    check_writable_directory(resolved.parent, "parent of the output directory")
    if outdir.is_dir():
        check_writable_directory(outdir)
    created = [d for d in (resolved.parent, *resolved.parent.parents) if not d.exists()]  # deepest first
    resolved.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(resolved)
    staging = temporary_path(resolved)
    staging.mkdir()
    done = False
    try:
        yield staging
        outdir.mkdir(exist_ok=True)
        for source in sorted(staging.rglob("*")):
            target = outdir / source.relative_to(staging)
            if source.is_dir():
                target.mkdir(exist_ok=True)
            else:
                os.replace(source, target)
        fsync_directory(outdir)
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done:  # no empty parent directories left behind by a failure
            for folder in created:
                try:
                    folder.rmdir()
                except OSError:
                    break


@contextmanager
def file_lock(path, *, blocking: bool = True):
    """Hold an exclusive advisory lock on ``path`` (which need not exist) while the block runs.

    The lock is ``fcntl.flock`` on ``.<name>.lock`` beside ``path``; the lock file is removed on
    release (while still locked; a process that locked the removed file sees that its inode is no
    longer the one at that name and locks again), so no lock file is left behind.  The kernel
    drops the lock of a process that dies.

    Yields
    ------
    bool
        True when the lock is held; False when ``blocking`` is False and another process (or
        another open file in this one) holds it.  Where no lock can be taken (no ``fcntl``, a
        directory that does not allow creating the lock file, a file system without ``flock``)
        the block runs without it and True is yielded: the lock only saves duplicate work, it
        never decides correctness.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield True
        return
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    mode = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            yield True
            return
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        except OSError:  # no flock here
            os.close(fd)
            yield True
            return
        try:
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)  # locked a lock file its holder had removed: lock the current one
    try:
        yield True
    finally:
        try:
            os.unlink(lock)
        except OSError:
            pass
        os.close(fd)
