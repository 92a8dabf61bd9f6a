"""Markdown tables for the chapters: numbers in, a table that Jupyter renders out."""

from __future__ import annotations

import math
from typing import Iterable, Sequence


class MarkdownNote(str):
    """A block of Markdown; shown rendered when it is the value of a cell (empty: shows nothing)."""

    def _repr_markdown_(self) -> str | None:
        return str(self) or None


class MarkdownTable(MarkdownNote):
    """A GitHub-flavoured Markdown table; shown as a rendered table when it is the value of a cell."""


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


#: What a reader does to check the real-data claims (the variable is read by ``nadlib.cifar_data``).
REAL_DATA_HINT = ("To check them, run the chapter with the real CIFAR-10: on a machine with internet access it is "
                  "downloaded once by torchvision; offline, set `NADLIB_CIFAR10_NPZ` to a local `.npz` copy "
                  "(format: the docstring of `nadlib.load_cifar10`).")


def claims_not_checked(data_source: str, claims: Sequence[str]) -> MarkdownNote:
    """The note a chapter shows when it ran on the synthetic stand-in images instead of CIFAR-10.

    ``data_source`` is the ``"source"`` of :func:`nadlib.cifar_data`; ``claims`` are the claims about real
    CIFAR-10 that the chapter therefore did not check.  On real data the note is empty (nothing is shown).

    Raises:
        ValueError: no claims given, or an empty claim.
    """
    claims = [str(c).strip() for c in claims]
    if not claims or not all(claims):
        raise ValueError("name at least one claim, each a non-empty string")
    if "synthetic" not in str(data_source):
        return MarkdownNote("")
    items = "\n".join(f"- {c}" for c in claims)
    return MarkdownNote(f"**Not checked in this run.**  CIFAR-10 could not be had here, so this chapter ran on "
                        f"{data_source}.  These claims hold on CIFAR-10 and are asserted only there:\n\n"
                        f"{items}\n\n{REAL_DATA_HINT}")


class PlainText(str):
    """A string whose plain-text display has no quotes (so that ``{glue:text}`` cites it as prose)."""

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def glue(name: str, value, display: bool = False):
    """Store ``value`` under ``name`` for the chapter's prose (``{glue:text}`name:.3f``` in a Markdown cell).

    This is MyST-NB's ``glue`` when it is installed (a Jupyter Book build, ``make lab``); elsewhere (Colab,
    a bare Jupyter) the value is only shown when ``display`` is true, and the Markdown cites nothing.
    A string is cited without quotes, a numpy or torch scalar as the plain number.  Returns ``value``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a glue name is an identifier such as 'lenet_acc', got {name!r}")
    if isinstance(value, str) and not isinstance(value, PlainText):
        value = PlainText(value)
    elif hasattr(value, "item") and getattr(value, "shape", None) == ():  # a numpy / torch scalar
        value = value.item()  # cited as 0.5, not np.float64(0.5), and formats such as :.3f apply
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show
            show(value)
        return value
    myst_glue(name, value, display=display)
    return value
