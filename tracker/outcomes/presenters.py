"""What the pages and the API show of a participant's outcome measures: each timepoint with its
window and status, and each assessment with its change from baseline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from tracker.db import utcnow
from tracker.outcomes import queries
from tracker.outcomes.chart import trajectory_charts
from tracker.outcomes.models import Assessment
from tracker.participants.models import Participant
from tracker.participants.queries import visible_to
from tracker.protocol import ProtocolDefinition
from tracker.protocol.outcomes import (
    InstrumentKind,
    TimepointStatus,
    change_from_baseline,
    missing_instruments,
    timepoint_status,
    window_of,
)
from tracker.study.services import definition_of


@dataclass(frozen=True)
class TimepointRow:
    code: str
    title: str
    instruments: list[str]
    status: TimepointStatus
    window_start: date | None
    window_end: date | None
    follow_up: bool
    missed_reason: str | None


def assessment_out(
    assessment: Assessment, protocol: ProtocolDefinition, baselines: dict[str, int]
) -> dict[str, Any]:
    assert protocol.outcomes is not None
    change = change_from_baseline(
        protocol.outcomes,
        assessment.instrument,
        baselines.get(assessment.instrument),
        assessment.total,
        timepoint=assessment.timepoint,
    )
    return {
        "id": assessment.id,
        "timepoint": assessment.timepoint,
        "instrument": assessment.instrument,
        "administered_at": assessment.administered_at,
        "items": dict(assessment.items),
        "total": assessment.total,
        "subscales": dict(assessment.subscales),
        "band": assessment.band,
        "baseline_total": change.baseline_total,
        "change_from_baseline": change.change_from_baseline,
        "response": change.response,
        "remission": change.remission,
        "in_window": assessment.in_window,
        "reason": assessment.reason,
        "recorded_by": assessment.recorded_by.username,
        "recorded_at": assessment.recorded_at,
    }


def recorded_assessment(
    db: Session, participant: Participant, assessment: Assessment
) -> dict[str, Any]:
    """One assessment as the API answers its recording, with its change from baseline."""
    protocol = definition_of(participant.protocol_version)
    baseline = queries.baseline_total(db, participant, protocol, assessment.instrument)
    baselines = {} if baseline is None else {assessment.instrument: baseline}
    return assessment_out(assessment, protocol, baselines)


def outcome_record(db: Session, participant: Participant) -> dict[str, Any]:
    """The participant's timepoints and assessments, as the API returns them."""
    protocol = definition_of(participant.protocol_version)
    assessments = queries.assessments_of(db, participant.id)
    missed = {m.timepoint: m.reason for m in queries.missed_of(db, participant.id)}
    recorded = {(a.timepoint, a.instrument) for a in assessments}
    done = {t.code for t in protocol.timepoints if not missing_instruments(t, recorded)}
    anchors = queries.anchor_days(db, participant, protocol)
    today = utcnow().date()
    timepoints = []
    for point in protocol.timepoints:
        window = window_of(point, anchors)
        timepoints.append(
            TimepointRow(
                code=point.code,
                title=point.title,
                instruments=list(point.instruments),
                status=timepoint_status(
                    point, anchors, today, done=point.code in done, missed=point.code in missed
                ),
                window_start=window[0] if window else None,
                window_end=window[1] if window else None,
                follow_up=point.follow_up,
                missed_reason=missed.get(point.code),
            ).__dict__
        )
    baselines: dict[str, int] = {}
    if protocol.outcomes is not None:
        for a in assessments:
            if a.timepoint == protocol.outcomes.baseline_timepoint:
                baselines[a.instrument] = a.total
    return {
        "participant": participant.study_id,
        "state": str(participant.state),
        "timepoints": timepoints,
        "assessments": (
            [assessment_out(a, protocol, baselines) for a in assessments]
            if protocol.outcomes is not None
            else []
        ),
    }


def score_charts(db: Session, participant: Participant) -> list[dict[str, Any]]:
    """One trajectory chart per instrument the participant has totals for, primary first."""
    protocol = definition_of(participant.protocol_version)
    totals = [
        (a.instrument, a.timepoint, a.total) for a in queries.assessments_of(db, participant.id)
    ]
    return [
        {"instrument": instrument, "svg": Markup(svg)}  # noqa: S704 - escaped text and numbers only
        for instrument, svg in trajectory_charts(protocol, totals)
    ]


def rater_work(db: Session, user: Any) -> list[dict[str, Any]]:
    """The rater's work list: each assigned participant's due and overdue timepoints that ask
    for a clinician-rated instrument not yet recorded (a fixed number of queries however many
    participants the rater has)."""
    rows = []
    today = utcnow().date()
    participants = list(db.scalars(visible_to(user).order_by(Participant.study_id)))
    anchors_by_id = queries.anchors_of(db, participants)
    recorded_by_id, missed_by_id = queries.recorded_of(db, list(anchors_by_id))
    for participant in participants:
        anchors = anchors_by_id.get(participant.id)
        if anchors is None:
            continue
        protocol = definition_of(participant.protocol_version)
        recorded = recorded_by_id[participant.id]
        missed = missed_by_id[participant.id]
        for point in protocol.timepoints:
            pending = [
                code
                for code in missing_instruments(point, recorded)
                if protocol.instrument(code).kind == InstrumentKind.CLINICIAN
            ]
            status = timepoint_status(
                point, anchors, today, done=not pending, missed=point.code in missed
            )
            if status in (TimepointStatus.DUE, TimepointStatus.OVERDUE):
                window = window_of(point, anchors)
                rows.append(
                    {
                        "participant": participant,
                        "timepoint": point,
                        "instruments": pending,
                        "status": status,
                        "window": window,
                    }
                )
    return rows
