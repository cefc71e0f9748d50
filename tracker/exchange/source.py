"""The records an export writes, read a batch of participants at a time.

A batch costs the same fixed number of queries whatever its size, and only one batch is held
(the session's identity map keeps no reference to rows nobody holds), so an export of the
whole study runs in the memory of one batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session, raiseload

from tracker.audit.models import AuditEvent
from tracker.auth.models import User
from tracker.dosing.models import DoseAdministration, SessionEffects, VitalSignReading
from tracker.outcomes.models import Assessment
from tracker.participants.models import (
    ChecklistAnswer,
    ChecklistSignature,
    Consent,
    Participant,
    ProtocolDeviation,
    ReviewAssessment,
    TransitionEvent,
)
from tracker.participants.queries import visible_to
from tracker.protocol.accountability import dispensing_number
from tracker.randomisation.models import RandomisationEntry
from tracker.safety.models import AdverseEvent, PregnancyTest, SideEffect, SuicidalityScreen
from tracker.sessions.models import TherapySession
from tracker.sites.models import Site
from tracker.study.models import ProtocolVersion

BATCH = 200


def source_version() -> str:
    """The tracker's version, as exchange files name their source system."""
    try:
        return metadata.version("tracker")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "0"


T = TypeVar("T")


@dataclass(frozen=True)
class Allocation:
    """A participant's randomisation; ``arm`` is None for a reader who may not know it."""

    number: str
    stratum: str
    allocated_at: datetime | None
    arm: str | None


@dataclass(frozen=True)
class AuditNote:
    """What an audit event says of a record: who, when, why, and where it sits in the chain."""

    seq: int
    hash: str
    action: str
    actor: str
    role: str | None
    occurred_at: datetime
    reason: str | None
    entity_type: str
    entity_id: str | None
    new_values: dict[str, Any] | None
    old_values: dict[str, Any] | None


@dataclass
class SessionRows:
    session: TherapySession
    doses: list[DoseAdministration] = field(default_factory=list)
    readings: list[VitalSignReading] = field(default_factory=list)
    effects: SessionEffects | None = None


@dataclass
class Subject:
    """Everything an export says of one participant."""

    participant: Participant
    site: str
    allocation: Allocation | None = None
    consents: list[Consent] = field(default_factory=list)
    answers: list[ChecklistAnswer] = field(default_factory=list)
    signatures: list[ChecklistSignature] = field(default_factory=list)
    reviews: list[ReviewAssessment] = field(default_factory=list)
    transitions: list[TransitionEvent] = field(default_factory=list)
    deviations: list[ProtocolDeviation] = field(default_factory=list)
    sessions: list[SessionRows] = field(default_factory=list)
    adverse_events: list[AdverseEvent] = field(default_factory=list)
    screens: list[SuicidalityScreen] = field(default_factory=list)
    side_effects: list[SideEffect] = field(default_factory=list)
    pregnancy_tests: list[PregnancyTest] = field(default_factory=list)
    assessments: list[Assessment] = field(default_factory=list)
    events: list[AuditNote] = field(default_factory=list)
    dispensings: dict[int, str] = field(default_factory=dict)  # dose id -> dispensing number

    @property
    def study_id(self) -> str:
        return self.participant.study_id

    def first_dose_at(self) -> datetime | None:
        times = [d.administered_at for s in self.sessions for d in s.doses]
        return min(times) if times else None

    def last_dose_at(self) -> datetime | None:
        times = [d.administered_at for s in self.sessions for d in s.doses]
        return max(times) if times else None


def _rows(db: Session, model: type[T], column: Any, ids: Sequence[int], *order: Any) -> list[T]:
    return list(
        db.scalars(sa.select(model).where(column.in_(ids)).order_by(*order).options(raiseload("*")))
    )


def _by(rows: Iterable[T], key: str) -> dict[int, list[T]]:
    grouped: dict[int, list[T]] = defaultdict(list)
    for row in rows:
        grouped[getattr(row, key)].append(row)
    return grouped


def _audit_notes(
    db: Session, study_ids: Sequence[str], session_ids: Sequence[int], event_ids: Sequence[int]
) -> list[Any]:
    """The audit events about the participants (by study id), their sessions and their
    adverse events (assessments and updates are recorded against the event itself)."""
    table = AuditEvent.__table__.c
    clauses = [sa.and_(table.entity_type == "participant", table.entity_id.in_(study_ids))]
    if event_ids:
        clauses.append(
            sa.and_(
                table.entity_type == "adverse_event",
                table.entity_id.in_([str(i) for i in event_ids]),
            )
        )
    if session_ids:
        clauses.append(
            sa.and_(
                table.entity_type == "session", table.entity_id.in_([str(i) for i in session_ids])
            )
        )
    return list(
        db.execute(
            sa.select(
                table.seq,
                table.hash,
                table.action,
                table.actor,
                table.role,
                table.occurred_at,
                table.reason,
                table.entity_type,
                table.entity_id,
                table.new_values,
                table.old_values,
            )
            .where(sa.or_(*clauses))
            .order_by(table.seq)
        )
    )


