"""CSV cells a spreadsheet will not run as a formula.

A cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some
spreadsheets skip before looking for one) is read by Excel and LibreOffice as a formula:
``=HYPERLINK(...)`` in a case number or a user agent would become a live link in an
investigator's copy of an export.  Such a cell is written with a leading ``'``, which the
spreadsheet shows as text.  A cell that already starts with ``'`` gets one as well, so that
:func:`original` can undo the change exactly: an export's cells can still be compared with the
records they came from (the audit export with its hash chain).

A foundation: imports nothing of pscs, so every layer that writes CSV may use it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_ESCAPE = "'"


def cell(value: Any) -> Any:
    """``value`` as it is safe to write: text that could start a formula, prefixed with ``'``;
    numbers and everything else unchanged (a negative number is a number, not a formula)."""
    if isinstance(value, str) and value.startswith((*FORMULA_STARTS, _ESCAPE)):
        return _ESCAPE + value
    return value


def original(text: str) -> str:
    """The text a cell written through :func:`cell` held before it was made safe."""
    return text[1:] if text.startswith(_ESCAPE) else text


def row(values: Iterable[Any]) -> list[Any]:
    return [cell(v) for v in values]


class Writer:
    """``csv.writer`` whose every cell goes through :func:`cell`."""

    def __init__(self, stream: Any, **options: Any) -> None:
        self._writer = csv.writer(stream, **options)

    def writerow(self, values: Iterable[Any]) -> None:
        self._writer.writerow(row(values))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for values in rows:
            self.writerow(values)


class DictWriter(csv.DictWriter):
    """``csv.DictWriter`` whose every cell goes through :func:`cell`."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({k: cell(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for rowdict in rowdicts:
            self.writerow(rowdict)
