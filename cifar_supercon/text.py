"""User-given strings (paths, class folder names, grid values) where one line is expected: a
message, a Markdown table's row."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable


def one_line(text: str) -> str:
    """`a<newline>b` -> `a\\nb`: each character that is not printable (line breaks, tabs,
    terminal escape codes) as its Python escape, so that a folder's name cannot split a message
    in two or restyle the terminal; everything else as it is."""
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def _escaped(character: str) -> str:
    """A character as its Python escape; a byte of a file name that the file system's encoding
    does not decode (Python reads it as a lone surrogate, U+DC80..U+DCFF) as the byte it is,
    `\\xff`, as `ls` and bash's $'...' show it, not as `\\udcff`."""
    if _is_odd_byte(character):
        return f"\\x{ord(character) - 0xDC00:02x}"
    return character.encode("unicode_escape").decode("ascii")


def _is_odd_byte(character: str) -> bool:
    """A byte of a file name that the file system's encoding does not decode, as Python reads it
    (a lone surrogate, U+DC80..U+DCFF)."""
    return "\udc80" <= character <= "\udcff"


def not_utf8(text: str) -> str | None:
    """`not UTF-8 text (the byte \\xff)` where `text` (a path, a folder's name) holds what a
    UTF-8 file cannot: a byte that the file system's encoding does not decode. None where it
    can be written as it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        character = text[e.start]
        what = "byte" if _is_odd_byte(character) else "character"
        return f"not UTF-8 text (the {what} {_escaped(character)})"
    return None


def quoted(text: str) -> str:
    """`repr(text)`, one line and ASCII-safe, with an undecodable byte shown as `one_line` shows
    it (`'root\\xff'`, not `'root\\udcff'`). repr doubles every backslash of the text itself, so
    an escape is `\\udcNN` after an even number of backslashes."""
    return re.sub(
        r"(\\*)\\u(dc[89a-f][0-9a-f])",
        lambda m: m[0] if len(m[1]) % 2 else f"{m[1]}{_escaped(chr(int(m[2], 16)))}",
        repr(text),
    )


def table_row(cells: Iterable[str]) -> str:
    """`| a | b\\|c |`: a Markdown table row whose cells stay cells, each on one line with its
    backslashes and pipes escaped (a class folder `a|b` would otherwise add a column)."""
    escaped = (one_line(cell).replace("\\", "\\\\").replace("|", "\\|") for cell in cells)
    return "| " + " | ".join(escaped) + " |"


def shell_join(words: Iterable[str], encoding: str = "utf-8") -> str:
    """A command line that runs as printed in a POSIX shell when shown in `encoding`: each word
    shlex-quoted, except one that holds a character the shell would not get back from the
    printed text (a line break, a control code, a name the terminal's encoding cannot show, a
    byte that is not valid in the file system's encoding): that word is written as bash's
    $'...' with such characters as \\xNN escapes of their bytes."""
    return " ".join(_shell_word(word, encoding) for word in words)


def _shell_word(word: str, encoding: str) -> str:
    if all(_shows_as_itself(c, encoding) for c in word):
        return shlex.quote(word)
    escaped = "".join(
        c if _shows_as_itself(c, encoding) and c not in "'\\" else _byte_escapes(c) for c in word
    )
    return f"$'{escaped}'"


def _shows_as_itself(character: str, encoding: str) -> bool:
    try:
        character.encode(encoding)
    except UnicodeError:  # not in the terminal's encoding, or a lone surrogate (an odd byte)
        return False
    return character.isprintable()


def _byte_escapes(character: str) -> str:
    return "".join(f"\\x{byte:02x}" for byte in os.fsencode(character))
