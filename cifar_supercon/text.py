"""User-given strings (paths, class folder names, grid values) where one line is expected: a
message, a Markdown table's row."""

from __future__ import annotations

from collections.abc import Iterable


def one_line(text: str) -> str:
    """`a<newline>b` -> `a\\nb`: each character that is not printable (line breaks, tabs,
    terminal escape codes) as its Python escape, so that a folder's name cannot split a message
    in two or restyle the terminal; everything else as it is."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def table_row(cells: Iterable[str]) -> str:
    """`| a | b\\|c |`: a Markdown table row whose cells stay cells, each on one line with its
    backslashes and pipes escaped (a class folder `a|b` would otherwise add a column)."""
    escaped = (one_line(cell).replace("\\", "\\\\").replace("|", "\\|") for cell in cells)
    return "| " + " | ".join(escaped) + " |"
