"""Data exchange (SPEC §13) on the demo study, each export read back by a reader no one here
wrote: the ODM 1.3.2 schema shipped in odmlib (with xmlschema) and odmlib's loader; ReadStat
(pyreadstat) and pandas for SAS XPORT; odmlib's Dataset-JSON model; fhir.resources' R4B
models. On SQLite and PostgreSQL, through the command line, the API and the pages."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyreadstat
import pytest
import sqlalchemy as sa
import xmlschema
from fhir.resources.R4B.bundle import Bundle
from odmlib import loader as odm_loader_module
from odmlib import odm_loader
from odmlib.dataset_json_1_1.model import DatasetJSON

from tests.conftest import make_test_app
from tests.factories import FACTORY_ACTOR
from tests.reliability.seed import seed_demo_study
from tests.support.databases import BACKENDS, scratch_database
from tracker.audit.models import AuditEvent
from tracker.auth.models import User
from tracker.auth.services import create_api_token
from tracker.db import get_database
from tracker.dosing.models import DoseAdministration, VitalSignReading
from tracker.participants.models import ChecklistSignature, Participant
from tracker.randomisation.models import RandomisationEntry
from tracker.safety.models import AdverseEvent
from tracker.sessions.models import TherapySession

ODM_NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}
ODM_XSD = Path(odm_loader.__file__).parent / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
DOMAINS = ("dm", "ds", "ex", "vs", "ae", "qs", "sv", "dv")
ARM_WORDS = re.compile(r"midomafetamine|placebo", re.IGNORECASE)
# FHIR R4's required value sets, as the specification lists them (fhir.resources checks the
# shape of a resource, not its codes).
RESEARCH_SUBJECT_STATUSES = {
    "candidate", "eligible", "follow-up", "ineligible", "not-registered", "off-study",
    "on-study", "on-study-intervention", "on-study-observation", "pending-on-study",
    "potential-candidate", "screening", "withdrawn",
}  # fmt: skip
OBSERVATION_STATUSES = {"registered", "preliminary", "final", "amended"}
VITAL_SIGN_LOINC = {"85354-9", "8867-4", "8310-5"}


class Demo:
    def __init__(self, url: str, instance: Path, tokens: dict[str, str]) -> None:
        self.url = url
        self.instance = instance
        self.tokens = tokens
        self.app = make_test_app(url, str(instance))
        self.database = get_database(self.app)

    def cli(self, *args: str) -> str:
        result = self.app.test_cli_runner().invoke(args=list(args))
        assert result.exit_code == 0, result.output
        return str(result.output)

    def get(self, path: str, role: str) -> Any:
        return self.app.test_client().get(
            path, headers={"Authorization": f"Bearer {self.tokens[role]}"}
        )

    def exports(self) -> list[AuditEvent]:
        with self.database.session_scope() as db:
            events = list(
                db.scalars(sa.select(AuditEvent).where(AuditEvent.action == "data.export"))
            )
            db.expunge_all()
            return events


@pytest.fixture(scope="module", params=BACKENDS)
def demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp(f"exchange-{request.param}")
    with scratch_database(str(request.param), tmp) as url:
        tokens = seed_demo_study(url, tmp / "instance")
        study = Demo(url, tmp / "instance", tokens)
        with study.database.session_scope() as db:
            statistician = db.scalars(sa.select(User).where(User.role == "statistician")).one()
            tokens["statistician"] = create_api_token(db, FACTORY_ACTOR, statistician)
        yield study
        study.database.engine.dispose()


def _participants(demo: Demo) -> int:
    with demo.database.session_scope() as db:
        return int(db.scalar(sa.select(sa.func.count()).select_from(Participant)) or 0)


# --- ODM ---------------------------------------------------------------------------------


def _load_odm(path: Path) -> Any:
    reader = odm_loader_module.ODMLoader(
        odm_loader.XMLODMLoader(model_package="odm_1_3_2", ns_uri=ODM_NS["odm"])
    )
    reader.open_odm_document(str(path))
    return reader.load_odm()


def test_the_demo_odm_validates_against_the_schema_and_reads_back(
    demo: Demo, tmp_path: Path
) -> None:
    path = tmp_path / "study.xml"
    output = demo.cli("export", "odm", "-o", str(path))
    assert "blinded: no arms" in output
    schema = xmlschema.XMLSchema(str(ODM_XSD))
    errors = [f"{e.path}: {e.reason}" for e in schema.iter_errors(str(path))]
    assert errors == []

    odm = _load_odm(path)
    assert odm.ODMVersion == "1.3.2" and odm.FileType == "Snapshot"
    subjects = [s for data in odm.ClinicalData for s in data.SubjectData]
    assert len(subjects) == _participants(demo)
    assert {s.OID for s in odm.Study} == {"ST.MDMA-MDD", "ST.MDMA-AT"}
    metadata = {mdv.OID: mdv for study in odm.Study for mdv in study.MetaDataVersion}
    for data in odm.ClinicalData:
        assert data.MetaDataVersionOID in metadata
    users = {u.OID for admin in odm.AdminData for u in admin.User}
    locations = {loc.OID for admin in odm.AdminData for loc in admin.Location}
    definitions = {d.OID for admin in odm.AdminData for d in admin.SignatureDef}

    with demo.database.session_scope() as db:
        hashes = dict(db.execute(sa.select(AuditEvent.seq, AuditEvent.hash)).all())
        signatures = int(db.scalar(sa.select(sa.func.count()).select_from(ChecklistSignature)) or 0)
        readings = int(db.scalar(sa.select(sa.func.count()).select_from(VitalSignReading)) or 0)

    groups = Counter()
    signed = 0
    for subject in subjects:
        for event in subject.StudyEventData:
            for form in event.FormData:
                for group in form.ItemGroupData:
                    groups[group.ItemGroupOID] += 1
                    # Every record carries who wrote it, where, when, from the chain.
                    record = group.AuditRecord
                    assert record is not None, (subject.SubjectKey, group.ItemGroupOID)
                    assert record.UserRef.UserOID in users
                    assert record.LocationRef.LocationOID in locations
                    seq, digest = re.fullmatch(
                        r"audit event (\d+) \([a-z_.]+\), hash ([0-9a-f]{64})",
                        record.SourceID._content,
                    ).groups()  # type: ignore[union-attr]
                    assert hashes[int(seq)] == digest
                    if group.Signature is not None:
                        signed += 1
                        assert group.Signature.SignatureRef.SignatureOID in definitions
                        assert group.Signature.UserRef.UserOID in users
                    for item in group.ItemData:
                        assert item.ItemOID != "IT.ARM"
    assert signed == signatures > 0
    assert groups["IG.VITALS"] == readings > 0
    assert groups["IG.DEMOGRAPHY"] == len(subjects)
    # The item and code-list definitions every item group names are in its metadata.
    for version in metadata.values():
        defined = {item.OID for item in version.ItemDef}
        for group in version.ItemGroupDef:
            assert {ref.ItemOID for ref in group.ItemRef} <= defined
        assert all(item.OID != "IT.ARM" for item in version.ItemDef)
    assert not ARM_WORDS.search(path.read_text(encoding="utf-8"))


def test_odm_with_the_arms_names_each_randomised_participants_arm(
    demo: Demo, tmp_path: Path
) -> None:
    path = tmp_path / "unblinded.xml"
    demo.cli("export", "odm", "-o", str(path), "--arms")
    assert list(xmlschema.XMLSchema(str(ODM_XSD)).iter_errors(str(path))) == []
    with demo.database.session_scope() as db:
        arms = dict(
            db.execute(
                sa.select(Participant.study_id, RandomisationEntry.arm).join(
                    RandomisationEntry, RandomisationEntry.participant_id == Participant.id
                )
            ).all()
        )
    assert arms
    found = {}
    for subject in (s for data in _load_odm(path).ClinicalData for s in data.SubjectData):
        for item in subject.StudyEventData[0].FormData[0].ItemGroupData[0].ItemData:
            if item.ItemOID == "IT.ARM":
                found[subject.SubjectKey] = item.Value
    assert found == arms


# --- SDTM --------------------------------------------------------------------------------


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _same(a: Any, b: Any) -> bool:
    if a in ("", None) or (isinstance(a, float) and pd.isna(a)):
        return b in ("", None) or (isinstance(b, float) and pd.isna(b))
    if isinstance(a, int | float) or isinstance(b, int | float):
        # pandas' XPORT reader turns the IBM zero (eight zero bytes, as ReadStat writes it
        # too) into 16**-64: within that, a number is the same.
        return math.isclose(float(a), float(b), abs_tol=1e-70)
    return str(a) == str(b)


def test_the_demo_sdtm_datasets_read_back_in_every_format(demo: Demo, tmp_path: Path) -> None:
    for fmt in ("csv", "xpt", "json"):
        output = demo.cli("export", "sdtm", "--format", fmt, "-o", str(tmp_path / fmt))
        assert f"{_participants(demo)} participants written" in output
    for domain in DOMAINS:
        rows = _csv(tmp_path / "csv" / f"{domain}.csv")
        names = list(rows[0]) if rows else []
        # SAS XPORT v5, read by ReadStat and by pandas.
        frame, meta = pyreadstat.read_xport(str(tmp_path / "xpt" / f"{domain}.xpt"))
        assert meta.table_name == domain.upper()
        assert len(frame) == len(rows)
        for name in meta.column_names:
            assert len(name) <= 8 and name.isupper()
        for label in meta.column_labels:
            assert label and len(label) <= 40
        for name, width in meta.variable_storage_width.items():
            assert width <= 200
            if meta.readstat_variable_types[name] == "string" and rows:
                # Each text variable is as long as its longest value, no longer.
                assert width == max(1, max(len(r[name].encode()) for r in rows)), name
        if rows:
            assert list(frame.columns) == names
            by_pandas = pd.read_sas(
                tmp_path / "xpt" / f"{domain}.xpt", format="xport", encoding="utf-8"
            )
            assert list(by_pandas.columns) == names and len(by_pandas) == len(rows)
            for index in (0, len(rows) // 2, len(rows) - 1):
                for name in names:
                    assert _same(frame.iloc[index][name], rows[index][name]), (domain, name)
                    assert _same(by_pandas.iloc[index][name], rows[index][name]), (domain, name)
        # Dataset-JSON 1.1, read by odmlib's model.
        dataset = DatasetJSON.read_json(str(tmp_path / "json" / f"{domain}.json"))
        assert dataset.name == domain.upper() and dataset.records == len(rows)
        assert dataset.column_names == (names or dataset.column_names)
        assert len(dataset.rows or []) == len(rows)
        for values, row in zip(dataset.rows or [], rows, strict=True):
            assert all(_same(v, row[n]) for v, n in zip(values, names, strict=True))
        # The natural keys are unique.
        key = [c.name for c in sorted(dataset.columns, key=lambda c: c.keySequence or 99)][:3]
        if domain != "sv":
            assert len({tuple(r[k] for k in key) for r in rows}) == len(rows), domain
    dm = _csv(tmp_path / "csv" / "dm.csv")
    assert {"ARM", "ARMCD", "ACTARM", "ACTARMCD"}.isdisjoint(dm[0])
    assert {r["SEX"] for r in dm} <= {"M", "F", "U"}
    assert len({r["USUBJID"] for r in dm}) == len(dm) == _participants(demo)
    vs = _csv(tmp_path / "csv" / "vs.csv")
    assert {r["VSTESTCD"] for r in vs} == {"SYSBP", "DIABP", "PULSE", "TEMP"}
    assert {r["AESER"] for r in _csv(tmp_path / "csv" / "ae.csv")} <= {"Y", "N"}
    for domain in DOMAINS:
        assert not ARM_WORDS.search((tmp_path / "csv" / f"{domain}.csv").read_text())


def test_hand_worked_rows_of_one_participant(demo: Demo, tmp_path: Path) -> None:
    """One participant's DM, EX and VS rows against their records, worked out here."""
    demo.cli("export", "sdtm", "--format", "csv", "-o", str(tmp_path))
    with demo.database.session_scope() as db:
        participant = db.scalars(
            sa.select(Participant)
            .join(TherapySession, TherapySession.participant_id == Participant.id)
            .join(DoseAdministration, DoseAdministration.session_id == TherapySession.id)
            .order_by(Participant.study_id)
        ).first()
        assert participant is not None
        study_id, code, sex = (
            participant.study_id,
            participant.protocol_version.code,
            participant.sex,
        )
        doses = list(
            db.execute(
                sa.select(DoseAdministration.amount_mg, DoseAdministration.administered_at)
                .join(TherapySession, TherapySession.id == DoseAdministration.session_id)
                .where(TherapySession.participant_id == participant.id)
                .order_by(DoseAdministration.administered_at)
            ).all()
        )
        readings = list(
            db.scalars(
                sa.select(VitalSignReading)
                .join(TherapySession, TherapySession.id == VitalSignReading.session_id)
                .where(TherapySession.participant_id == participant.id)
                .order_by(TherapySession.scheduled_at, VitalSignReading.measured_at)
            )
        )
        first = readings[0]
        first_values = (first.systolic, first.diastolic, first.heart_rate, first.temperature_c)
        first_at = first.measured_at
    usubjid = f"{code.upper()}-{study_id}"
    dm = [r for r in _csv(tmp_path / "dm.csv") if r["USUBJID"] == usubjid]
    assert len(dm) == 1
    assert dm[0]["SEX"] == {"male": "M", "female": "F"}[sex]
    # The demo's sites keep UTC, so the local times are the stored ones.
    assert dm[0]["RFSTDTC"] == doses[0].administered_at.strftime("%Y-%m-%dT%H:%M:%S")
    ex = [r for r in _csv(tmp_path / "ex.csv") if r["USUBJID"] == usubjid]
    assert [int(r["EXSEQ"]) for r in ex] == list(range(1, len(doses) + 1))
    assert [int(r["EXDOSE"]) for r in ex] == [d.amount_mg for d in doses]
    assert ex[0]["EXSTDY"] == "1" and ex[0]["EXDOSU"] == "mg" and ex[0]["EXROUTE"] == "ORAL"
    vs = [r for r in _csv(tmp_path / "vs.csv") if r["USUBJID"] == usubjid]
    assert len(vs) == 4 * len(readings)
    assert [r["VSTESTCD"] for r in vs[:4]] == ["SYSBP", "DIABP", "PULSE", "TEMP"]
    assert [float(r["VSSTRESN"]) for r in vs[:4]] == [float(v) for v in first_values]
    assert vs[0]["VSDTC"] == first_at.strftime("%Y-%m-%dT%H:%M:%S")
    assert [r["VSORRESU"] for r in vs[:4]] == ["mmHg", "mmHg", "beats/min", "C"]


