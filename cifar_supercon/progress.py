"""Signs of life in long loops: a tqdm bar where one shows (a terminal, a notebook widget), and
where none does (a log file, `| tee`, CI, a scheduler) a plain line at a steady pace."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

Log = Callable[[str], None]
HEARTBEAT_SECONDS = 30.0  # between plain progress lines when no bar shows


def progress_bar(total: int, description: str, enabled: bool, initial: int = 0) -> Any:
    """A tqdm bar on stderr (a widget in notebooks); hidden when disabled or not a terminal."""
    from tqdm.auto import tqdm

    if not hasattr(tqdm, "_lock"):
        # tqdm's own lock holds a multiprocessing RLock, a named semaphore, shared only with
        # processes forked after it: none of ours (a sweep's run processes are spawned). A run
        # process stopped with its sweep then left it for multiprocessing's resource tracker
        # to report as leaked. Bars are drawn by one process's threads: a thread lock will do.
        tqdm.set_lock(threading.RLock())
    return tqdm(
        total=total,
        initial=initial,
        desc=description,
        leave=False,
        disable=None if enabled else True,
        dynamic_ncols=True,
    )


def duration(seconds: float) -> str:
    """`45 s`, `12m05s`, `2h03m`: short enough for a log line."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Heartbeat:
    """One line every `every` seconds through `log` while a loop runs with no visible bar:
    `<what>  step 40/97 (41%)  eta 1m12s`. `what` is called only when a line is due, so a
    value that needs a device sync (the running loss) costs nothing between lines."""

    def __init__(self, log: Log, enabled: bool, every: float | None = None) -> None:
        self.log, self.enabled = log, enabled
        self.every = HEARTBEAT_SECONDS if every is None else every
        self.start = self.last = time.perf_counter()

    def beat(self, done: int, total: int, what: Callable[[], str], first: int = 0) -> None:
        """`done` of `total` steps are done; `first` of them were done before this loop began."""
        if not self.enabled:  # a bar shows: nothing to do on the training step's path
            return
        now = time.perf_counter()
        if now - self.last < self.every or done <= first:
            return
        self.last = now
        eta = (now - self.start) / (done - first) * (total - done)
        self.log(f"{what()}  step {done}/{total} ({100 * done / total:.0f}%)  eta {duration(eta)}")
