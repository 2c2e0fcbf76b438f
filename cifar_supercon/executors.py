"""Where a sweep's runs execute: one interface, three ways.

An executor calls `work(task, device)` for every task and hands each return value to `done` as it
arrives. It knows nothing of sweeps: `work` must be a module-level function of plain picklable
arguments that never raises for a failed run (it records the failure itself), so that an
executor only has to care about processes, devices and interruption. A task whose process died
without an answer (killed, out of memory, a crash in native code) goes to `lost(task, reason)`,
which records it as `work` would a failure and returns what `work` would have: the other tasks
go on.

- `Local()`: one task after another in this process.
- `Devices(["0", "1"])`: one process per device at once; a GPU index is given to its process as
  CUDA_VISIBLE_DEVICES (`cpu` runs a process on the CPU, which tests and small machines use).
- `Ray()`: each task a Ray task with one GPU (or `cpus_per_run` CPUs where the cluster has no
  GPU), on the cluster at RAY_ADDRESS or a local one; Ray retries a task whose worker died.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import wait
from typing import Any, Protocol

import torch

from . import processes
from .errors import Interrupted, UsageError, describe

Work = Callable[[Any, str | None], Any]
Done = Callable[[Any], None]
Lost = Callable[[Any, str], Any]
# A stopped run saves its checkpoint first: the time its sweep gives all of them together,
# after which a run process still going is killed (resumed from its last checkpoint).
STOP_GRACE_SECONDS = 120


class Executor(Protocol):
    def run(self, work: Work, tasks: Sequence[Any], done: Done, lost: Lost) -> None: ...


def _stopped(pending: int) -> Interrupted:
    return Interrupted(
        f"sweep interrupted with {pending} run(s) unfinished; run the same command again to "
        "continue (finished runs are kept, interrupted ones resume from their checkpoints)"
    )


class Local:
    """One after another, in this process. With a `deadline` (a time.perf_counter() value) no
    task starts after it: a caller with a hard time limit keeps the runs that finished."""

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline

    def run(self, work: Work, tasks: Sequence[Any], done: Done, lost: Lost) -> None:
        # A crash here ends this process too: nothing is left to hand to `lost`.
        with processes.signals_as_interrupt():
            for i, task in enumerate(tasks):
                if self.deadline is not None and time.perf_counter() > self.deadline:
                    return
                try:
                    done(work(task, None))
                except (KeyboardInterrupt, Interrupted):
                    raise _stopped(len(tasks) - i) from None


def parse_devices(text: str) -> list[str]:
    """`0,1,2,3` (GPU indices) or `cpu,cpu`: one process per entry."""
    devices = [d.strip() for d in text.split(",") if d.strip()]
    bad = [d for d in devices if not (d.isdigit() or d == "cpu")]
    if not devices or bad:
        raise UsageError(
            f"--devices {text!r}: expected comma-separated GPU indices or 'cpu', e.g. 0,1,2,3"
        )
    return devices


def _child(
    work: Work,
    task: Any,
    device: str,
    results: Any,
    stop: Any,
    interruptible: bool,
    parent: int,
) -> None:
    """A run's process. It starts deaf to SIGINT (spawn's start-up would print a traceback);
    from here on it hears it, unless the sweep's caller ignores it too. SIGTERM and SIGHUP it
    hears unless the caller ignored them: it heeds what its sweep heeds (`Devices.run` stops
    it with one of those). A stop that came while it started is in `stop`, set before the
    signal was sent. A sweep (`parent`) that died while it started, SIGKILLed, sent nothing:
    it exits before its run begins."""
    if interruptible:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # On its sweep's death the run saves its checkpoint and stops (SIGTERM); a sweep started
    # with SIGTERM ignored passed that on, and its runs could not hear it: they are killed.
    heard = processes.heeded((signal.SIGTERM,))
    processes.die_with_parent(signal.SIGTERM if heard else signal.SIGKILL, parent=parent)
    try:
        # SIGTERM and SIGHUP stop it the way SIGINT does, outside the training loop too.
        with processes.signals_as_interrupt():
            if stop.is_set():
                raise KeyboardInterrupt
            result = work(task, "cpu" if device == "cpu" else "cuda")
        results.send(result)
    except (Interrupted, KeyboardInterrupt):
        sys.exit(Interrupted.exit_code)  # the sweep's own process says so, in one line


class Devices:
    """One process per device at once; each takes the next task when its run ends."""

    def __init__(self, devices: Sequence[str]) -> None:
        self.devices = list(devices)
        # Checked here, before a sweep folder exists: a missing GPU would fail every run.
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        missing = [d for d in self.devices if d != "cpu" and int(d) >= count]
        if missing:
            raise UsageError(
                f"--devices {','.join(self.devices)!r}: no CUDA GPU {', '.join(missing)} is "
                f"available to torch {torch.__version__} (GPUs here: "
                f"{', '.join(map(str, range(count))) or 'none'}); use --devices cpu (slow) or "
                "the indices of GPUs that exist"
            )

    def run(self, work: Work, tasks: Sequence[Any], done: Done, lost: Lost) -> None:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: CUDA-safe
        # multiprocessing's resource tracker ignores SIGINT and SIGTERM but not SIGHUP: a closed
        # terminal killed it, and its successor printed tracebacks after the sweep's one line.
        # Started here, it inherits SIGHUP ignored and ends when this process does.
        if hasattr(signal, "SIGHUP"):
            with processes.ignored(signal.SIGHUP):
                resource_tracker.ensure_running()
        # CPU processes split the cores between them: oversubscribed threads run far slower.
        cpu_share = max(1, (os.cpu_count() or 1) // max(1, self.devices.count("cpu")))
        queue = list(tasks)
        free = list(self.devices)
        running: dict[Any, _Running] = {}  # by the process's sentinel
        stopped = 0  # runs whose process was stopped by a signal of its own
        stop = context.Event()
        # The run processes heed the stop signals this process heeds (see _child), and are
        # stopped with one of those: SIGTERM, unless the caller ignored it too. (SIGINT alone
        # went unheard by the runs of a script's background job, which ignores it.) Where none
        # is heeded, no signal can stop this sweep or its runs: the fallback is never sent.
        heard = processes.heeded()
        interruptible = signal.SIGINT in heard
        stop_signal = next((s for s in (signal.SIGTERM, *heard) if s in heard), signal.SIGKILL)
        try:
            with processes.signals_as_interrupt():
                while queue or running:
                    while queue and free:
                        device = free.pop(0)
                        task = queue.pop(0)
                        receive, send = context.Pipe(duplex=False)
                        process = context.Process(
                            target=_child,
                            args=(work, task, device, send, stop, interruptible, os.getpid()),
                            daemon=True,
                        )
                        sigint_ignored = processes.ignored(signal.SIGINT)
                        with _child_environment(device, cpu_share), sigint_ignored:
                            process.start()  # the child inherits SIGINT ignored
                        send.close()
                        running[process.sentinel] = _Running(task, process, device, receive)
                    for sentinel in wait(list(running)):
                        ended = running.pop(sentinel)
                        free.append(ended.device)
                        result = ended.result()
                        if result is not None:
                            done(result)
                        elif ended.process.exitcode == Interrupted.exit_code:
                            stopped += 1  # Ctrl-C reached it first: the sweep stops too
                            raise KeyboardInterrupt
                        else:
                            done(lost(ended.task, ended.how_it_ended()))
        except KeyboardInterrupt:
            stop.set()  # before the signal: a process still starting cannot hear it yet
            for ended in running.values():
                if ended.process.is_alive():
                    os.kill(ended.process.pid, stop_signal)  # the run checkpoints, then stops
            # One grace period for all: they save their checkpoints at the same time.
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            for ended in running.values():
                ended.process.join(max(0.0, deadline - time.monotonic()))
                if ended.process.is_alive():
                    ended.process.kill()  # past the grace period; its last checkpoint stays
                result = ended.result()  # a run may have finished as the signal came
                if result is None:
                    stopped += 1
                else:
                    done(result)
            # Runs that all finished as the stop came leave nothing to continue: the sweep is done.
            if queue or stopped:
                raise _stopped(len(queue) + stopped) from None


@dataclass
class _Running:
    task: Any
    process: Any  # multiprocessing's SpawnProcess
    device: str
    receive: Any  # the read end of the pipe the run's result comes through

    def result(self) -> Any:
        """What `work` returned, once the process has ended; None if it sent nothing."""
        try:
            result = self.receive.recv() if self.receive.poll() else None
        except EOFError:  # the pipe closed with nothing in it: poll() reports that as readable
            result = None
        self.process.join()
        return result

    def how_it_ended(self) -> str:
        code = self.process.exitcode
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            why = " (out of memory, or killed)" if name == "SIGKILL" else ""
            return f"its process on device {self.device} was killed by {name}{why}"
        return f"its process on device {self.device} ended with exit code {code}"


@contextlib.contextmanager
def _child_environment(device: str, cpu_share: int) -> Iterator[None]:
    """The environment of a process started inside the block (spawn copies os.environ): its GPU
    alone as CUDA_VISIBLE_DEVICES, or its share of the cores as OMP_NUM_THREADS."""
    key, value = (
        ("OMP_NUM_THREADS", str(cpu_share))
        if device == "cpu"
        else ("CUDA_VISIBLE_DEVICES", visible_gpu(device, os.environ.get("CUDA_VISIBLE_DEVICES")))
    )
    previous = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def visible_gpu(index: str, visible: str | None) -> str:
    """The CUDA_VISIBLE_DEVICES entry for GPU `index` as this process numbers them: under
    CUDA_VISIBLE_DEVICES=2,3 the user's `--devices 0` is the GPU listed first (2), not GPU 0."""
    listed = [v.strip() for v in (visible or "").split(",") if v.strip()]
    return listed[int(index)] if int(index) < len(listed) else index