# --- FHIR --------------------------------------------------------------------------------


def _check_bundle(bundle: dict[str, Any]) -> Bundle:
    parsed = Bundle.model_validate(bundle)
    urls = {entry["fullUrl"] for entry in bundle["entry"]}
    assert len(urls) == len(bundle["entry"])
    for entry in bundle["entry"]:
        resource = entry["resource"]
        kind = resource["resourceType"]
        if kind == "ResearchSubject":
            assert resource["status"] in RESEARCH_SUBJECT_STATUSES
            assert resource["individual"]["reference"] in urls
        if kind == "Observation":
            assert resource["status"] in OBSERVATION_STATUSES
            assert resource["code"]["coding"][0]["code"] in VITAL_SIGN_LOINC
            assert resource["subject"]["reference"] in urls
        if kind == "AdverseEvent":
            assert resource["subject"]["reference"] in urls
    return parsed


def test_the_demo_fhir_bundles_parse(demo: Demo, tmp_path: Path) -> None:
    demo.cli("export", "fhir", "-o", str(tmp_path))
    lines = (tmp_path / "participants.ndjson").read_text(encoding="utf-8").splitlines()
    assert len(lines) == _participants(demo)
    kinds: Counter[str] = Counter()
    components: set[str] = set()
    for line in lines:
        bundle = json.loads(line)
        _check_bundle(bundle)
        for entry in bundle["entry"]:
            kinds[entry["resource"]["resourceType"]] += 1
            for component in entry["resource"].get("component", []):
                components.add(component["code"]["coding"][0]["code"])
            assert "assignedArm" not in entry["resource"]
    with demo.database.session_scope() as db:
        readings = int(db.scalar(sa.select(sa.func.count()).select_from(VitalSignReading)) or 0)
        events = int(db.scalar(sa.select(sa.func.count()).select_from(AdverseEvent)) or 0)
    # A blood-pressure panel, a heart rate and a temperature per reading.
    assert kinds["Observation"] == 3 * readings
    assert kinds["AdverseEvent"] == events
    assert components == {"8480-6", "8462-4"}
    study = json.loads((tmp_path / "study.json").read_text(encoding="utf-8"))
    parsed = _check_bundle(study)
    studies = [e for e in parsed.entry if e.resource.get_resource_type() == "ResearchStudy"]
    assert len(studies) == 2 and all(not s.resource.arm for s in studies)
    assert not ARM_WORDS.search((tmp_path / "participants.ndjson").read_text())


