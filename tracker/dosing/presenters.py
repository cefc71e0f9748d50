"""What the pages show of a dosing session's records: the vital-signs chart and the effects'
labels."""

from __future__ import annotations

from markupsafe import Markup

from tracker.dosing.chart import ChartDose, ChartReading, render_vitals_chart
from tracker.dosing.queries import DosingRecord
from tracker.participants.models import Participant
from tracker.protocol.dosing import SESSION_EFFECTS
from tracker.sessions.models import TherapySession
from tracker.study.services import definition_of

EFFECT_LABELS = dict(SESSION_EFFECTS)


def vitals_chart(participant: Participant, row: TherapySession, record: DosingRecord) -> Markup:
    """The session's chart: SVG built by the chart module from numbers and escaped text only."""
    readings = [
        ChartReading(
            measured_at=r.measured_at,
            systolic=r.systolic,
            diastolic=r.diastolic,
            heart_rate=r.heart_rate,
            temperature_c=float(r.temperature_c),
            alert_signs=tuple(a.sign for a in r.alerts),
        )
        for r in record.readings
    ]
    doses = [ChartDose(d.administered_at, d.amount_mg, d.kind) for d in record.doses]
    svg = render_vitals_chart(
        readings,
        doses,
        definition_of(participant.protocol_version),
        start=row.started_at or row.scheduled_at,
        end=row.ended_at,
        title=f"Vital signs of {participant.study_id}, dosing session of cycle {row.cycle}",
    )
    return Markup(svg)  # noqa: S704 - numbers and escaped text only (tracker.dosing.chart)
