"""The ``cosmiq`` command: simulate, train, adapt, predict, evaluate, compare, demo.

Each subcommand translates its options into one call of the package
(`simulate.make_dataset` + `simulate.write_pairs`, `training.train`, `adaptation.adapt`, `products.predict_fits`,
`study.evaluate`, `study.compare`, `demo.run_demo`) and turns the errors those raise for bad
input (ValueError, TypeError, OSError and its FileNotFoundError / FileExistsError) into one line
on stderr and exit status 2.  Ctrl-C exits with status 130; during ``train`` the checkpoint
then holds the best epoch completed.  Whatever a subcommand writes appears complete or not at
all: files are written to temporary names and renamed, directories are filled in a staging
directory and moved into place at the end.

DATA arguments (train, evaluate, compare) are either a directory of deepCR 'pair' files
(``*.npy`` of shape (2 or 3, W, W), as ``cosmiq simulate`` or deepCR's tutorials write them;
the ``meta.csv`` that ``cosmiq simulate`` writes beside them gives each frame's field, filter
and detector settings) or ``simulate:N``: N frames simulated on the fly.  ``train`` simulates with seed 0 by default;
``evaluate`` and ``compare`` with `cosmiq_pyro.data.seeds.HELD_OUT_SEED`, so their frames never
overlap a training set (see that module).
"""
from __future__ import annotations

import signal
import sys
import threading
import warnings

from ..utils.deprecation import moved_names
from .cli_parser import build_parser
from .cli_runs import EXIT_INTERRUPTED, EXIT_USAGE, USER_ERRORS, CommandError, error_line

__all__ = ["main"]

#: Moved in 0.2.0: ``HELD_OUT_SEED`` lives in `cosmiq_pyro.data.seeds`.
__getattr__ = moved_names(__name__, {"HELD_OUT_SEED": ("cosmiq_pyro.data.seeds", "HELD_OUT_SEED")})


def main(argv=None) -> int:
    """Run ``cosmiq`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    command = "cosmiq"
    with warnings.catch_warnings(), _sigterm_as_interrupt():
        warnings.showwarning = _one_line_warnings()
        try:
            args = parser.parse_args(argv)
            if args.command is None:
                parser.print_help(sys.stderr)
                return EXIT_USAGE
            command = f"cosmiq {args.command}"
            return int(args.run(args) or 0)
        except SystemExit as stop:  # --help, --version
            return stop.code if isinstance(stop.code, int) else 0
        except KeyboardInterrupt:
            print("cosmiq: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except CommandError as err:
            error_line(str(err))
            return EXIT_USAGE
        except (*USER_ERRORS, ModuleNotFoundError, FloatingPointError) as err:  # FPE: a diverging fit
            error_line(f"{command}: error: {_describe(err)}")
            return EXIT_USAGE


def _describe(err: BaseException) -> str:
    text = str(err)
    if isinstance(err, OSError) and err.filename and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    return text or type(err).__name__


def _one_line_warnings():
    """A ``warnings.showwarning`` that prints each distinct message once, on one line."""
    shown = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if text not in shown:
            shown.add(text)
            print(f"cosmiq: warning: {text}", file=sys.stderr)
    return show


class _sigterm_as_interrupt:
    """SIGTERM raises KeyboardInterrupt inside the block (as Ctrl-C does): ``train`` keeps its
    best epoch, staged outputs and temporaries are removed.  The previous handler is restored on
    exit; outside the main thread (where handlers cannot be set) nothing changes."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._interrupt)
        return self

    @staticmethod
    def _interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False


if __name__ == "__main__":  # python -m cosmiq_pyro.app.cli ... (same as the cosmiq script)
    sys.exit(main())
