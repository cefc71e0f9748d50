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
ARM_WORDS = re.compile(r"midomafetamine|placebo|methylphenidate", re.IGNORECASE)
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
                db.scalars(
                    sa.select(AuditEvent)
                    .where(AuditEvent.action == "data.export")
                    .order_by(AuditEvent.seq)
                )
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


def _studies(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir())


def test_the_demo_sdtm_datasets_read_back_in_every_format(demo: Demo, tmp_path: Path) -> None:
    for fmt in ("csv", "xpt", "json"):
        output = demo.cli("export", "sdtm", "--format", fmt, "-o", str(tmp_path / fmt))
        assert f"{_participants(demo)} participants written" in output
    # One folder per study, as ODM has a Study per protocol.
    assert [p.name for p in _studies(tmp_path / "xpt")] == ["mdma-at", "mdma-mdd"]
    subjects = 0
    for study in _studies(tmp_path / "csv"):
        for domain in DOMAINS:
            rows = _csv(study / f"{domain}.csv")
            names = list(rows[0]) if rows else []
            assert {r["STUDYID"] for r in rows} <= {study.name.upper()}
            # SAS XPORT v5, read by ReadStat.
            xpt = tmp_path / "xpt" / study.name / f"{domain}.xpt"
            frame, meta = pyreadstat.read_xport(str(xpt))
            assert meta.table_name == domain.upper()
            assert len(frame) == len(rows)
            for name in meta.column_names:
                assert re.fullmatch(r"[A-Z][A-Z0-9]{0,7}", name), name
            for label in meta.column_labels:
                assert label and len(label) <= 40
            for name, width in meta.variable_storage_width.items():
                assert width <= 200
                if meta.readstat_variable_types[name] == "string" and rows:
                    # Each text variable is as long as its longest value, no longer.
                    assert width == max(1, max(len(r[name].encode()) for r in rows)), name
            if rows:
                assert list(frame.columns) == names
                for index, row in enumerate(rows):
                    for name in names:
                        assert _same(frame.iloc[index][name], row[name]), (domain, name)
            # Dataset-JSON 1.1, read by odmlib's model.
            dataset = DatasetJSON.read_json(str(tmp_path / "json" / study.name / f"{domain}.json"))
            assert dataset.name == domain.upper() and dataset.records == len(rows)
            assert dataset.studyOID == f"ST.{study.name.upper()}"
            assert dataset.column_names == (names or dataset.column_names)
            assert len(dataset.rows or []) == len(rows)
            for values, row in zip(dataset.rows or [], rows, strict=True):
                assert all(_same(v, row[n]) for v, n in zip(values, names, strict=True))
            # The natural key (every key variable, in order) is unique.
            key = [c.name for c in dataset.columns if c.keySequence]
            assert key[:2] == ["STUDYID", "USUBJID"] and (domain == "dm" or len(key) >= 3)
            assert len({tuple(r[k] for k in key) for r in rows}) == len(rows), (domain, key)
        dm = _csv(study / "dm.csv")
        subjects += len(dm)
        # Blinded: the arm variables are there (SDTM requires them), masked.
        assert {r["ARMCD"] for r in dm} <= {"BLINDED", "OPEN", ""}
        assert {r["SEX"] for r in dm} <= {"M", "F", "U"}
        assert len({r["USUBJID"] for r in dm}) == len(dm)
        vs = _csv(study / "vs.csv")
        assert {r["VSTESTCD"] for r in vs} <= {"SYSBP", "DIABP", "PULSE", "TEMP"}
        assert {r["AESER"] for r in _csv(study / "ae.csv")} <= {"Y", "N"}
        # Every visit EX, VS and QS name is a visit of SV.
        visits = {(r["USUBJID"], r["VISITNUM"]) for r in _csv(study / "sv.csv")}
        for domain in ("ex", "vs", "qs"):
            named = {(r["USUBJID"], r["VISITNUM"]) for r in _csv(study / f"{domain}.csv")}
            assert named <= visits, (domain, sorted(named - visits)[:3])
        for domain in DOMAINS:
            assert not ARM_WORDS.search((study / f"{domain}.csv").read_text())
    assert subjects == _participants(demo)


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
    tmp_path = tmp_path / code
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
        for study in [resource.get("study", {})] if kind == "ResearchSubject" else []:
            assert study["reference"] in urls
        for study in resource.get("study", []) if kind == "AdverseEvent" else []:
            assert study["reference"] in urls
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
    assert kinds["ResearchStudy"] == len(lines)  # each participant's bundle names its study
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
        assert sorted(archive.namelist()) == sorted(
            f"{study}/{d}.xpt" for study in ("mdma-at", "mdma-mdd") for d in DOMAINS
        )
        arms = []
        for study in ("mdma-at", "mdma-mdd"):
            path = Path(demo.instance) / f"dm-statistician-{study}.xpt"
            path.write_bytes(archive.read(f"{study}/dm.xpt"))
            frame, _ = pyreadstat.read_xport(str(path))
            arms += frame["ARM"].tolist()
    # The statistician is unblinded: the randomised participants' arms are named.
    assert any("placebo" in arm.lower() for arm in arms)
    assert "Blinded treatment" not in arms

    # A blinded reader's datasets, every file of the archive: no arm, no product.
    blinded = demo.get("/api/v1/exports/sdtm?format=csv", "investigator")
    with zipfile.ZipFile(io.BytesIO(blinded.data)) as archive:
        assert len(archive.namelist()) == 2 * len(DOMAINS)
        for name in archive.namelist():
            assert not ARM_WORDS.search(archive.read(name).decode()), name

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
        ("sdtm", "csv"),
        ("fhir", "json"),
        ("fhir", "json"),
    ]
    assert [e.new_values["arms"] for e in records] == [False, True, False, False, False]  # type: ignore[index]
    assert records[-1].entity_id == "S01-0001"


