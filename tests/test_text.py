"""Command lines printed for the user run as printed, whatever the words hold."""

from __future__ import annotations

import os
import subprocess

import pytest

from cifar_supercon.text import shell_join

WORDS = [
    "runs/plain",
    "sp ace",
    "it's",
    "über",
    "line\nbreak",
    "tab\tand\x1b[31mescape",
    "back\\slash",
    "odd byte \udcfc",  # a file name that is not valid UTF-8, as Python reads it
    "",
]


@pytest.mark.parametrize("encoding", ["utf-8", "ascii", "latin-1"])
def test_each_word_reaches_the_shell_as_it_was(encoding: str) -> None:
    line = shell_join(WORDS, encoding)
    assert "\n" not in line and line.isprintable()
    line.encode(encoding)  # shows in the terminal's encoding, nothing escaped by Python
    argv = subprocess.run(
        ["bash", "-c", f"printf '%s\\0' {line}"], capture_output=True, check=True
    ).stdout.split(b"\0")[:-1]
    assert argv == [os.fsencode(word) for word in WORDS]


def test_words_a_terminal_shows_are_quoted_as_usual() -> None:
    assert (
        shell_join(["train", "--resume", "runs/a b", "über"]) == "train --resume 'runs/a b' 'über'"
    )
    assert shell_join(["über"], "ascii") == "$'\\xc3\\xbcber'"