class Ray:
    """Each task a Ray task; Ray places it, and retries it when its worker dies.

    `address`: a running cluster (default: RAY_ADDRESS, else a new local one of `num_cpus`).
    A retried task continues the run from its last checkpoint when the sweep folder is on a
    filesystem every node sees.
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        cpus_per_run: int = 1,
        max_retries: int = 3,
    ) -> None:
        # Checked here, before a sweep folder exists.
        if importlib.util.find_spec("ray") is None:
            raise UsageError("--executor ray needs Ray: pip install 'cifar-supercon[ray]'")
        self.address = address or os.environ.get("RAY_ADDRESS")
        self.num_cpus = num_cpus
        self.cpus_per_run = cpus_per_run
        self.max_retries = max_retries

    def run(self, work: Work, tasks: Sequence[Any], done: Done, lost: Lost) -> None:
        import ray  # optional: __init__ checked that it is installed

        started = not ray.is_initialized()
        session_files = None
        if started:
            local: dict[str, Any] = {}
            if not self.address:
                # A local Ray of our own keeps its logs and sockets in a folder that goes with
                # it (Ray's default, /tmp/ray/session_*, stays after every sweep). In /tmp, as
                # Ray's: a socket's path must stay under 108 bytes, which a long TMPDIR is not.
                short = "/tmp" if os.path.isdir("/tmp") else None
                session_files = tempfile.mkdtemp(prefix="supercon-ray-", dir=short)
                local = {"num_cpus": self.num_cpus, "_temp_dir": session_files}
            ray.init(
                address=self.address,
                include_dashboard=False,
                logging_level="error",
                log_to_driver=False,
                **local,
            )
        try:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
            remote = ray.remote(work).options(
                num_gpus=gpus,
                num_cpus=self.cpus_per_run,
                max_retries=self.max_retries,  # system failures: a worker or node died
                retry_exceptions=False,  # `work` records a failed run itself
            )
            task_of = {remote.remote(task, "cuda" if gpus else "cpu"): task for task in tasks}
            pending = list(task_of)
            unrecorded: list[Any] = []  # a task that ended, until `done` has its result
            try:
                with processes.signals_as_interrupt():
                    while pending:
                        finished, pending = ray.wait(pending, num_returns=1)
                        unrecorded = finished
                        try:
                            result = ray.get(finished[0])
                        except ray.exceptions.RayError as e:  # its worker died every retry
                            result = lost(
                                task_of[finished[0]],
                                f"its Ray task failed {self.max_retries + 1} time(s) "
                                f"({describe(e)})",
                            )
                        done(result)
                        unrecorded = []
            except KeyboardInterrupt:
                for ref in pending:
                    ray.cancel(ref)  # KeyboardInterrupt in the task: the run checkpoints
                # A stop while the last result was recorded left no task pending, but that
                # result unrecorded: not "0 run(s) unfinished".
                raise _stopped(len(pending) + len(unrecorded)) from None
        finally:
            if started:
                ray.shutdown()
            if session_files:
                shutil.rmtree(session_files, ignore_errors=True)
