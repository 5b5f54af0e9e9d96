"""The ``ingestd`` entry point (``ingestd ...``, ``python -m ingestd.cli ...``).

Stop signals first, everything else after. Python's default SIGTERM action kills the process
(exit -15), and the daemon installs its own handlers only once its imports, plugins and store
are ready, about a second after start. systemd (and our contract) expect a SIGTERM to end
the daemon with exit 0, so before anything heavy is imported, SIGTERM and SIGINT are set to
exit 0 at once: until the daemon's handlers replace them nothing has been started, and what
start-up did (lock, store, plugins) is repeated by the next start. The subcommands live in
`ingestd.commands`, imported only once these handlers are in place; this module imports
nothing but the standard library.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    """Nothing is running that a stop would interrupt: end the process with exit 0."""
    raise SystemExit(0)


def _stop_signals_exit_quietly() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_quietly)


def main(argv: list[str] | None = None) -> int:
    """Run ``ingestd`` with `argv` (default: the command line); return the exit code."""
    _stop_signals_exit_quietly()
    from ingestd.commands import main as run_command

    try:
        code = run_command(argv)
        sys.stdout.flush()  # a reader that went away shows here, not at the interpreter's exit
        return code
    except BrokenPipeError:
        # `ingestd install-unit --dry-run | head`: the reader is gone, which is no error
        # worth a traceback. Point stdout at /dev/null so the exit's flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    finally:
        # The daemon's event loop puts the default actions back when it closes: the daemon
        # has stopped by then, so a late signal still means exit 0.
        _stop_signals_exit_quietly()


if __name__ == "__main__":
    sys.exit(main())
