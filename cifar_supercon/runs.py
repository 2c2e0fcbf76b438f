"""Run directories, the config snapshot, metrics.csv, summary.json and atomic checkpoints.

A run directory is created exclusively (never reused or overwritten); files in it are written to
a temporary name and renamed, so a crash leaves either the old or the new version, never half.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import pickle
import shutil
import stat
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

import torch

from . import arguments
from . import config as config_lib
from .config import Config
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    FolderInUse,
    RunConfigError,
    RunFileError,
    SuperconError,
    UsageError,
    describe,
)
from .text import one_line

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one process per run is the user's to keep
    fcntl = None  # type: ignore[assignment]

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINTS = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
LOCK_FILE = ".lock"
PLOTS = "plots"
FINDER = "lr_finder"  # a `--lr-max auto` run's range test
REPORT_FILE = "report.md"
# What a training run draws at its end, relative to the run (report.md links them so).
SCHEDULE_PLOT = f"{PLOTS}/schedule.png"
TRAINING_PLOT = f"{PLOTS}/training.png"
CONFUSION_PLOT = f"{PLOTS}/confusion_matrix.png"
TRIANGLE_PLOT = f"{PLOTS}/clr_triangle.png"  # where the bounds make a CLR triangle
RUN_PLOTS = (SCHEDULE_PLOT, TRAINING_PLOT, CONFUSION_PLOT, TRIANGLE_PLOT)
TEMPORARY = ".tmp"  # `.<name>.tmp<pid>`: a file being written by process <pid>
CHECKPOINT_FORMAT = 1
METRIC_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "epoch_seconds",
)


def create(out: Path, name: str, now: datetime | None = None) -> Path:
    """`<out>/<YYYYmmdd-HHMMSS>-<name>`, or with `-2`, `-3`... when that exists already."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    check_outside_runs(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 1000):
            run = out / (f"{stamp}-{name}" if attempt == 1 else f"{stamp}-{name}-{attempt}")
            try:
                run.mkdir()  # exclusive: fails if another run took the name
                return run
            except FileExistsError:
                continue
    except OSError as e:
        # mkdir's "File exists" for a file (or a device) where the folder should be says too
        # little
        reason = e.strerror
        if out.exists() and not out.is_dir():
            reason = "a file, not a folder" if out.is_file() else "not a folder"
        raise SuperconError(
            f"{out}: cannot create a run directory here ({reason}); choose another --out"
        ) from None
    raise SuperconError(f"{out}: too many runs named {stamp}-{name}")


def check_outside_runs(path: Path, option: str = "out") -> None:
    """Nothing new goes inside a training run, neither a run (`out`, a folder) nor a file an
    output option names (a plot, a CSV): the run's folder holds only what the run wrote (its
    checkpoints/ would gain foreign files, a plot or metrics.csv replaced there would misreport
    it, and finished runs are never changed). Links are followed: a link into a run writes
    into the run. Every folder above the path is asked, so only a run of this tool (`is_run`)
    may refuse: a project's own config.yaml and metrics.csv, or such files in $HOME, must not
    block the tool below them."""
    target = resolved(path)
    for place in (target, *target.parents):
        if is_run(place):
            raise UsageError(
                f"{option} {path}: inside the run {place}, which holds only what the run wrote; "
                "choose a place outside it"
            )


def check_name_lengths(path: Path, option: str) -> None:
    """A path the system would refuse for its length (ENAMETOOLONG), refused before any work
    and in words: otherwise the first stat or mkdir fails deep inside a command, after its work
    is done. The limits are those of the nearest folder that exists (255 bytes a name, 4096 a
    path, where the system does not say)."""
    absolute = path.absolute()
    folder = next((a for a in absolute.parents if os.path.isdir(a)), Path("/"))
    name_max = _limit(folder, "PC_NAME_MAX", 255)
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            raise UsageError(
                f"{option} {path}: a name in it has {len(os.fsencode(part))} bytes, more than "
                f"file names allow ({name_max}); give a shorter one"
            )
    path_max = _limit(folder, "PC_PATH_MAX", 4096)
    if len(os.fsencode(absolute)) >= path_max:  # the limit counts the closing NUL
        raise UsageError(
            f"{option} {path}: {len(os.fsencode(absolute))} bytes as an absolute path, more "
            f"than paths allow ({path_max - 1}); give a shorter one"
        )


def check_nameable(path: Path, option: str) -> None:
    """A run's or a sweep's folder, refused before any work where the files written into it
    could not name it (arguments.not_nameable), instead of failing as the run ends."""
    if problem := arguments.not_nameable(path):
        raise UsageError(f"{option} {one_line(str(path))}: {problem}")