def load_batch(
    db: Session, chunk: Sequence[Participant], *, arms: bool, events: bool = False
) -> list[Subject]:
    """The subjects of one batch of participants, in the batch's order; with ``events``, the
    audit events about them and their sessions too (ODM's audit records)."""
    ids = [p.id for p in chunk]
    subjects = {p.id: Subject(p, p.site.code) for p in chunk}
    for entry in db.execute(
        sa.select(
            RandomisationEntry.participant_id,
            RandomisationEntry.randomisation_number,
            RandomisationEntry.stratum,
            RandomisationEntry.allocated_at,
            RandomisationEntry.arm,
        ).where(RandomisationEntry.participant_id.in_(ids))
    ):
        subjects[entry.participant_id].allocation = Allocation(
            entry.randomisation_number,
            entry.stratum,
            entry.allocated_at,
            entry.arm if arms else None,
        )
    simple: list[tuple[str, Any, Any, Any]] = [
        ("consents", Consent, Consent.participant_id, Consent.recorded_at),
        ("answers", ChecklistAnswer, ChecklistAnswer.participant_id, ChecklistAnswer.answered_at),
        (
            "signatures",
            ChecklistSignature,
            ChecklistSignature.participant_id,
            ChecklistSignature.signed_at,
        ),
        (
            "reviews",
            ReviewAssessment,
            ReviewAssessment.participant_id,
            ReviewAssessment.assessed_at,
        ),
        ("transitions", TransitionEvent, TransitionEvent.participant_id, TransitionEvent.id),
        (
            "deviations",
            ProtocolDeviation,
            ProtocolDeviation.participant_id,
            ProtocolDeviation.occurred_at,
        ),
        ("adverse_events", AdverseEvent, AdverseEvent.participant_id, AdverseEvent.onset_at),
        ("screens", SuicidalityScreen, SuicidalityScreen.participant_id, SuicidalityScreen.id),
        ("side_effects", SideEffect, SideEffect.participant_id, SideEffect.onset_at),
        ("pregnancy_tests", PregnancyTest, PregnancyTest.participant_id, PregnancyTest.tested_at),
        ("assessments", Assessment, Assessment.participant_id, Assessment.administered_at),
    ]
    for name, model, column, order in simple:
        for participant_id, rows in _by(
            _rows(db, model, column, ids, order, model.id), "participant_id"
        ).items():
            setattr(subjects[participant_id], name, rows)
    sessions = _rows(
        db, TherapySession, TherapySession.participant_id, ids, TherapySession.scheduled_at
    )
    session_rows = {s.id: SessionRows(s) for s in sessions}
    session_ids = list(session_rows)
    if session_ids:
        doses = _rows(
            db,
            DoseAdministration,
            DoseAdministration.session_id,
            session_ids,
            DoseAdministration.administered_at,
        )
        for dose in doses:
            session_rows[dose.session_id].doses.append(dose)
        for reading in _rows(
            db,
            VitalSignReading,
            VitalSignReading.session_id,
            session_ids,
            VitalSignReading.measured_at,
        ):
            session_rows[reading.session_id].readings.append(reading)
        for effects in _rows(
            db, SessionEffects, SessionEffects.session_id, session_ids, SessionEffects.id
        ):
            session_rows[effects.session_id].effects = effects
    for held in session_rows.values():
        owner = subjects[held.session.participant_id]
        owner.sessions.append(held)
        owner.dispensings.update(
            {d.id: dispensing_number(d.dispensing_id) for d in held.doses if d.dispensing_id}
        )
    if not events:
        return [subjects[p.id] for p in chunk]
    by_study_id = {p.study_id: subjects[p.id] for p in chunk}
    owners = {
        "participant": by_study_id,
        "session": {str(s.id): subjects[s.participant_id] for s in sessions},
        "adverse_event": {
            str(e.id): subject for subject in subjects.values() for e in subject.adverse_events
        },
    }
    event_ids = [e.id for subject in subjects.values() for e in subject.adverse_events]
    for row in _audit_notes(db, list(by_study_id), session_ids, event_ids):
        about = owners[row.entity_type].get(row.entity_id or "")
        if about is not None:
            about.events.append(AuditNote(*row))
    return [subjects[p.id] for p in chunk]


def participants_query(user: User | None, site: str | None = None) -> sa.Select[Participant]:
    """The participants ``user`` may export (None: the study-wide view of the command line),
    optionally of one site."""
    query = visible_to(user)
    if site:
        query = query.where(
            Participant.site_id.in_(sa.select(Site.id).where(Site.code == site.strip().upper()))
        )
    return query


def subjects(
    db: Session,
    query: sa.Select[Participant],
    *,
    arms: bool,
    events: bool = False,
    size: int = BATCH,
) -> Iterator[Subject]:
    """Every participant of ``query`` in (protocol version, study id) order, a batch at a time
    (keyset paging)."""
    last: tuple[int, str] = (0, "")
    while True:
        chunk = list(
            db.scalars(
                query.where(sa.tuple_(Participant.protocol_version_id, Participant.study_id) > last)
                .order_by(Participant.protocol_version_id, Participant.study_id)
                .limit(size)
            )
        )
        if not chunk:
            return
        yield from load_batch(db, chunk, arms=arms, events=events)
        last = (chunk[-1].protocol_version_id, chunk[-1].study_id)


def participant_count(db: Session, query: sa.Select[Participant]) -> int:
    return int(db.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0)


def protocol_versions(db: Session, query: sa.Select[Participant]) -> list[ProtocolVersion]:
    """The protocol versions the exported participants are enrolled under, in id order."""
    ids = query.with_only_columns(Participant.protocol_version_id).distinct().order_by(None)
    return list(
        db.scalars(
            sa.select(ProtocolVersion)
            .where(ProtocolVersion.id.in_(ids.scalar_subquery()))
            .order_by(ProtocolVersion.id)
        )
    )


def users(db: Session) -> list[User]:
    return list(db.scalars(sa.select(User).order_by(User.id)))


def system_actors(db: Session) -> list[str]:
    """The names that acted without an account (the system, the command line)."""
    table = AuditEvent.__table__.c
    return list(
        db.scalars(
            sa.select(table.actor).where(table.actor_id.is_(None)).distinct().order_by(table.actor)
        )
    )