# --- scope, blinding and the record, through the API and the pages -------------------------


def test_api_exports_stream_what_each_role_may_see(demo: Demo) -> None:
    before = len(demo.exports())
    odm = demo.get("/api/v1/exports/odm", "investigator")
    assert odm.status_code == 200 and odm.mimetype == "application/xml"
    assert odm.headers["Content-Disposition"].startswith("attachment")
    assert not ARM_WORDS.search(odm.get_data(as_text=True))
    assert list(xmlschema.XMLSchema(str(ODM_XSD)).iter_errors(io.BytesIO(odm.data))) == []

    sdtm = demo.get("/api/v1/exports/sdtm?format=xpt", "statistician")
    assert sdtm.status_code == 200 and sdtm.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(sdtm.data)) as archive:
        assert sorted(archive.namelist()) == sorted(f"{d}.xpt" for d in DOMAINS)
        dm = archive.read("dm.xpt")
    path = Path(demo.instance) / "dm-statistician.xpt"
    path.write_bytes(dm)
    frame, _ = pyreadstat.read_xport(str(path))
    # The statistician is unblinded: the arms are in, for the randomised participants.
    assert {"ARMCD", "ARM"} <= set(frame.columns)
    assert frame["ARM"].str.contains("placebo", case=False).any()

    fhir = demo.get("/api/v1/exports/fhir", "auditor")
    assert fhir.status_code == 200 and fhir.mimetype == "application/fhir+json"
    _check_bundle(json.loads(fhir.data))
    one = demo.get("/api/v1/exports/fhir/participants/S01-0001", "auditor")
    assert one.status_code == 200
    assert json.loads(one.data)["id"] == "participant-S01-0001"

    records = demo.exports()[before:]
    assert [(e.entity_type, e.new_values["format"]) for e in records] == [  # type: ignore[index]
        ("odm", "xml"),
        ("sdtm", "xpt"),
        ("fhir", "json"),
        ("fhir", "json"),
    ]
    assert [e.new_values["arms"] for e in records] == [False, True, False, False]  # type: ignore[index]
    assert records[-1].entity_id == "S01-0001"


