"""CSV writing that spreadsheets cannot turn into formulas."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> str:
    """Text a spreadsheet shows as typed: a leading quote stops formula evaluation and keeps
    the value readable (``'=1+2``). Numbers are left alone; only text can carry a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


LINES_PER_CHUNK = 500
_TRIGGERS = frozenset(FORMULA_TRIGGERS)


def _cell(value: Any) -> str:
    # neutralise_cell with the common case first: exports run it on every cell.
    if value.__class__ is str:
        return "'" + value if value[:1] in _TRIGGERS else value
    return neutralise_cell(value)


def csv_lines(
    header: Sequence[str], rows: Iterable[Sequence[Any]], lineterminator: str = "\r\n"
) -> Iterator[str]:
    """Yield CSV text a few hundred lines at a time, so a response or a file can stream it
    without paying for a write per line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=lineterminator)
    writer.writerow(header)
    chunk: list[list[str]] = []
    for row in rows:
        chunk.append([_cell(cell) for cell in row])
        if len(chunk) == LINES_PER_CHUNK:
            writer.writerows(chunk)
            chunk.clear()
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    writer.writerows(chunk)
    yield buffer.getvalue()
