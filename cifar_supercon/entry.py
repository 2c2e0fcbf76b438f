"""The `supercon` console script. Ctrl-C, SIGTERM and SIGHUP give one line and exit 130 from the
first instant, including the seconds that importing torch takes."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from . import processes
from .errors import STOPPED_BY_SIGNAL, Interrupted

STOPPED = f"stopped: {STOPPED_BY_SIGNAL}\n"


def _stop_while_starting(signum: int, frame: FrameType | None) -> None:
    # Nothing is written yet, and an exception raised inside a half-done import of a third-party
    # package can leave it broken (numpy then recurses): leave at once.
    os.write(sys.stderr.fileno(), STOPPED.encode())
    os._exit(Interrupted.exit_code)


def main() -> None:
    previous = {sig: signal.signal(sig, _stop_while_starting) for sig in processes.heeded()}
    from .cli import main as run_command_line  # imports torch: seconds

    for sig, handler in previous.items():
        signal.signal(sig, handler)
    try:
        with processes.signals_as_interrupt():
            run_command_line()
    except KeyboardInterrupt:
        sys.stderr.write(STOPPED)
        sys.exit(Interrupted.exit_code)
    finally:
        # The command is over and has said so; a signal during the interpreter's teardown (a
        # second or more with torch loaded) must not turn its exit code into a silent death.
        for sig in processes.STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
