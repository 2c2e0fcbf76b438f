"""How this tool's processes stop: on a signal, and when the process that started them dies."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator

# What asks this tool to stop: Ctrl-C, kill's default, and a closed terminal or ssh session.
# Each stops the same clean way (exit code 130). One the caller ignores stays ignored: `nohup`
# ignores SIGHUP so that a job outlives its terminal, and a script's background job ignores SIGINT.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_MASKS = hasattr(signal, "pthread_sigmask")  # POSIX


def heeded(signals: tuple[int, ...] = STOP_SIGNALS) -> list[int]:
    """Those of `signals` that this process does not ignore."""
    return [sig for sig in signals if signal.getsignal(sig) is not signal.SIG_IGN]


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt like Ctrl-C does, so all stop the same clean
    way. (A training loop handles them itself, saving its checkpoint first.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in heeded() if sig != signal.SIGINT}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def ignored(*signals: int) -> Iterator[None]:
    """`signals` ignored inside the block (a process started here inherits that), then
    restored. Outside the main thread signals cannot be set, and nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Linux: the kernel sends this process `sig` when its parent dies, so that a killed
    command never leaves workers behind. Elsewhere nothing happens.

    `parent`: the pid of the process that started this one. The kernel tells only of a death
    after this request; a parent that died before it (a spawned process imports for seconds
    first) would leave this process running as an orphan, so it exits here, at once: nothing
    of its work has begun."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(sig))
    if parent is not None and os.getppid() != parent:  # adopted: its parent is gone
        os._exit(128 + int(sig))  # nothing began here; a pool would print a raised SystemExit


def follow_parent(parent: int) -> None:
    """The start of a helper process that holds nothing worth saving (an image decoder): a stop
    signal sent to the whole process group (Ctrl-C, a closed terminal, `kill -- -PGID`) is left
    to the parent, which stops cleanly and says so once; the parent's end then kills this
    process at once, as does a parent (pid `parent`) that died before this could ask for it.
    (A forked helper would otherwise run the parent's handlers and print a KeyboardInterrupt
    traceback of its own.)"""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    die_with_parent(signal.SIGKILL, parent=parent)
    if _MASKS:  # started inside stops_deferred: now safe to receive
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextlib.contextmanager
def stops_deferred() -> Iterator[None]:
    """A stop signal that comes inside the block is acted on as the block ends, so that a pool
    never stops half-started (workers forked, the thread that ends them not: exit then waited
    on them forever). Processes started here inherit the signals blocked, so that none runs
    this process's handlers before `follow_parent` ignores them (that printed tracebacks)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def defer(signum: int, frame: object) -> None:
        caught.append(signum)

    previous = {sig: signal.signal(sig, defer) for sig in heeded()}
    # The mask is the main thread's only: it is what a child starts with, while the handlers
    # above catch a signal that the kernel hands to one of this process's other threads.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if _MASKS else None
    try:
        yield
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])  # handled now as it would have been then
