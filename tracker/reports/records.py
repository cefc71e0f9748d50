"""Loading the records the compliance checks judge, a batch of participants at a time.

Each batch costs the same fixed number of queries whatever its size, and only one batch is
held in memory, so a report over the whole study streams.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.dosing.models import (
    DoseAdministration,
    SessionEffects,
    VitalSignAlert,
    VitalSignReading,
)
from tracker.participants.models import (
    ChecklistAnswer,
    ChecklistSignature,
    Consent,
    Participant,
    ProtocolDeviation,
    TransitionEvent,
)
from tracker.protocol.compliance import (
    AdverseEventRecord,
    AlertRecord,
    DoseRecord,
    OverrideRecord,
    ParticipantRecord,
    ReadingRecord,
    SessionRecord,
)
from tracker.safety.models import AdverseEvent, SuicidalityScreen
from tracker.sessions.models import TherapySession, session_therapists

BATCH = 200


def _pairs(rows: Iterable[Any]) -> dict[Any, Any]:
    return {key: value for key, value in rows}


T = TypeVar("T")


def _grouped(rows: Iterable[tuple[int, T]]) -> dict[int, list[T]]:
    groups: dict[int, list[T]] = defaultdict(list)
    for key, value in rows:
        groups[key].append(value)
    return groups


def load_records(session: Session, participants: Sequence[Participant]) -> list[ParticipantRecord]:
    """The compliance records of ``participants`` in a fixed number of queries."""
    ids = [p.id for p in participants]
    if not ids:
        return []
    consents = _pairs(
        session.execute(
            sa.select(Consent.participant_id, sa.func.min(Consent.signed_on))
            .where(Consent.participant_id.in_(ids))
            .group_by(Consent.participant_id)
        )
    )
    first_answer = _pairs(
        session.execute(
            sa.select(ChecklistAnswer.participant_id, sa.func.min(ChecklistAnswer.answered_at))
            .where(ChecklistAnswer.participant_id.in_(ids))
            .group_by(ChecklistAnswer.participant_id)
        )
    )
    first_screen = _pairs(
        session.execute(
            sa.select(SuicidalityScreen.participant_id, sa.func.min(SuicidalityScreen.screened_at))
            .where(SuicidalityScreen.participant_id.in_(ids))
            .group_by(SuicidalityScreen.participant_id)
        )
    )
    # The signature that counts for dosing: the earliest eligible one (C02 checks its voiding).
    signatures: dict[int, ChecklistSignature] = {}
    for signature in session.scalars(
        sa.select(ChecklistSignature)
        .where(ChecklistSignature.participant_id.in_(ids))
        .order_by(ChecklistSignature.signed_at)
    ):
        current = signatures.get(signature.participant_id)
        if current is None or (current.outcome != "eligible" and signature.outcome == "eligible"):
            signatures[signature.participant_id] = signature

    sessions = list(
        session.execute(
            sa.select(TherapySession.__table__)
            .where(TherapySession.participant_id.in_(ids))
            .order_by(TherapySession.participant_id, TherapySession.scheduled_at)
        )
    )
    session_ids = [s.id for s in sessions]
    therapists = (
        _pairs(
            session.execute(
                sa.select(session_therapists.c.session_id, sa.func.count())
                .where(session_therapists.c.session_id.in_(session_ids))
                .group_by(session_therapists.c.session_id)
            )
        )
        if session_ids
        else {}
    )
    doses = (
        _grouped(
            [
                (d.session_id, d)
                for d in session.execute(
                    sa.select(DoseAdministration.__table__).where(
                        DoseAdministration.session_id.in_(session_ids)
                    )
                )
            ]
        )
        if session_ids
        else {}
    )
    readings = (
        _grouped(
            [
                (r.session_id, r)
                for r in session.execute(
                    sa.select(VitalSignReading.__table__).where(
                        VitalSignReading.session_id.in_(session_ids)
                    )
                )
            ]
        )
        if session_ids
        else {}
    )
    alerts = (
        _grouped(
            [
                (a.session_id, a)
                for a in session.execute(
                    sa.select(VitalSignAlert.__table__).where(
                        VitalSignAlert.session_id.in_(session_ids)
                    )
                )
            ]
        )
        if session_ids
        else {}
    )
    effects = (
        set(
            session.scalars(
                sa.select(SessionEffects.session_id).where(
                    SessionEffects.session_id.in_(session_ids)
                )
            )
        )
        if session_ids
        else set()
    )

    investigators = {
        u for u in session.scalars(sa.select(User.id).where(User.role == "investigator"))
    }
    events = _grouped(
        [
            (e.participant_id, e)
            for e in session.execute(
                sa.select(AdverseEvent.__table__).where(AdverseEvent.participant_id.in_(ids))
            )
        ]
    )
    overrides = _grouped(
        [
            (t.participant_id, t)
            for t in session.execute(
                sa.select(TransitionEvent.__table__).where(
                    TransitionEvent.participant_id.in_(ids), TransitionEvent.override.is_(True)
                )
            )
        ]
    )
    deviations = _grouped(
        [
            (d.transition_event_id, d)
            for d in session.execute(
                sa.select(ProtocolDeviation.__table__, User.role.label("approver_role"))
                .join(User, User.id == ProtocolDeviation.approved_by_id)
                .where(ProtocolDeviation.participant_id.in_(ids))
            )
        ]
    )

    by_participant: dict[int, list[SessionRecord]] = defaultdict(list)
    first_session: dict[int, datetime] = {}
    for row in sessions:
        if row.started_at is not None and (
            row.participant_id not in first_session
            or row.started_at < first_session[row.participant_id]
        ):
            first_session[row.participant_id] = row.started_at
        by_participant[row.participant_id].append(
            SessionRecord(
                id=row.id,
                kind=row.kind,
                cycle=row.cycle,
                status=row.status,
                started_at=row.started_at,
                ended_at=row.ended_at,
                therapists_present=int(therapists.get(row.id, 0)),
                overnight_stay=row.overnight_stay,
                doses=tuple(
                    DoseRecord(
                        d.id,
                        d.kind,
                        d.amount_mg,
                        d.administered_at,
                        d.breach_justification is not None,
                    )
                    for d in doses.get(row.id, [])
                ),
                readings=tuple(
                    ReadingRecord(
                        r.id,
                        r.measured_at,
                        r.systolic,
                        r.diastolic,
                        r.heart_rate,
                        float(r.temperature_c),
                    )
                    for r in readings.get(row.id, [])
                ),
                alerts=tuple(
                    AlertRecord(a.id, a.sign, float(a.value), a.acknowledged_at is not None)
                    for a in alerts.get(row.id, [])
                ),
                effects_recorded=row.id in effects,
            )
        )

    records = []
    for participant in participants:
        pid = participant.id
        procedures = [
            t for t in (first_answer.get(pid), first_screen.get(pid), first_session.get(pid)) if t
        ]
        signed = signatures.get(pid)
        override_records = []
        interval_reasons = []
        for event in overrides.get(pid, []):
            codes = tuple(
                failure["code"]
                for check in event.guard_results
                for failure in check.get("overridden", [])
            )
            devs = tuple(
                (d.guard_code, d.reason, d.approver_role) for d in deviations.get(event.id, [])
            )
            override_records.append(
                OverrideRecord(event.id, event.transition, event.occurred_at, codes, devs)
            )
            interval_reasons += [
                f"{code}: {reason}" for code, reason, _ in devs if code == "dosing_interval"
            ]
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
                sessions=tuple(by_participant.get(pid, [])),
                adverse_events=tuple(
                    AdverseEventRecord(
                        e.id,
                        e.term,
                        e.grade,
                        e.serious,
                        e.relatedness,
                        e.assessed_by_id in investigators,
                        e.report_due_at,
                        e.reported_at,
                    )
                    for e in events.get(pid, [])
                ),
                overrides=tuple(override_records),
                interval_deviations=tuple(interval_reasons),
            )
        )
    return records


def batches(
    session: Session, query: sa.Select[Participant], size: int = BATCH
) -> Iterator[list[Participant]]:
    """The participants of ``query`` in study-id order, ``size`` at a time (keyset paging)."""
    last = ""
    while True:
        chunk = list(
            session.scalars(
                query.where(Participant.study_id > last).order_by(Participant.study_id).limit(size)
            )
        )
        if not chunk:
            return
        yield chunk
        last = chunk[-1].study_id
