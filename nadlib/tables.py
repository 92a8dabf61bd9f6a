"""Markdown tables for the chapters: numbers in, a table that Jupyter renders out."""

from __future__ import annotations

import math
from typing import Iterable, Sequence


class MarkdownTable(str):
    """A GitHub-flavoured Markdown table; shown as a rendered table when it is the value of a cell."""

    def _repr_markdown_(self) -> str:
        return str(self)


def _cell(value, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"):
        return f"{int(value):,}"
    if isinstance(value, float) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") == "f"):
        value = float(value)
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence], *, digits: int = 3,
                   caption: str | None = None) -> MarkdownTable:
    """A Markdown table: ``headers`` and one sequence of cells per row.

    Floats get ``digits`` decimals (NaN shows as "–"), ints thousands separators, ``None`` an empty cell;
    anything else is shown with ``str`` (``|`` escaped).  ``caption`` is put in italics above the table.

    Raises:
        ValueError: a row with a different number of cells than ``headers``.
    """
    headers = [str(h) for h in headers]
    if not headers:
        raise ValueError("a table needs at least one column")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for i, row in enumerate(rows):
        row = list(row)
        if len(row) != len(headers):
            raise ValueError(f"row {i} has {len(row)} cells, the table has {len(headers)} columns")
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    text = "\n".join(lines)
    if caption:
        text = f"*{caption}*\n\n{text}"
    return MarkdownTable(text)