def test_refusals_write_nothing(demo: Demo) -> None:
    before = len(demo.exports())
    assert demo.get("/api/v1/exports/odm", "coordinator").status_code == 403
    assert demo.get("/api/v1/exports/sdtm?format=sas", "auditor").status_code == 400
    unknown = demo.get("/api/v1/exports/odm?site=S99", "auditor")
    assert unknown.status_code == 400 and "S99" in unknown.get_json()["error"]["message"]
    assert demo.get("/api/v1/exports/fhir/participants/S99-0001", "auditor").status_code == 404
    assert len(demo.exports()) == before


def test_a_site_user_exports_their_site_only(demo: Demo) -> None:
    with demo.database.session_scope() as db:
        site = db.scalars(sa.select(User.site_id).where(User.role == "investigator")).first()
        own = set(db.scalars(sa.select(Participant.study_id).where(Participant.site_id == site)))
        others = set(db.scalars(sa.select(Participant.study_id).where(Participant.site_id != site)))
    response = demo.get("/api/v1/exports/fhir", "investigator")
    bundle = json.loads(response.data)
    subjects = {
        e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    }
    assert subjects == own
    if others:
        other = sorted(others)[0]
        assert (
            demo.get(f"/api/v1/exports/fhir/participants/{other}", "investigator").status_code
            == 404
        )


def test_after_the_study_is_unblinded_every_reader_gets_the_arms(demo: Demo) -> None:
    """Last in the module: it unblinds the demo study for good."""
    from tracker.auth.services import actor_for
    from tracker.randomisation.services import unblind_study

    logins = (demo.instance / "demo-logins.txt").read_text(encoding="utf-8")
    passwords = dict(re.findall(r"^\s+(\w+)\s+(\S+)\s", logins, re.MULTILINE))
    with demo.database.session_scope() as db:
        admin = db.scalars(sa.select(User).where(User.username == "admin")).one()
        statistician = db.scalars(sa.select(User).where(User.username == "statistician")).one()
        unblind_study(
            db,
            actor_for(admin),
            admin=admin,
            admin_password=passwords["admin"],
            statistician=statistician,
            statistician_password=passwords["statistician"],
            reason="Database lock: primary analysis",
        )
    response = demo.get("/api/v1/exports/fhir", "auditor")
    studies = [
        e["resource"]
        for e in json.loads(response.data)["entry"]
        if e["resource"]["resourceType"] == "ResearchStudy"
    ]
    assert any(study.get("arm") for study in studies)
    assert demo.exports()[-1].new_values["arms"] is True  # type: ignore[index]
