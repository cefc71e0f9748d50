"""The SAS XPORT v5 writer against ReadStat's own writer and reader (pyreadstat)."""

from __future__ import annotations

import io
import math
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.exchange.xport import XportError, XportVariable, XportWriter, ibm_float

CREATED = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _readstat_bytes(values: list[float], tmp_path: Path) -> list[bytes]:
    """How ReadStat writes each number (its observations, 8 bytes each)."""
    path = tmp_path / "readstat.xpt"
    pyreadstat.write_xport(pd.DataFrame({"X": values}), str(path), file_format_version=5)
    data = path.read_bytes()
    start = data.index(b"HEADER RECORD*******OBS     HEADER RECORD") + 80
    return [data[start + 8 * i : start + 8 * (i + 1)] for i in range(len(values))]


def test_numbers_are_written_as_readstat_writes_them(tmp_path: Path) -> None:
    values = [0.0, 1.0, -1.0, 0.1, -118.625, 100.0, 1e-10, 123456789.125, 37.4, 2.0**-70]
    assert [ibm_float(v) for v in values] == _readstat_bytes(values, tmp_path)
    assert ibm_float(1.0).hex() == "4110000000000000"
    assert ibm_float(-118.625).hex() == "c276a00000000000"
    assert ibm_float(None) == b"." + b"\x00" * 7


def _write(variables: list[XportVariable], rows: list[list[object]], path: Path) -> None:
    with path.open("wb") as handle:
        writer = XportWriter(handle, "VS", "Vital Signs", variables, CREATED)
        for row in rows:
            writer.write_row(row)  # type: ignore[arg-type]
        writer.close()


def test_a_dataset_reads_back_with_readstat(tmp_path: Path) -> None:
    variables = [
        XportVariable("USUBJID", "Unique Subject Identifier", False, 12),
        XportVariable("VSSEQ", "Sequence Number", True, 8),
        XportVariable("VSORRES", "Result or Finding in Original Units", False, 5),
        XportVariable("VSSTRESN", "Numeric Result/Finding in Standard Units", True, 8),
    ]
    rows = [
        ["MDD-S01-0001", 1, "139", 139.0],
        ["MDD-S01-0001", 2, "37.4", 37.4],
        ["MDD-S01-0002", 3, "", None],
    ]
    path = tmp_path / "vs.xpt"
    _write(variables, rows, path)
    assert path.stat().st_size % 80 == 0
    frame, meta = pyreadstat.read_xport(str(path))
    assert meta.table_name == "VS" and meta.file_label == "Vital Signs"
    assert meta.column_names == ["USUBJID", "VSSEQ", "VSORRES", "VSSTRESN"]
    assert meta.column_labels[3] == "Numeric Result/Finding in Standard Units"
    assert meta.variable_storage_width == {"USUBJID": 12, "VSSEQ": 8, "VSORRES": 5, "VSSTRESN": 8}
    assert frame["USUBJID"].tolist() == ["MDD-S01-0001", "MDD-S01-0001", "MDD-S01-0002"]
    assert frame["VSSEQ"].tolist() == [1.0, 2.0, 3.0]
    assert frame["VSORRES"].tolist() == ["139", "37.4", ""]
    assert frame["VSSTRESN"].tolist()[:2] == [139.0, 37.4]
    assert math.isnan(frame["VSSTRESN"].tolist()[2])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e60, max_value=1e60),
        min_size=1,
        max_size=20,
    )
)
def test_any_number_reads_back_as_written(values: list[float]) -> None:
    handle = io.BytesIO()
    writer = XportWriter(handle, "T", "t", [XportVariable("X", "x", True, 8)], CREATED)
    for value in values:
        writer.write_row([value])
    writer.close()
    path = Path(tempfile.mkdtemp()) / "t.xpt"
    path.write_bytes(handle.getvalue())
    frame, _ = pyreadstat.read_xport(str(path))
    # IBM doubles keep 56 bits, IEEE 53: every value in the IBM range is exact; one below it
    # is zero.
    for read, written in zip(frame["X"].tolist(), values, strict=True):
        assert read == (written if abs(written) >= 16.0**-65 else 0.0)


def test_names_labels_and_lengths_outside_xport_v5_are_refused() -> None:
    handle = io.BytesIO()
    with pytest.raises(XportError, match="outside the range"):
        ibm_float(1e80)
    with pytest.raises(XportError, match="SAS name"):
        XportWriter(handle, "VS", "", [XportVariable("TOOLONGNAME", "x", False, 4)], CREATED)
    with pytest.raises(XportError, match="40 characters"):
        XportWriter(handle, "VS", "", [XportVariable("A", "x" * 41, False, 4)], CREATED)
    with pytest.raises(XportError, match="200 bytes"):
        XportWriter(handle, "VS", "", [XportVariable("A", "a", False, 201)], CREATED)
    writer = XportWriter(handle, "VS", "", [XportVariable("A", "a", False, 3)], CREATED)
    with pytest.raises(XportError, match="longer than 3 bytes"):
        writer.write_row(["abcd"])


def test_pandas_reads_the_same_dataset(tmp_path: Path) -> None:
    """A second independent reader. (pandas' XPORT reader turns the IBM zero into 16**-64,
    cannot read a dataset of no rows, and takes trailing blank 8-byte runs of the last
    80-byte record for padding: the dataset here has none of those.)"""
    variables = [
        XportVariable("STUDYID", "Study Identifier", False, 8),
        XportVariable("USUBJID", "Unique Subject Identifier", False, 17),
        XportVariable("EXDOSE", "Dose", True, 8),
        XportVariable("EXDOSU", "Dose Units", False, 2),
    ]
    rows = [
        ["MDMA-MDD", "MDMA-MDD-S01-0001", 120.0, "mg"],
        ["MDMA-MDD", "MDMA-MDD-S01-0002", 60.0, "mg"],
    ]
    path = tmp_path / "ex.xpt"
    _write(variables, rows, path)  # type: ignore[arg-type]
    frame = pd.read_sas(path, format="xport", encoding="utf-8")
    assert list(frame.columns) == ["STUDYID", "USUBJID", "EXDOSE", "EXDOSU"]
    assert frame.values.tolist() == rows


def test_a_dataset_of_no_rows_is_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "dv.xpt"
    variables = [XportVariable("DVTERM", "Protocol Deviation Term", False, 1)]
    with path.open("wb") as handle:
        XportWriter(handle, "DV", "Protocol Deviations", variables, CREATED).close()
    frame, meta = pyreadstat.read_xport(str(path))
    assert len(frame) == 0 and meta.column_names == ["DVTERM"]
    assert path.stat().st_size % 80 == 0