def test_refusals_write_nothing(demo: Demo) -> None:
    before = len(demo.exports())
    assert demo.get("/api/v1/exports/odm", "coordinator").status_code == 403
    assert demo.get("/api/v1/exports/sdtm?format=sas", "auditor").status_code == 400
    unknown = demo.get("/api/v1/exports/odm?site=S99", "auditor")
    assert unknown.status_code == 400 and "S99" in unknown.get_json()["error"]["message"]
    assert demo.get("/api/v1/exports/fhir/participants/S99-0001", "auditor").status_code == 404
    assert len(demo.exports()) == before


def _odm_of(response: Any, tmp_path: Path) -> Any:
    path = tmp_path / "export.xml"
    path.write_bytes(response.data)
    assert list(xmlschema.XMLSchema(str(ODM_XSD)).iter_errors(str(path))) == []
    return _load_odm(path)


def test_a_site_user_exports_their_site_only(demo: Demo, tmp_path: Path) -> None:
    from tests.factories import make_participant, make_user
    from tracker.sites.models import Site
    from tracker.sites.services import create_site

    with demo.database.session_scope() as db:
        if (
            db.scalar(
                sa.select(sa.func.count())
                .select_from(Participant)
                .where(Participant.study_id.like("S02-%"))
            )
            == 0
        ):
            if db.scalar(sa.select(Site.id).where(Site.code == "S02")) is None:
                create_site(db, FACTORY_ACTOR, "S02", "Second site", "America/New_York")
                db.flush()
            make_user(db, "investigator", "S02", username="s02.investigator")
            make_participant(db, make_user(db, "coordinator", "S02", username="s02.coordinator"))
        own = set(
            db.scalars(sa.select(Participant.study_id).where(Participant.study_id.like("S01-%")))
        )
        other = set(
            db.scalars(sa.select(Participant.study_id).where(Participant.study_id.like("S02-%")))
        )
    assert own and other
    bundle = json.loads(demo.get("/api/v1/exports/fhir", "investigator").data)
    patients = {
        e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    }
    assert patients == own
    other_id = sorted(other)[0]
    assert (
        demo.get(f"/api/v1/exports/fhir/participants/{other_id}", "investigator").status_code == 404
    )
    # ODM: no other site's participant, location or people.
    odm = _odm_of(demo.get("/api/v1/exports/odm", "investigator"), tmp_path)
    keys = {s.SubjectKey for data in odm.ClinicalData for s in data.SubjectData}
    assert keys == own
    users = {u.OID for admin in odm.AdminData for u in admin.User}
    assert "USR.s02.investigator" not in users and "USR.s02.coordinator" not in users
    assert {loc.OID for admin in odm.AdminData for loc in admin.Location} == {"LOC.S01"}
    # The auditor's export has both sites, and its record says for whom.
    study_wide = _odm_of(demo.get("/api/v1/exports/odm", "auditor"), tmp_path)
    assert {
        s.SubjectKey for data in study_wide.ClinicalData for s in data.SubjectData
    } == own | other
    records = demo.exports()
    assert [e.new_values["site"] for e in records[-2:]] == ["S01", None]  # type: ignore[index]


def test_a_record_changed_after_it_was_written_carries_the_change(
    demo: Demo, tmp_path: Path
) -> None:
    """An adverse event assessed after it was recorded: its audit record is the assessment's
    (recorded against the event itself), not the recording's."""
    from tracker.auth.services import actor_for
    from tracker.safety.services import assess_adverse_event

    with demo.database.session_scope() as db:
        event = db.scalars(sa.select(AdverseEvent).order_by(AdverseEvent.id)).first()
        assert event is not None
        study_id = db.get_one(Participant, event.participant_id).study_id
        investigator = db.scalars(sa.select(User).where(User.username == "investigator")).one()
        if event.relatedness is None:
            assess_adverse_event(
                db, actor_for(investigator), event, relatedness="possible", expected=False
            )
        db.flush()
        assessment = db.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.entity_type == "adverse_event", AuditEvent.entity_id == str(event.id))
            .order_by(AuditEvent.seq.desc())
        ).first()
        assert assessment is not None
        seq = assessment.seq
    odm = _odm_of(demo.get("/api/v1/exports/odm", "auditor"), tmp_path)
    subject = next(
        s for data in odm.ClinicalData for s in data.SubjectData if s.SubjectKey == study_id
    )
    groups = [
        g
        for e in subject.StudyEventData
        for f in e.FormData
        for g in f.ItemGroupData
        if g.ItemGroupOID == "IG.AE"
    ]
    assert groups and groups[0].AuditRecord.UserRef.UserOID == "USR.investigator"
    assert groups[0].AuditRecord.SourceID._content.startswith(f"audit event {seq} ")


