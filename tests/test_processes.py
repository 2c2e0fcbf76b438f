"""How the tool's processes take stop signals: deferred while helpers start, ignored by helpers."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from cifar_supercon import processes


def test_a_stop_inside_stops_deferred_comes_as_the_block_ends() -> None:
    finished_block = False
    with (
        pytest.raises(KeyboardInterrupt),
        processes.signals_as_interrupt(),
        processes.stops_deferred(),
    ):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # a handler left in place would have raised by now
        finished_block = True
    assert finished_block


def test_a_block_without_a_stop_changes_nothing() -> None:
    before = {sig: signal.getsignal(sig) for sig in processes.STOP_SIGNALS}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with processes.stops_deferred():
        pass
    assert {sig: signal.getsignal(sig) for sig in processes.STOP_SIGNALS} == before
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask


def _stop_signal_state() -> tuple[list[object], set[int]]:
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    return [signal.getsignal(sig) for sig in processes.STOP_SIGNALS], set(blocked)


def test_a_helper_ignores_stop_signals_and_receives_again() -> None:
    """A helper started inside stops_deferred leaves stops to its parent: each stop signal is
    ignored, and none stays blocked (the parent's death still reaches it)."""
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        1, mp_context=context, initializer=processes.follow_parent, initargs=(os.getpid(),)
    ) as pool:
        with processes.stops_deferred():
            future = pool.submit(_stop_signal_state)
        handlers, blocked = future.result(timeout=60)
    assert handlers == [signal.SIG_IGN] * len(processes.STOP_SIGNALS)
    assert not blocked & set(processes.STOP_SIGNALS)


def test_a_signal_the_caller_ignores_is_not_heeded() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert signal.SIGHUP not in processes.heeded()
        with processes.signals_as_interrupt(), processes.stops_deferred():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_progress_bar_leaves_no_semaphore_for_the_resource_tracker() -> None:
    """tqdm's default lock is a named semaphore; a sweep's run process stopped with its sweep
    left it behind, and multiprocessing's resource tracker printed a 'leaked semaphore'
    warning after the sweep's one line. Checked in a fresh interpreter: tqdm's lock is global."""
    script = (
        "import multiprocessing\n"
        "multiprocessing.set_start_method('spawn')  # as in a sweep's run process\n"
        "from multiprocessing import resource_tracker\n"
        "registered = []\n"
        "resource_tracker.register = lambda name, kind: registered.append(kind)\n"
        "from cifar_supercon.progress import progress_bar\n"
        "progress_bar(3, 'epoch 1', enabled=True).close()\n"
        "print(registered)\n"
    )
    printed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert printed.strip() == "[]"
