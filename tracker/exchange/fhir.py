"""FHIR R4 (SPEC §13): a ``Bundle`` per participant (its ``Patient``, ``ResearchSubject``,
vital-sign ``Observation``s and ``AdverseEvent``s) and one for the study (each protocol's
``ResearchStudy`` with every participant's ``Patient`` and ``ResearchSubject``).

- The ``Patient`` is pseudonymous: the study id, sex and year of birth, nothing that names a
  person.
- ``ResearchSubject.status`` maps our states (``protocol.exchange_terms``); the arm is named
  (``assignedArm``, ``actualArm``) only for a reader who may know it, and then the
  ``ResearchStudy`` lists the arms.
- Vital signs follow the FHIR vital-signs profile: blood pressure as the panel 85354-9 with the
  systolic (8480-6) and diastolic (8462-4) components, heart rate 8867-4, body temperature
  8310-5, in UCUM units.
- Entries are addressed by ``urn:uuid:`` URLs derived from the study and record ids (UUID 5),
  so the same record has the same address in every export.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from tracker.exchange.scope import ExportScope
from tracker.exchange.source import Subject, protocol_versions, subjects
from tracker.protocol.dosing import AdverseEventOutcome
from tracker.protocol.exchange_terms import (
    BLOOD_PRESSURE_PANEL,
    FHIR_AE_OUTCOME,
    RESEARCH_SUBJECT_STATUS,
    VITAL_SIGN_TERMS,
    ds_decode,
)
from tracker.protocol.states import State

NAMESPACE = uuid.UUID("3f8b1c2e-6d3a-5a0e-9c51-7e2b4f6a9d10")
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
IDENTIFIER_SYSTEM = "urn:tracker:study-id"
RANDOMISATION_SYSTEM = "urn:tracker:randomisation-number"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
AE_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
GENDER = {"male": "male", "female": "female"}


def _url(*parts: object) -> str:
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, '/'.join(str(p) for p in parts))}"


def _instant(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _entry(url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": url, "resource": resource}


def _clean(resource: dict[str, Any]) -> dict[str, Any]:
    """Drop empty values: FHIR allows no null and no empty string, list or object."""
    cleaned: dict[str, Any] = _cleaned(resource)
    return cleaned


def _cleaned(value: Any) -> Any:
    if isinstance(value, dict):
        cleaned = {k: _cleaned(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [c for c in (_cleaned(v) for v in value) if c not in (None, "", [], {})]
    return value


def study_url(code: str) -> str:
    return _url("study", code)


def research_study(code: str, title: str, arms: dict[str, str] | None) -> dict[str, Any]:
    return _clean(
        {
            "resourceType": "ResearchStudy",
            "id": code.lower(),
            "identifier": [{"system": "urn:tracker:protocol", "value": code.upper()}],
            "title": title,
            "status": "active",
            "arm": [{"name": c, "description": label} for c, label in (arms or {}).items()],
        }
    )


def _patient(subject: Subject) -> dict[str, Any]:
    participant = subject.participant
    return _clean(
        {
            "resourceType": "Patient",
            "id": subject.study_id,
            "identifier": [{"system": IDENTIFIER_SYSTEM, "value": subject.study_id}],
            "gender": GENDER.get(participant.sex, "unknown"),
            "birthDate": str(participant.year_of_birth),  # only the year is collected
        }
    )


def _research_subject(subject: Subject, scope: ExportScope) -> dict[str, Any]:
    participant = subject.participant
    code = participant.protocol_version.code
    closing = [t for t in subject.transitions if ds_decode(t.to_state, t.withdrawal_category)]
    allocation = subject.allocation
    arm = allocation.arm if allocation and scope.arms else None
    identifiers = [{"system": IDENTIFIER_SYSTEM, "value": subject.study_id}]
    if allocation:
        identifiers.append({"system": RANDOMISATION_SYSTEM, "value": allocation.number})
    return _clean(
        {
            "resourceType": "ResearchSubject",
            "id": subject.study_id,
            "identifier": identifiers,
            "status": RESEARCH_SUBJECT_STATUS[State(participant.state)],
            "period": {
                "start": _instant(participant.enrolled_at),
                "end": _instant(closing[-1].occurred_at) if closing else None,
            },
            "study": {"reference": study_url(code)},
            "individual": {"reference": _url("patient", subject.study_id)},
            "assignedArm": arm,
            "actualArm": arm if arm and subject.first_dose_at() else None,
        }
    )


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def _vital_signs(subject: Subject) -> Iterator[dict[str, Any]]:
    patient = {"reference": _url("patient", subject.study_id)}
    category = [
        {
            "coding": [
                {"system": OBSERVATION_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}
            ]
        }
    ]
    terms = {t.sign.value: t for t in VITAL_SIGN_TERMS}
    for rows in subject.sessions:
        for reading in rows.readings:
            when = _instant(reading.measured_at)
            base = {
                "resourceType": "Observation",
                "status": "final",
                "category": category,
                "subject": patient,
                "effectiveDateTime": when,
            }
            systolic, diastolic = terms["systolic"], terms["diastolic"]
            yield _entry(
                _url("bp", reading.id),
                {
                    **base,
                    "id": f"bp-{reading.id}",
                    "code": {
                        "coding": [
                            {
                                "system": LOINC,
                                "code": BLOOD_PRESSURE_PANEL[0],
                                "display": BLOOD_PRESSURE_PANEL[1],
                            }
                        ]
                    },
                    "component": [
                        {
                            "code": {
                                "coding": [
                                    {"system": LOINC, "code": t.loinc, "display": t.loinc_display}
                                ]
                            },
                            "valueQuantity": _quantity(
                                float(getattr(reading, t.sign.value)), t.unit, t.ucum
                            ),
                        }
                        for t in (systolic, diastolic)
                    ],
                },
            )
            for name, prefix in (("heart_rate", "hr"), ("temperature_c", "temp")):
                term = terms[name]
                yield _entry(
                    _url(prefix, reading.id),
                    {
                        **base,
                        "id": f"{prefix}-{reading.id}",
                        "code": {
                            "coding": [
                                {"system": LOINC, "code": term.loinc, "display": term.loinc_display}
                            ]
                        },
                        "valueQuantity": _quantity(
                            float(getattr(reading, name)), term.unit, term.ucum
                        ),
                    },
                )


def _severity(grade: int) -> str:
    return "mild" if grade <= 1 else "moderate" if grade == 2 else "severe"


def _adverse_events(subject: Subject) -> Iterator[dict[str, Any]]:
    code = subject.participant.protocol_version.code
    for event in subject.adverse_events:
        serious = "serious" if event.serious else "non-serious"
        outcome = FHIR_AE_OUTCOME[AdverseEventOutcome(event.outcome)]
        yield _entry(
            _url("ae", event.id),
            _clean(
                {
                    "resourceType": "AdverseEvent",
                    "id": f"ae-{event.id}",
                    "actuality": "actual",
                    "event": {"text": event.term},
                    "subject": {"reference": _url("patient", subject.study_id)},
                    "date": _instant(event.onset_at),
                    "detected": _instant(event.aware_at),
                    "recordedDate": _instant(event.recorded_at),
                    "seriousness": {
                        "coding": [
                            {
                                "system": SERIOUSNESS,
                                "code": serious,
                                "display": serious.replace("-", " ").capitalize(),
                            }
                        ]
                    },
                    "severity": {"coding": [{"system": SEVERITY, "code": _severity(event.grade)}]},
                    "outcome": {"coding": [{"system": AE_OUTCOME, "code": outcome}]},
                    "study": [{"reference": study_url(code)}],
                }
            ),
        )


def participant_bundle(subject: Subject, scope: ExportScope, now: datetime) -> dict[str, Any]:
    """One participant's bundle (a ``collection``), with the ResearchStudy its subject and
    adverse events refer to, so every reference resolves within it."""
    version = subject.participant.protocol_version
    arms = scope.arm_labels.get(version.id) if scope.arms else None
    entries = [
        _entry(study_url(version.code), research_study(version.code, version.title, arms)),
        _entry(_url("patient", subject.study_id), _patient(subject)),
        _entry(_url("subject", subject.study_id), _research_subject(subject, scope)),
        *_vital_signs(subject),
        *_adverse_events(subject),
    ]
    return {
        "resourceType": "Bundle",
        "id": f"participant-{subject.study_id}",
        "type": "collection",
        "timestamp": _instant(now),
        "entry": entries,
    }


def participant_bundles(
    db: Session, scope: ExportScope, now: datetime | None = None
) -> Iterator[dict[str, Any]]:
    now = now or datetime.now(UTC)
    for subject in subjects(db, scope.query(), arms=scope.arms):
        yield participant_bundle(subject, scope, now)


def study_bundle(db: Session, scope: ExportScope, now: datetime | None = None) -> Iterator[str]:
    """The study's bundle as JSON text, streamed: each protocol's ``ResearchStudy``, then every
    participant's ``Patient`` and ``ResearchSubject``."""
    now = now or datetime.now(UTC)
    head = {
        "resourceType": "Bundle",
        "id": f"study-{now:%Y%m%dT%H%M%S}",
        "type": "collection",
        "timestamp": _instant(now),
    }
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "entry": ['
    first = True
    # One ResearchStudy per protocol: the newest version's title, the arms of every version.
    protocols: dict[str, tuple[str, dict[str, str]]] = {}
    for version in protocol_versions(db, scope.query()):
        arms = protocols.get(version.code, ("", {}))[1]
        protocols[version.code] = (version.title, arms | scope.arm_labels.get(version.id, {}))
    for code, (title, arms) in protocols.items():
        study = research_study(code, title, arms if scope.arms else None)
        yield ("" if first else ",") + json.dumps(
            _entry(study_url(code), study), ensure_ascii=False
        )
        first = False
    for subject in subjects(db, scope.query(), arms=scope.arms):
        for entry in (
            _entry(_url("patient", subject.study_id), _patient(subject)),
            _entry(_url("subject", subject.study_id), _research_subject(subject, scope)),
        ):
            yield ("" if first else ",") + json.dumps(entry, ensure_ascii=False)
            first = False
    yield "]}"
