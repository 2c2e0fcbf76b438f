"""User-given strings (paths, class folder names, grid values) where one line is expected."""

from __future__ import annotations


def one_line(text: str) -> str:
    """`a<newline>b` -> `a\\nb`: each character that is not printable (line breaks, tabs,
    terminal escape codes) as its Python escape, so that a folder's name cannot split a message
    in two or restyle the terminal; everything else as it is."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )
