"""Loading the records the compliance checks judge, a batch of participants at a time.

Each batch costs the same fixed number of queries whatever its size, and only one batch is
held in memory, so a report over the whole study streams.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session

from tracker.auth.models import User
from tracker.dosing.models import (
    DoseAdministration,
    SessionEffects,
    VitalSignAlert,
    VitalSignReading,
)
from tracker.outcomes.models import Assessment, MissedTimepoint
from tracker.outcomes.queries import anchors_of
from tracker.participants.models import (
    ChecklistAnswer,
    ChecklistSignature,
    Consent,
    Participant,
    ProtocolDeviation,
    TransitionEvent,
)
from tracker.protocol.accountability import dispensing_number
from tracker.protocol.compliance_records import (
    AdverseEventRecord,
    AlertRecord,
    AssessmentRecord,
    DoseRecord,
    OverrideRecord,
    ParticipantRecord,
    ReadingRecord,
    SessionRecord,
    UnblindingRecord,
)
from tracker.protocol.outcomes import AnchorDays
from tracker.randomisation.models import EmergencyUnblinding
from tracker.safety.models import AdverseEvent, SuicidalityScreen
from tracker.sessions.models import TherapySession, session_therapists

BATCH = 200

K = TypeVar("K")
T = TypeVar("T")


def _grouped(rows: Iterable[tuple[K, T]]) -> dict[K, list[T]]:
    groups: dict[K, list[T]] = defaultdict(list)
    for key, value in rows:
        groups[key].append(value)
    return groups


def _earliest(
    db: Session, participant_column: Mapped[int], moment: Mapped[Any], ids: Sequence[int]
) -> dict[int, Any]:
    """The earliest ``moment`` per participant."""
    rows = db.execute(
        sa.select(participant_column, sa.func.min(moment))
        .where(participant_column.in_(ids))
        .group_by(participant_column)
    )
    return {participant_id: earliest for participant_id, earliest in rows}


def _counting_signatures(db: Session, ids: Sequence[int]) -> dict[int, ChecklistSignature]:
    """The signature that counts for dosing: the earliest eligible one (C02 checks its voiding),
    else the earliest."""
    signatures: dict[int, ChecklistSignature] = {}
    for signature in db.scalars(
        sa.select(ChecklistSignature)
        .where(ChecklistSignature.participant_id.in_(ids))
        .order_by(ChecklistSignature.signed_at)
    ):
        current = signatures.get(signature.participant_id)
        if current is None or (current.outcome != "eligible" and signature.outcome == "eligible"):
            signatures[signature.participant_id] = signature
    return signatures


@dataclass(frozen=True)
class _SessionRecords:
    """The per-session rows of one batch, keyed by session id."""

    therapists: dict[int, int]
    doses: dict[int, list[DoseRecord]]
    readings: dict[int, list[ReadingRecord]]
    alerts: dict[int, list[AlertRecord]]
    effects: set[int]


def _session_records(db: Session, session_ids: Sequence[int]) -> _SessionRecords:
    if not session_ids:
        return _SessionRecords({}, {}, {}, {}, set())
    therapists = db.execute(
        sa.select(session_therapists.c.session_id, sa.func.count())
        .where(session_therapists.c.session_id.in_(session_ids))
        .group_by(session_therapists.c.session_id)
    )
    doses = db.execute(
        sa.select(
            DoseAdministration.session_id,
            DoseAdministration.id,
            DoseAdministration.kind,
            DoseAdministration.amount_mg,
            DoseAdministration.administered_at,
            DoseAdministration.breach_justification.is_not(None),
            DoseAdministration.dispensing_id,
        ).where(DoseAdministration.session_id.in_(session_ids))
    )
    readings = db.execute(
        sa.select(
            VitalSignReading.session_id,
            VitalSignReading.id,
            VitalSignReading.measured_at,
            VitalSignReading.systolic,
            VitalSignReading.diastolic,
            VitalSignReading.heart_rate,
            VitalSignReading.temperature_c,
        ).where(VitalSignReading.session_id.in_(session_ids))
    )
    alerts = db.execute(
        sa.select(
            VitalSignAlert.session_id,
            VitalSignAlert.id,
            VitalSignAlert.sign,
            VitalSignAlert.value,
            VitalSignAlert.acknowledged_at.is_not(None),
        ).where(VitalSignAlert.session_id.in_(session_ids))
    )
    effects = db.scalars(
        sa.select(SessionEffects.session_id).where(SessionEffects.session_id.in_(session_ids))
    )
    return _SessionRecords(
        therapists={session_id: count for session_id, count in therapists},
        doses=_grouped(
            (
                session_id,
                DoseRecord(
                    id_,
                    kind,
                    amount,
                    at,
                    justified,
                    None if dispensing is None else dispensing_number(dispensing),
                ),
            )
            for session_id, id_, kind, amount, at, justified, dispensing in doses
        ),
        readings=_grouped(
            (session_id, ReadingRecord(id_, at, systolic, diastolic, rate, float(temperature)))
            for session_id, id_, at, systolic, diastolic, rate, temperature in readings
        ),
        alerts=_grouped(
            (session_id, AlertRecord(id_, sign, float(value), acknowledged))
            for session_id, id_, sign, value, acknowledged in alerts
        ),
        effects=set(effects),
    )


def _sessions_by_participant(
    db: Session, ids: Sequence[int]
) -> tuple[dict[int, list[SessionRecord]], dict[int, datetime]]:
    """Each participant's session records in schedule order, and the first session's start."""
    rows = db.execute(
        sa.select(
            TherapySession.participant_id,
            TherapySession.id,
            TherapySession.kind,
            TherapySession.cycle,
            TherapySession.status,
            TherapySession.started_at,
            TherapySession.ended_at,
            TherapySession.overnight_stay,
        )
        .where(TherapySession.participant_id.in_(ids))
        .order_by(TherapySession.participant_id, TherapySession.scheduled_at)
    ).all()
    per_session = _session_records(db, [row.id for row in rows])
    by_participant: dict[int, list[SessionRecord]] = defaultdict(list)
    first_session: dict[int, datetime] = {}
    for participant_id, id_, kind, cycle, status, started_at, ended_at, overnight in rows:
        if started_at is not None and (
            participant_id not in first_session or started_at < first_session[participant_id]
        ):
            first_session[participant_id] = started_at
        by_participant[participant_id].append(
            SessionRecord(
                id=id_,
                kind=kind,
                cycle=cycle,
                status=status,
                started_at=started_at,
                ended_at=ended_at,
                therapists_present=per_session.therapists.get(id_, 0),
                overnight_stay=overnight,
                doses=tuple(per_session.doses.get(id_, [])),
                readings=tuple(per_session.readings.get(id_, [])),
                alerts=tuple(per_session.alerts.get(id_, [])),
                effects_recorded=id_ in per_session.effects,
            )
        )
    return by_participant, first_session


def _adverse_events(db: Session, ids: Sequence[int]) -> dict[int, list[AdverseEventRecord]]:
    investigators = set(db.scalars(sa.select(User.id).where(User.role == "investigator")))
    rows = db.execute(
        sa.select(
            AdverseEvent.participant_id,
            AdverseEvent.id,
            AdverseEvent.term,
            AdverseEvent.grade,
            AdverseEvent.serious,
            AdverseEvent.relatedness,
            AdverseEvent.assessed_by_id,
            AdverseEvent.report_due_at,
            AdverseEvent.reported_at,
        ).where(AdverseEvent.participant_id.in_(ids))
    )
    return _grouped(
        (
            participant_id,
            AdverseEventRecord(
                id_,
                term,
                grade,
                serious,
                relatedness,
                assessed_by in investigators,
                due_at,
                reported_at,
            ),
        )
        for (
            participant_id,
            id_,
            term,
            grade,
            serious,
            relatedness,
            assessed_by,
            due_at,
            reported_at,
        ) in rows
    )


def _overrides(db: Session, ids: Sequence[int]) -> dict[int, list[OverrideRecord]]:
    """The transitions applied with an override, with the deviations recorded for each."""
    deviations = _grouped(
        (event_id, (code, reason, approver_role))
        for event_id, code, reason, approver_role in db.execute(
            sa.select(
                ProtocolDeviation.transition_event_id,
                ProtocolDeviation.guard_code,
                ProtocolDeviation.reason,
                User.role,
            )
            .join(User, User.id == ProtocolDeviation.approved_by_id)
            .where(ProtocolDeviation.participant_id.in_(ids))
        )
    )
    rows = db.execute(
        sa.select(
            TransitionEvent.participant_id,
            TransitionEvent.id,
            TransitionEvent.transition,
            TransitionEvent.occurred_at,
            TransitionEvent.guard_results,
        ).where(TransitionEvent.participant_id.in_(ids), TransitionEvent.override.is_(True))
    )
    return _grouped(
        (
            participant_id,
            OverrideRecord(
                id_,
                transition,
                occurred_at,
                tuple(
                    failure["code"]
                    for check in guard_results
                    for failure in check.get("overridden", [])
                ),
                tuple(deviations.get(id_, [])),
            ),
        )
        for participant_id, id_, transition, occurred_at, guard_results in rows
    )


@dataclass(frozen=True)
class _OutcomeRows:
    """The outcome rows of one batch (SPEC §10), keyed by participant id."""

    anchors: dict[int, AnchorDays]
    assessments: dict[int, list[AssessmentRecord]]
    missed: dict[int, list[str]]


def _outcome_rows(db: Session, participants: Sequence[Participant]) -> _OutcomeRows:
    ids = [p.id for p in participants]
    present = set(
        db.execute(
            sa.select(TherapySession.participant_id, session_therapists.c.user_id)
            .join(session_therapists, session_therapists.c.session_id == TherapySession.id)
            .where(TherapySession.participant_id.in_(ids))
            .distinct()
        ).all()
    )
    rows = db.execute(
        sa.select(
            Assessment.participant_id,
            Assessment.id,
            Assessment.timepoint,
            Assessment.instrument,
            Assessment.administered_at,
            Assessment.reason,
            Assessment.total,
            User.id,
            User.username,
            User.role,
        )
        .join(User, User.id == Assessment.recorded_by_id)
        .where(Assessment.participant_id.in_(ids))
        .order_by(Assessment.administered_at, Assessment.id)
    )
    assessments = _grouped(
        (
            row.participant_id,
            AssessmentRecord(
                row[1],
                row.timepoint,
                row.instrument,
                row.administered_at,
                row.reason,
                row.username,
                row.role,
                (row.participant_id, row[7]) in present,
                row.total,
            ),
        )
        for row in rows
    )
    missed = _grouped(
        db.execute(
            sa.select(MissedTimepoint.participant_id, MissedTimepoint.timepoint).where(
                MissedTimepoint.participant_id.in_(ids)
            )
        )
    )
    return _OutcomeRows(anchors_of(db, participants), assessments, missed)


def load_records(db: Session, participants: Sequence[Participant]) -> list[ParticipantRecord]:
    """The compliance records of ``participants`` in a fixed number of queries."""
    ids = [p.id for p in participants]
    if not ids:
        return []
    consents = _earliest(db, Consent.participant_id, Consent.signed_on, ids)
    first_answer = _earliest(db, ChecklistAnswer.participant_id, ChecklistAnswer.answered_at, ids)
    first_screen = _earliest(
        db, SuicidalityScreen.participant_id, SuicidalityScreen.screened_at, ids
    )
    signatures = _counting_signatures(db, ids)
    sessions, first_session = _sessions_by_participant(db, ids)
    events = _adverse_events(db, ids)
    overrides = _overrides(db, ids)
    outcomes = _outcome_rows(db, participants)
    unblindings = _grouped(
        (pid, UnblindingRecord(at, username, role, reason))
        for pid, at, username, role, reason in db.execute(
            sa.select(
                EmergencyUnblinding.participant_id,
                EmergencyUnblinding.unblinded_at,
                User.username,
                User.role,
                EmergencyUnblinding.reason,
            )
            .join(User, User.id == EmergencyUnblinding.user_id)
            .where(EmergencyUnblinding.participant_id.in_(ids))
            .order_by(EmergencyUnblinding.id)
        )
    )

    records = []
    for participant in participants:
        pid = participant.id
        procedures = [
            t for t in (first_answer.get(pid), first_screen.get(pid), first_session.get(pid)) if t
        ]
        signed = signatures.get(pid)
        applied = overrides.get(pid, [])
        records.append(
            ParticipantRecord(
                study_id=participant.study_id,
                state=participant.state,
                consent_signed_on=consents.get(pid),
                first_procedure_at=min(procedures) if procedures else None,
                checklist_signed_at=signed.signed_at if signed else None,
                checklist_signed_outcome=signed.outcome if signed else None,
                checklist_signature_voided_at=signed.voided_at if signed else None,
                checklist_signed_by=signed.printed_name if signed else None,
                checklist_signature_meaning=signed.meaning if signed else None,
                sessions=tuple(sessions.get(pid, [])),
                adverse_events=tuple(events.get(pid, [])),
                overrides=tuple(applied),
                interval_deviations=tuple(
                    f"{code}: {reason}"
                    for override in applied
                    for code, reason, _ in override.deviations
                    if code == "dosing_interval"
                ),
                assessments=tuple(outcomes.assessments.get(pid, [])),
                missed_timepoints=tuple(outcomes.missed.get(pid, [])),
                anchors=outcomes.anchors.get(participant.id),
                unblindings=tuple(unblindings.get(pid, [])),
            )
        )
    return records


def batches(
    db: Session, query: sa.Select[Participant], size: int = BATCH
) -> Iterator[list[Participant]]:
    """The participants of ``query`` in study-id order, ``size`` at a time (keyset paging)."""
    last = ""
    while True:
        chunk = list(
            db.scalars(
                query.where(Participant.study_id > last).order_by(Participant.study_id).limit(size)
            )
        )
        if not chunk:
            return
        yield chunk
        last = chunk[-1].study_id