def _limit(folder: Path, name: str, default: int) -> int:
    try:
        value = os.pathconf(folder, name)
    except (OSError, ValueError):  # a system without pathconf, or without this name
        return default
    return value if value > 0 else default  # -1: no definite limit


def resolved(path: Path) -> Path:
    """`path` absolute with its links followed, as a write to it would follow them; a link loop
    stays as it is (the write fails there, naming it)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: Python < 3.13's word for a link loop
        return path.absolute()


def create_exactly(run: Path) -> Path:
    """`run` itself as a new run directory (a sweep names its runs); refused if it exists."""
    check_outside_runs(run, "run_dir")
    try:
        run.parent.mkdir(parents=True, exist_ok=True)
        run.mkdir()
    except FileExistsError:
        raise UsageError(f"{run}: exists already (runs are never overwritten)") from None
    except OSError as e:
        raise SuperconError(f"{run}: cannot create the run directory ({e.strerror})") from None
    return run


@contextlib.contextmanager
def locked(folder: Path, what: str = "this run") -> Iterator[None]:
    """Hold an OS lock on `folder` while the block runs, so two processes never write the same
    run (or sweep). flock dies with its process: a killed holder leaves no stale lock."""
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:  # a folder in its place, no permission
        raise SuperconError(
            f"{folder / LOCK_FILE}: cannot be opened as {what}'s lock file ({e.strerror})"
        ) from None
    try:
        _take_lock(fd, folder, what)
        yield
    finally:
        os.close(fd)


def _take_lock(fd: int, folder: Path, what: str) -> None:
    """flock `fd` and write our pid into it; a holder is named, and a lock file that cannot
    serve (a link to /dev/null, which every process shares and which holds no pid) names it."""
    lock = folder / LOCK_FILE
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SuperconError(
                f"{lock}: cannot be used as {what}'s lock file (not a regular file)"
            )
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    except BlockingIOError:  # flock's answer while another process holds it
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
        holder = f"process {pid}" if pid else "another process"
        raise FolderInUse(
            f"{folder}: {what} is in use by {holder}; wait for it to end or stop it", holder
        ) from None
    except OSError as e:
        raise SuperconError(
            f"{lock}: cannot be used as {what}'s lock file ({e.strerror or describe(e)})"
        ) from None


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write through a temporary file and a rename: readers never see a partial file.

    A target that exists and is not a regular file (/dev/stdout, a pipe) is written straight
    to: renaming over it would replace the device or pipe with a file. A path that cannot be
    written is one line naming it: exit 2 when the path itself is wrong (a folder, under a
    file), 1 when the world refuses (no permission, a full disk).
    """
    try:
        if path.is_dir():
            raise UsageError(f"{path}: is a folder; give a file name")
        existing = next(a for a in path.absolute().parents if a.exists())
        if not existing.is_dir():
            raise UsageError(f"{path}: cannot be written ({existing} is a file, not a folder)")
        if path.exists() and not path.is_file():
            with open(path, "wb") as f:
                f.write(data)
            return
        write_atomically(path, lambda f: f.write(data), size_hint=len(data))
    except OSError as e:
        raise SuperconError(
            f"{path}: cannot be written ({e.strerror or type(e).__name__})"
        ) from None


def write_atomically(path: Path, write: Callable[[BinaryIO], object], size_hint: int = 0) -> None:
    """`write` into `.<name>.tmp<pid>` beside `path`, fsync, rename over `path`. On any failure
    the temporary file is removed and `path` keeps its previous version; a full disk becomes
    one line naming the path and the space it needs (at least `size_hint` bytes)."""
    target = path.resolve() if path.is_symlink() else path  # keep a link; replace what it names
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}{TEMPORARY}{os.getpid()}")
    watched: _WatchedFile | None = None
    try:
        with open(tmp, "wb") as f:
            watched = _WatchedFile(f)
            write(cast(BinaryIO, watched))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        written = tmp.stat().st_size if tmp.exists() else 0
        tmp.unlink(missing_ok=True)
        errors = [e, *(watched.errors if watched else [])]
        if any(isinstance(x, OSError) and x.errno in (errno.ENOSPC, errno.EDQUOT) for x in errors):
            raise _disk_full(target, max(written, size_hint)) from None
        raise


