"""Exceptions that the CLI turns into one-line messages and exit codes.

Library code raises these with a message that names the file, key or value at fault and what is
allowed; the CLI prints the message and exits with `exit_code`. Anything else is a bug or an
unexpected runtime failure (exit 1, traceback with --debug).
"""

from __future__ import annotations

from pathlib import Path

from .text import shell_join

# A stop outside a run's own checkpointing.
STOPPED_BY_SIGNAL = "interrupted (Ctrl-C, SIGTERM or SIGHUP)"


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type's name when the message is empty."""
    lines = str(error).strip().splitlines()
    return lines[0].strip() if lines else type(error).__name__


def describe(error: BaseException) -> str:
    """`KeyError: 'config'`: the type and the first line of an unexpected error's message."""
    if not str(error).strip():
        return type(error).__name__
    return f"{type(error).__name__}: {first_line(error)}"[:160]


class SuperconError(Exception):
    """A failure the user can act on. Exit code 1: the command was fine, the world was not."""

    exit_code = 1


class UsageError(SuperconError):
    """The command line or the config asks for something impossible (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """One or more config problems, each a line `source: key.path: what is wrong (allowed)`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ValueRefused(ConfigError):
    """A config value that passed loading but does not fit what came later (a subset or a batch
    larger than the data set): `key: what`, to which the config adds the file or option that
    set the key (config.blamed)."""

    def __init__(self, key: str, what: str) -> None:
        self.key = key
        self.what = what
        super().__init__([f"{key}: {what}"])


class DataError(SuperconError):
    """The data set is missing, unreadable or malformed."""


class InsufficientMemory(SuperconError):
    """The configured model and batch cannot fit in the device's memory."""


class CheckpointError(SuperconError):
    """A checkpoint is missing, truncated, unsafe or does not fit the model."""


class RunFileError(SuperconError):
    """A file of a run or sweep folder (metrics.csv, summary.json) is damaged or foreign."""


class FolderInUse(SuperconError):
    """A run or sweep folder that another live process holds locked; `holder` names that
    process ('process 4242')."""

    def __init__(self, message: str, holder: str) -> None:
        self.holder = holder
        super().__init__(message)


class RunConfigError(ConfigError):
    """A run's own config.yaml no longer loads. The tool wrote it, so it was damaged or edited
    since: a runtime failure (exit 1), like any other damaged run file, though it reads as config
    problems, one line each."""

    exit_code = 1


class TrainingDiverged(SuperconError):
    """The training loss stopped being finite."""


class Interrupted(SuperconError):
    """SIGINT/SIGTERM/SIGHUP: the run saved a checkpoint and can be resumed (exit code 130).

    `reason` says what stopped where; `resume` is the run to continue, which the CLI turns into a
    command that runs as printed from where the user is.
    """

    exit_code = 130

    def __init__(self, reason: str, resume: Path | None = None) -> None:
        self.reason = reason
        self.resume = resume
        hint = ""
        if resume is not None:
            hint = f"; resume with: {shell_join(['supercon', 'train', '--resume', str(resume)])}"
        super().__init__(reason + hint)
