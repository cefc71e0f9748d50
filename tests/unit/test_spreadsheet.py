from __future__ import annotations

import csv
import io

import pytest

from tracker.spreadsheet import csv_lines, neutralise_cell


@pytest.mark.parametrize(
    "raw", ["=1+2", "+33", "-2+3", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("x")']
)
def test_formula_cells_are_neutralised_without_losing_the_value(raw: str) -> None:
    assert neutralise_cell(raw) == "'" + raw


@pytest.mark.parametrize(
    "raw,expected", [("plain", "plain"), (-5, "-5"), (2.5, "2.5"), (None, ""), (True, "true")]
)
def test_other_cells_are_unchanged(raw: object, expected: str) -> None:
    assert neutralise_cell(raw) == expected


def test_csv_lines_read_back_with_the_csv_module() -> None:
    text = "".join(csv_lines(["a", "b"], [["=cmd", "x,y"], ["line\nbreak", 3]]))
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [["a", "b"], ["'=cmd", "x,y"], ["line\nbreak", "3"]]
