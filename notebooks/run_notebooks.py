"""Execute Jupyter notebooks top to bottom with nbclient, in place, and print their timings.

``make notebooks`` runs ``COSMIQ_NOTEBOOK_SCALE=full python notebooks/run_notebooks.py
notebooks/*.ipynb``; the test suite calls `run_notebook` with ``scale="smoke"`` on copies.

* The kernel is always this interpreter (``sys.executable`` running ``ipykernel``), whatever
  ``python3`` kernel specs are installed for the user or the system.
* ``COSMIQ_NOTEBOOK_SCALE`` (``smoke`` or ``full``) is passed to the kernel; each notebook
  sizes its data and training from it.
* Cells run with the notebook's own directory as working directory.
* ``COSMIQ_NOTEBOOK_CACHE`` names a directory the notebooks may share trained models through.
  The command line gives every run a fresh temporary one, removed at the end, so notebook 01
  trains the models and 02 and 03 of the same run reuse them, but nothing trained by an
  earlier run (or older code) is ever picked up.
* A notebook is rewritten only when every cell succeeded, through a temporary file renamed
  over it, so a failed or interrupted run leaves the previous file as it was.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from cosmiq_pyro.io.atomic import atomic_open

SCALES = ("smoke", "full")
ENV_VAR = "COSMIQ_NOTEBOOK_SCALE"
CACHE_VAR = "COSMIQ_NOTEBOOK_CACHE"
KERNEL_NAME = "python3"


class _ThisInterpreterKernelSpecs(KernelSpecManager):
    """Resolves ``python3`` to ipykernel running on ``sys.executable`` and nothing else."""

    def get_kernel_spec(self, kernel_name):
        if kernel_name != KERNEL_NAME:
            raise NoSuchKernel(kernel_name)
        from ipykernel.kernelspec import RESOURCES, get_kernel_dict

        return KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())


def _check_scale(scale) -> str:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return scale


def run_notebook(path, *, scale: str | None = None, output=None, timeout: float = 1800.0,
                 cache_dir=None) -> float:
    """Execute the notebook at ``path`` and write it with its outputs; return the seconds taken.

    Parameters
    ----------
    path : str or os.PathLike
        An ``.ipynb`` file.
    scale : {"smoke", "full"}, optional
        Value of ``COSMIQ_NOTEBOOK_SCALE`` in the kernel.  Default: the variable as set in this
        process, else ``"smoke"``.
    output : str or os.PathLike, optional
        Where to write the executed notebook (default: over ``path``).
    timeout : float
        Seconds allowed per cell.
    cache_dir : str or os.PathLike, optional
        Passed to the kernel as ``COSMIQ_NOTEBOOK_CACHE`` (default: this process's value, if any).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not a notebook or ``scale`` is unknown.
    nbclient.exceptions.CellExecutionError
        When a cell raises; nothing is written then.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook {str(path)!r} does not exist")
    scale = _check_scale(scale if scale is not None else os.environ.get(ENV_VAR, "smoke"))
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # nbformat raises several JSON / validation error types
        raise ValueError(f"{str(path)!r} is not a Jupyter notebook ({err.__class__.__name__}: {err})") from None
    env = {**os.environ, ENV_VAR: scale}
    if cache_dir is not None:
        env[CACHE_VAR] = os.fspath(cache_dir)
    manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=_ThisInterpreterKernelSpecs())
    client = NotebookClient(nb, km=manager, kernel_name=KERNEL_NAME, timeout=timeout,
                            record_timing=False,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    started = time.perf_counter()
    client.execute(env=env)
    seconds = time.perf_counter() - started
    _write_atomic(nb, Path(output) if output is not None else path)
    return seconds


def _write_atomic(nb, target: Path) -> None:
    with atomic_open(target, "w") as fh:
        nbformat.write(nb, fh)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python notebooks/run_notebooks.py",
        description="Execute notebooks in place (outputs saved) and print how long each took.")
    parser.add_argument("notebooks", nargs="+", help=".ipynb files, run in the order given")
    parser.add_argument("--scale", choices=SCALES, default=None,
                        help=f"sets {ENV_VAR} in the kernel (default: the environment's value, else smoke)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per cell (default 1800)")
    args = parser.parse_args(argv)
    scale = args.scale or os.environ.get(ENV_VAR, "smoke")
    if scale not in SCALES:
        parser.error(f"{ENV_VAR}={scale!r}; expected one of {SCALES}")
    failed, total = [], 0.0
    with tempfile.TemporaryDirectory(prefix="cosmiq_notebooks_") as cache_dir:
        for name in args.notebooks:
            print(f"{name}: running ({scale}) ...", flush=True)
            try:
                seconds = run_notebook(name, scale=scale, timeout=args.timeout, cache_dir=cache_dir)
            except CellExecutionError as err:
                failed.append(name)
                print(f"{name}: FAILED, left unchanged\n{err}", file=sys.stderr, flush=True)
                continue
            except (FileNotFoundError, ValueError) as err:
                failed.append(name)
                print(f"{name}: {err}", file=sys.stderr, flush=True)
                continue
            total += seconds
            print(f"{name}: {seconds:.1f} s", flush=True)
    print(f"{len(args.notebooks) - len(failed)} of {len(args.notebooks)} notebook(s) ran in {total:.1f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
