"""The SDTM datasets written out as CSV, SAS XPORT v5 or CDISC Dataset-JSON 1.1.

One pass over the study spools each domain's rows to a temporary file (a JSON array a line)
while it measures each text variable's longest value and counts the rows: XPORT and
Dataset-JSON both declare lengths and counts before the rows. The datasets are then written
from the spools, so memory stays that of one batch of participants however large the study.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from tracker.exchange import sdtm
from tracker.exchange.scope import ExportScope
from tracker.exchange.source import source_version, subjects
from tracker.exchange.xport import XportVariable, XportWriter

DATASET_JSON_VERSION = "1.1.0"


@dataclass
class Spool:
    domain: sdtm.Domain
    variables: list[sdtm.Variable]
    handle: IO[str]
    rows: int = 0
    lengths: dict[str, int] = field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        values = [row.get(v.name) for v in self.variables]
        for variable, value in zip(self.variables, values, strict=True):
            if not variable.numeric and value is not None:
                size = len(str(value).encode("utf-8"))
                if size > self.lengths.get(variable.name, 0):
                    self.lengths[variable.name] = size
        self.handle.write(json.dumps(values, ensure_ascii=False) + "\n")
        self.rows += 1

    def values(self) -> Iterator[list[Any]]:
        self.handle.seek(0)
        for line in self.handle:
            yield json.loads(line)

    def length(self, variable: sdtm.Variable) -> int:
        return 8 if variable.numeric else max(1, self.lengths.get(variable.name, 1))


@dataclass(frozen=True)
class Written:
    """What an SDTM export wrote: the rows per dataset (``STUDYID/DOMAIN``) and the files."""

    rows: dict[str, int]
    files: list[Path]
    participants: int


def _csv_value(variable: sdtm.Variable, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _write_csv(spool: Spool, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([v.name for v in spool.variables])
        for values in spool.values():
            writer.writerow(
                [_csv_value(v, value) for v, value in zip(spool.variables, values, strict=True)]
            )


def _write_xpt(spool: Spool, path: Path, created: datetime) -> None:
    variables = [
        XportVariable(v.name, v.label, v.numeric, spool.length(v)) for v in spool.variables
    ]
    with path.open("wb") as handle:
        writer = XportWriter(handle, spool.domain.code, spool.domain.label, variables, created)
        for values in spool.values():
            writer.write_row(values)
        writer.close()


def _dataset_json_type(variable: sdtm.Variable, values_integer: bool) -> str:
    if not variable.numeric:
        return "string"
    return "integer" if values_integer else "double"


def _write_json(
    spool: Spool,
    path: Path,
    created: datetime,
    study_oid: str | None,
    integers: dict[str, bool],
) -> None:
    columns = []
    for variable in spool.variables:
        column: dict[str, Any] = {
            "itemOID": f"IT.{spool.domain.code}.{variable.name}",
            "name": variable.name,
            "label": variable.label,
            "dataType": _dataset_json_type(variable, integers.get(variable.name, False)),
        }
        if not variable.numeric:
            column["length"] = spool.length(variable)
        if variable.key is not None:
            column["keySequence"] = variable.key
        columns.append(column)
    head = {
        "datasetJSONCreationDateTime": created.strftime("%Y-%m-%dT%H:%M:%S"),
        "datasetJSONVersion": DATASET_JSON_VERSION,
        "fileOID": f"tracker.{spool.domain.code}.{created:%Y%m%dT%H%M%S}",
        "originator": "tracker",
        "sourceSystem": {"name": "tracker", "version": source_version()},
        **({"studyOID": study_oid} if study_oid else {}),
        "itemGroupOID": f"IG.{spool.domain.code}",
        "records": spool.rows,
        "name": spool.domain.code,
        "label": spool.domain.label,
        "columns": columns,
    }
    with path.open("w", encoding="utf-8") as handle:
        text = json.dumps(head, ensure_ascii=False)
        handle.write(text[:-1] + ', "rows": [')
        for index, values in enumerate(spool.values()):
            if integers:
                values = [
                    int(value) if integers.get(v.name) and isinstance(value, float) else value
                    for v, value in zip(spool.variables, values, strict=True)
                ]
            handle.write(("," if index else "") + json.dumps(values, ensure_ascii=False))
        handle.write("]}")


def write_sdtm(db: Session, scope: ExportScope, fmt: str, directory: Path) -> Written:
    """Every domain of ``scope``'s participants into ``directory``, one folder per study
    (``mdma-mdd/dm.xpt``...): each protocol is a study of its own to a sponsor, as in ODM."""
    directory.mkdir(parents=True, exist_ok=True)
    created = datetime.now(UTC).replace(microsecond=0)
    spools: dict[str, list[Spool]] = {}  # STUDYID -> a spool per domain
    integers: dict[tuple[str, str], dict[str, bool]] = {}
    participants = 0
    with tempfile.TemporaryDirectory(prefix="tracker-sdtm-") as scratch:

        def spools_of(study: str) -> list[Spool]:
            if study not in spools:
                spools[study] = []
                for domain in sdtm.DOMAINS:
                    handle = open(  # noqa: SIM115 - closed with the scratch directory below
                        Path(scratch) / f"{study}-{domain.code}.jsonl", "w+", encoding="utf-8"
                    )
                    spools[study].append(Spool(domain, domain.variables, handle))
                    integers[(study, domain.code)] = {
                        v.name: True for v in domain.variables if v.numeric
                    }
            return spools[study]

        try:
            for subject in subjects(db, scope.query(), arms=scope.arms):
                participants += 1
                context = sdtm.context_of(subject)
                study = context["studyid"]
                for spool in spools_of(study):
                    whole = integers[(study, spool.domain.code)]
                    for row in spool.domain.rows(subject, scope, context):
                        for name in whole:
                            value = row.get(name)
                            if isinstance(value, float) and not value.is_integer():
                                whole[name] = False
                        spool.add(row)
            files = []
            for study, study_spools in sorted(spools.items()):
                folder = directory / study.lower()
                folder.mkdir(exist_ok=True)
                for spool in study_spools:
                    path = folder / f"{spool.domain.code.lower()}.{fmt}"
                    spool.handle.flush()
                    if fmt == "csv":
                        _write_csv(spool, path)
                    elif fmt == "xpt":
                        _write_xpt(spool, path, created)
                    else:
                        whole = integers[(study, spool.domain.code)]
                        _write_json(spool, path, created, f"ST.{study}", whole)
                    files.append(path)
        finally:
            for study_spools in spools.values():
                for spool in study_spools:
                    spool.handle.close()
    rows = {
        f"{study}/{spool.domain.code}": spool.rows
        for study, study_spools in sorted(spools.items())
        for spool in study_spools
    }
    return Written(rows, files, participants)


def write_sdtm_zip(db: Session, scope: ExportScope, fmt: str, handle: IO[bytes]) -> Written:
    """``write_sdtm`` into a scratch folder, then the folder into ``handle`` as a ZIP (a
    folder per study); the scratch folder is removed whatever happens."""
    scratch = Path(tempfile.mkdtemp(prefix="tracker-sdtm-"))
    try:
        written = write_sdtm(db, scope, fmt, scratch)
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for path in sorted(scratch.rglob("*")):
                if path.is_file():
                    bundle.write(path, path.relative_to(scratch).as_posix())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return written