class _WatchedFile:
    """A binary file that keeps the OSErrors its writes raise: a writer may catch one and fail
    later in its own words (torch.save on a full disk: `[enforce fail at inline_container.cc]
    unexpected pos`, which names neither the disk nor the file)."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.errors: list[OSError] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)

    def write(self, data: Any) -> int:
        try:
            return self.file.write(data)
        except OSError as e:
            self.errors.append(e)
            raise


def _disk_full(path: Path, needed: int) -> SuperconError:
    free = shutil.disk_usage(path.parent).free
    kept = "the previous version is intact" if path.exists() else "nothing was replaced"
    return SuperconError(
        f"{path}: no space left on the device ({_size(free)} free, about {_size(needed)} "
        f"needed); {kept}: free some space, then resume"
    )


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Temporary files of writers that died mid-write (their pid is gone): safe to delete, since
    the file they were replacing was never touched. Returns what was removed."""
    removed = []
    for tmp in folder.glob(f".*{TEMPORARY}*"):
        pid = tmp.name.rsplit(TEMPORARY, 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def append_line(path: Path, line: str) -> None:
    """A log that only grows (one record per line): appending never loses what was there."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def write_config(run: Path, cfg: Config) -> None:
    write_text(run / CONFIG_FILE, config_lib.to_yaml(cfg))


def start(run: Path, cfg: Config) -> None:
    """A new training run's first files: an empty metrics.csv, then config.yaml. So a folder
    with a config.yaml but neither metrics.csv nor a checkpoint is no training run of this tool
    (a find-lr folder, a hand-made one), and --resume refuses it."""
    write_metrics(run, [])
    write_config(run, cfg)


_HEADER_BYTES = 4096  # metrics.csv's header is 60; a foreign file's first line is not read whole


def is_run(folder: Path) -> bool:
    """Whether `folder` is a training run of this tool: its metrics.csv begins with this tool's
    columns (those read_metrics requires). The rule holds for a run from the first moment it is
    one: `start` writes metrics.csv first, before config.yaml, while stops wait (a Ctrl-C as
    the folder is made lands after it), and only a SIGKILL between the folder's mkdir and that
    write leaves a folder without it, which holds no run to protect (--resume refuses it: no
    config.yaml; a sweep removes it). Every later write replaces the file whole, header first,
    and nothing removes it. A config.yaml, a checkpoints/ folder or a .lock is no sign of a run:
    projects have them too, and a sweep's folder has a .lock."""
    return all(column in csv_header(folder / METRICS_FILE) for column in METRIC_COLUMNS)


def csv_header(path: Path) -> list[str]:
    """The columns of the CSV file at `path`, or none where it is no readable CSV file."""
    if not path.is_file():  # a pipe of that name would block the read
        return []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return next(csv.reader([f.readline(_HEADER_BYTES)]), [])
    except (OSError, UnicodeDecodeError, csv.Error):  # unreadable: not this tool's file
        return []


def started(run: Path) -> bool:
    """A training run that began (see `start`): it can be resumed unless it has finished."""
    return (run / CONFIG_FILE).is_file() and (
        (run / METRICS_FILE).exists() or (run / CHECKPOINTS / LAST).exists()
    )


def read_config(run: Path, overrides: Sequence[config_lib.Override] = ()) -> Config:
    """The run's config.yaml; refused when emptied, which would otherwise read as the defaults."""
    path = run / CONFIG_FILE
    try:  # the file alone: its problems are the run's (exit 1), not the command's
        if not config_lib.read_text(path).strip():
            raise RunFileError(
                f"{path}: empty; this tool writes every key of the run's config there: restore "
                "it (from a backup), or start a new run"
            )
        config_lib.load([path])
    except ConfigError as e:
        damaged = f"{path}: the run's config no longer loads; restore it, or start a new run"
        raise RunConfigError([*e.problems, damaged]) from None
    return config_lib.load([path], overrides)


def resume_checkpoint(run: Path, cfg: Config) -> dict[str, Any] | None:
    """The run's last.pt (None before its first save), read before any data loads and checked
    against the config the resume would use (`resume_changes`): an edited config.yaml fails in a
    second, not after minutes of decoding."""
    last = run / CHECKPOINTS / LAST
    if not last.is_file():
        return None
    payload = load_checkpoint(last)
    resume_changes(checkpoint_config(payload, last), cfg, last)
    return payload


def write_metrics(run: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """metrics.csv, rewritten whole each epoch: it always matches the last checkpoint."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(run / METRICS_FILE, buffer.getvalue())


def read_metrics(run: Path) -> list[dict[str, str]]:
    """metrics.csv's rows, checked: this tool's columns, numbers (or empty) in every cell."""
    path = run / METRICS_FILE
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise RunFileError(f"{path}: cannot be read as metrics ({describe(e)})") from None
    if missing := [c for c in METRIC_COLUMNS if c not in columns]:
        raise RunFileError(f"{path}: not this tool's metrics (no column {', '.join(missing)})")
    for number, row in enumerate(rows, start=2):
        for column in METRIC_COLUMNS:
            if row[column] is None:  # the line ended before this column: a truncated file
                raise RunFileError(
                    f"{path}: line {number}: {column} is missing (the line ends before it)"
                )
            if not _is_number_or_empty(row[column]):
                raise RunFileError(f"{path}: line {number}: {column} {row[column]!r} is no number")
    return rows


SUMMARY_KEYS = ("test_accuracy", "best_test_accuracy", "train_seconds")


def read_summary(run: Path) -> dict[str, Any]:
    """summary.json, checked: a mapping with the figures that comparisons and sweeps read."""
    path = run / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunFileError(f"{path}: not valid JSON ({describe(e)})") from None
    if not isinstance(summary, dict):
        raise RunFileError(f"{path}: expected a mapping, got a {type(summary).__name__}")
    wrong = [k for k in SUMMARY_KEYS if not _is_number(summary.get(k))]
    if wrong:
        raise RunFileError(f"{path}: no number for {', '.join(wrong)}: not this tool's summary")
    return summary


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_number_or_empty(text: str | None) -> bool:
    if text == "":
        return True
    try:
        float(text or "x")
    except ValueError:
        return False
    return True


def write_summary(run: Path, summary: Mapping[str, Any]) -> None:
    write_text(run / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")


def check_training_run(run: Path) -> None:
    """`--resume RUN` names a training run of this tool (checked before it is locked, so a
    folder that is none gets no lock file)."""
    if not run.is_dir():
        what = "a file, not a run directory" if run.exists() else "no such directory"
        raise UsageError(f"--resume {run}: {what}")
    check_nameable(run, "--resume")  # a run moved below such a folder: its report names it
    if not (run / CONFIG_FILE).is_file():
        raise UsageError(f"--resume {run}: not a run directory (no {CONFIG_FILE})")
    if not started(run):
        raise UsageError(
            f"--resume {run}: not a training run ({METRICS_FILE} and {CHECKPOINTS}/{LAST} are "
            f"missing); to train with its config: --config {run / CONFIG_FILE}"
        )


def check_resumable(run: Path) -> None:
    """A training run that has not finished and whose history can be continued (checked while
    it is locked: a run that finished a moment ago is not resumed). Every file and folder that
    resuming writes must still be one: found after the last epoch, it would cost the training."""
    for name in (CHECKPOINTS, PLOTS):
        if (run / name).exists() and not (run / name).is_dir():
            raise RunFileError(f"{run / name}: not a folder; the run's {name}/ belongs here")
    files = (METRICS_FILE, SUMMARY_FILE, REPORT_FILE, *(f"{CHECKPOINTS}/{c}" for c in (LAST, BEST)))
    for name in (*files, *RUN_PLOTS):
        if (run / name).exists() and not (run / name).is_file():
            raise RunFileError(f"{run / name}: not a file; the run's {name} belongs here")
    if (run / SUMMARY_FILE).is_file():
        raise UsageError(
            f"--resume {run}: this run has finished ({SUMMARY_FILE} exists); start a new run "
            "instead (finished runs are never changed)"
        )
    last = run / CHECKPOINTS / LAST
    if last.is_file():
        return  # its rows are the run's history: metrics.csv is rewritten from them on resume
    recorded = read_metrics(run) if (run / METRICS_FILE).is_file() else []
    if recorded:
        # Starting again from epoch 1 would overwrite the epochs metrics.csv records.
        raise CheckpointError(
            f"--resume {run}: {last.relative_to(run)} is missing but metrics.csv records "
            f"{len(recorded)} epoch(s); put the checkpoint back, or start a new run"
        )


# --------------------------------------------------------------------------------------------
# Checkpoints: a plain dict of tensors and plain values, so weights_only loading reads it all.


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """torch.save to a temporary file, fsync, then rename over the old checkpoint."""
    write_atomically(
        path,
        lambda f: torch.save({"format": CHECKPOINT_FORMAT, **payload}, f),
        size_hint=_tensor_bytes(payload),
    )
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def _tensor_bytes(value: Any) -> int:
    """What the tensors in a (nested) payload occupy: about a checkpoint's size on disk."""
    if isinstance(value, torch.Tensor):
        return value.nbytes
    if isinstance(value, Mapping):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by `save_checkpoint`, loaded with weights_only=True (no code runs)."""
    if path.is_dir():
        raise CheckpointError(
            f"{path}: a folder; give a checkpoint file, e.g. {path / CHECKPOINTS / BEST}"
        )
    if path.exists() and not path.is_file():
        raise CheckpointError(f"{path}: not a regular file; give a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with warnings.catch_warnings():  # torch's warnings about foreign files: we say it once
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():
            raise CheckpointError(
                f"{path}: not a checkpoint (not a file torch.save wrote)"
            ) from None
        # weights_only refuses any global that is not a tensor or a plain value, which is how
        # a pickle would smuggle in code.
        raise CheckpointError(
            f"{path}: refused: the file holds pickled objects that could run code ({describe(e)})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({describe(e)})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a checkpoint of this tool (a {type(payload).__name__} without its "
            f"format-{CHECKPOINT_FORMAT} marker: a bare state dict, or another program's file?)"
        )
    return payload


def checkpoint_config(payload: Mapping[str, Any], path: Path) -> Config:
    if not isinstance(payload.get("config"), Mapping):
        raise CheckpointError(f"{path}: not a supercon checkpoint (it carries no config)")
    try:
        return config_lib.from_dict(payload["config"], str(path))
    except ConfigError as e:
        # The tool wrote this config: one that no longer validates is a damaged file (exit 1,
        # as a run's own config.yaml is), not a config the user gave.
        raise RunConfigError(e.problems) from None


# What a resumed run may change: where it runs, not what it computes (`out` and `name` only
# placed the run folder, which exists by now). A smaller machine may need fewer CPU threads.
RESUME_MAY_CHANGE = ("data.root", "train.device", "train.eval_batch_size", "train.cpu_threads")
_PLACEMENT = ("out", "name")


def resume_changes(saved: Config, wanted: Config, path: Path) -> list[str]:
    """Compare a run's config with its checkpoint's: refuse a difference that changes what the
    run computes (epochs, lr, data, ...), naming every key; return the allowed ones that differ
    (`train.device 'cuda' -> 'cpu'`) for the caller to record."""
    check_same_model(saved, wanted, path)
    before = dict(config_lib.flatten(config_lib.to_dict(saved)))
    after = dict(config_lib.flatten(config_lib.to_dict(wanted)))
    differing = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    differing = [k for k in differing if k not in _PLACEMENT]
    refused = [k for k in differing if k not in RESUME_MAY_CHANGE]
    if refused:
        what = "; ".join(f"{k} is {before.get(k)!r} there, {after.get(k)!r} now" for k in refused)
        raise CheckpointError(
            f"{path}: the run's config.yaml no longer matches its checkpoint ({what}); resuming "
            "would change the run half-way: restore config.yaml, or start a new run"
        )
    return [f"{k} {before.get(k)!r} -> {after.get(k)!r}" for k in differing]


def check_same_classes(saved: Sequence[str], found: Sequence[str], path: Path, root: Path) -> None:
    """The data's classes, in order, must be the checkpoint's: output i means class i. A folder
    with other names or another order would be scored against the wrong labels."""
    if list(saved) != list(found):
        raise DataError(
            f"{root}: classes {', '.join(found)} do not match {path}'s {', '.join(saved)} (the "
            "same names, in the same sorted order, are needed)"
        )


def check_same_data(saved: object, found: Mapping[str, str], path: Path, root: Path) -> None:
    """A resumed run trains and is measured on the images it started with (`found`: the
    fingerprint of each split): the same root path is not enough (another folder with the same
    class names, files replaced), nor needed (the data moved). Checkpoints written before
    fingerprints existed are not checked."""
    if not isinstance(saved, dict):
        return
    for split, fingerprint in found.items():
        if saved.get(split) != fingerprint:
            raise DataError(
                f"{root}: its {split} images are not those {path} was trained and measured on "
                f"(fingerprint {fingerprint}, not {saved.get(split)}); resume with the run's own "
                "data (data.root, data.train_subset, data.test_subset), or start a new run"
            )


def check_same_model(saved: Config, wanted: Config, path: Path) -> None:
    """Refuse to load weights into a different architecture, naming what differs."""
    differences = [
        f"model.{key} is {saved_value!r} in the checkpoint, {wanted_value!r} in the config"
        for key, saved_value in saved.model.model_dump().items()
        if (wanted_value := getattr(wanted.model, key)) != saved_value
    ]
    if differences:
        raise CheckpointError(f"{path}: checkpoint does not fit: {'; '.join(differences)}")