def test_times_match_their_events_whatever_their_precision() -> None:
    """The trail stores times as ISO text with microseconds; a record's time may have none
    (the forms take minutes): the two must still meet."""
    from datetime import UTC, datetime

    from tracker.exchange.odm import _Notes
    from tracker.exchange.source import AuditNote

    def note(seq: int, when: str) -> AuditNote:
        return AuditNote(
            seq, "0" * 64, "dose.record", "therapist", "therapist",
            datetime(2026, 3, 10, tzinfo=UTC), None, "session", "7",
            {"administered_at": when}, None,
        )  # fmt: skip

    notes = _Notes(
        [note(1, "2026-03-10T09:30:00.000000+00:00"), note(2, "2026-03-10T11:00:00+01:00")]
    )
    at = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
    assert notes.last(["dose.record"], 7, administered_at=at).seq == 1  # type: ignore[union-attr]
    assert (
        notes.last(["dose.record"], 7, administered_at=datetime(2026, 3, 10, 10, 0, tzinfo=UTC)).seq
        == 2
    )  # type: ignore[union-attr]
    assert notes.last(["dose.record"], 8, administered_at=at) is None


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


def test_sdtm_dates_are_the_sites_local_time_and_days_count_from_the_first_dose(
    demo: Demo,
) -> None:
    """Hand-worked: a New York site, a first dose at 02:30 UTC on 10 March 2026 (22:30 on the
    9th in New York: UTC-4, daylight saving time began on the 8th), a reading at 06:00 UTC on
    the 10th (02:00 local, day 2)."""
    from datetime import UTC, datetime

    from tracker.dosing.models import DoseAdministration as Dose
    from tracker.exchange import sdtm
    from tracker.exchange.scope import ExportScope
    from tracker.exchange.source import SessionRows, Subject
    from tracker.sites.models import Site
    from tracker.study.models import ProtocolVersion

    with demo.database.session_scope() as db:
        version = db.scalars(
            sa.select(ProtocolVersion).where(ProtocolVersion.code == "mdma-mdd")
        ).first()
        assert version is not None
        db.expunge(version)
    site = Site(id=99, code="S99", name="New York", time_zone="America/New_York")
    participant = Participant(
        id=1, study_id="S99-0001", site=site, protocol_version=version,
        protocol_version_id=version.id, sex="female", year_of_birth=1980, state="dosing",
    )  # fmt: skip
    session = TherapySession(
        id=5, participant_id=1, kind="dosing", cycle=1, status="completed",
        scheduled_at=datetime(2026, 3, 10, 2, 0, tzinfo=UTC),
        started_at=datetime(2026, 3, 10, 2, 0, tzinfo=UTC),
        ended_at=datetime(2026, 3, 10, 10, 0, tzinfo=UTC),
    )  # fmt: skip
    dose = Dose(
        id=3, session_id=5, kind="initial", amount_mg=120,
        administered_at=datetime(2026, 3, 10, 2, 30, tzinfo=UTC),
    )  # fmt: skip
    reading = VitalSignReading(
        id=4, session_id=5, measured_at=datetime(2026, 3, 10, 6, 0, tzinfo=UTC),
        systolic=128, diastolic=82, heart_rate=90, temperature_c=37.2,
    )  # fmt: skip
    subject = Subject(participant, "S99", sessions=[SessionRows(session, [dose], [reading])])
    scope = ExportScope("test", None, None, False, {})
    context = sdtm.context_of(subject)
    [dm] = list(sdtm.dm_rows(subject, scope, context))
    assert dm["USUBJID"] == "MDMA-MDD-S99-0001"
    assert dm["RFSTDTC"] == "2026-03-09T22:30:00"
    [ex] = list(sdtm.ex_rows(subject, scope, context))
    assert (ex["EXSTDTC"], ex["EXSTDY"], ex["VISITNUM"], ex["VISIT"]) == (
        "2026-03-09T22:30:00",
        1,
        11.0,
        "DOSING CYCLE 1",
    )
    vs = list(sdtm.vs_rows(subject, scope, context))
    assert [(r["VSTESTCD"], r["VSSTRESN"], r["VSDY"]) for r in vs] == [
        ("SYSBP", 128.0, 2), ("DIABP", 82.0, 2), ("PULSE", 90.0, 2), ("TEMP", 37.2, 2)
    ]  # fmt: skip
    assert vs[0]["VSDTC"] == "2026-03-10T02:00:00"
    [sv] = list(sdtm.sv_rows(subject, scope, context))
    assert (sv["SVSTDTC"], sv["SVENDTC"], sv["SVSTDY"]) == (
        "2026-03-09T22:00:00",
        "2026-03-10T06:00:00",
        1,
    )
