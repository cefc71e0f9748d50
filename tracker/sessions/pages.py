"""What the session pages and the participant page's session and safety sections show, read
in a fixed number of queries per page; and their forms, each with its own prefix so that many
forms share one page (a form that failed is passed back in ``submitted`` to show its errors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.participants import queries as participant_queries
from tracker.participants.models import Participant
from tracker.participants.presenters import therapist_choices as choices_of
from tracker.protocol import CLOSED_STATES, SESSION_KIND_FOR_STATE, State, open_for
from tracker.protocol.dosing import SESSION_EFFECTS
from tracker.sessions import queries
from tracker.sessions.chart import ChartDose, ChartReading, render_vitals_chart
from tracker.sessions.forms import (
    AcknowledgeForm,
    AdverseEventAssessmentForm,
    AdverseEventFollowUpForm,
    AdverseEventForm,
    AmendNoteForm,
    DoseForm,
    EffectsForm,
    NoteForm,
    PregnancyTestForm,
    ScheduleSessionForm,
    SessionRecordForm,
    SideEffectForm,
    SuicidalityScreenForm,
    VitalSignsForm,
    label_of,
)
from tracker.sessions.models import AdverseEvent, Note, TherapySession
from tracker.study.services import definition_of

Submitted = dict[str, FlaskForm]
EFFECT_LABELS = dict(SESSION_EFFECTS)


@dataclass
class NoteThread:
    """A note and its corrections, oldest version first."""

    versions: list[Note] = field(default_factory=list)

    @property
    def root_id(self) -> int:
        return self.versions[0].id

    @property
    def latest(self) -> Note:
        return self.versions[-1]

    @property
    def session_id(self) -> int | None:
        return self.versions[0].session_id


def note_threads(notes: list[Note]) -> list[NoteThread]:
    threads: dict[int, NoteThread] = {}
    for note in sorted(notes, key=lambda n: (n.root_id or n.id, n.version)):
        threads.setdefault(note.root_id or note.id, NoteThread()).versions.append(note)
    return sorted(threads.values(), key=lambda t: t.versions[0].created_at)


def amend_prefix(note_id: int) -> str:
    return f"amend{note_id}"


def _amend_forms(threads: list[NoteThread], submitted: Submitted) -> dict[int, FlaskForm]:
    forms: dict[int, FlaskForm] = {}
    for thread in threads:
        prefix = amend_prefix(thread.latest.id)
        forms[thread.latest.id] = submitted.get(prefix) or AmendNoteForm(
            prefix=prefix, formdata=None, data={"text": thread.latest.text}
        )
    return forms


def therapist_choices(session: Session, site_id: int) -> list[tuple[str, str]]:
    return choices_of(participant_queries.therapists_of_site(session, site_id))


def is_open(participant: Participant) -> bool:
    return State(participant.state) not in CLOSED_STATES


def schedule_refusal(participant: Participant) -> str | None:
    """Why no session can be scheduled in the participant's state (the service says the same
    on a POST); None when a kind is allowed."""
    state = State(participant.state)
    if state in SESSION_KIND_FOR_STATE:
        return None
    allowed = ", ".join(
        f"{kind} sessions in {s.value.replace('_', ' ')}"
        for s, kind in SESSION_KIND_FOR_STATE.items()
    )
    return (
        f"No session can be scheduled while {participant.study_id} is "
        f"{state.value.replace('_', ' ')} (only {allowed})."
    )


def participant_sections(
    session: Session, user: User, participant: Participant, submitted: Submitted | None = None
) -> dict[str, Any]:
    """The participant page's sessions, safety records and notes, with their forms."""
    submitted = submitted or {}
    sessions = queries.sessions_of(session, participant.id)
    events = queries.adverse_events_of(session, participant.id)
    side_effects = queries.side_effects_of(session, participant.id)
    screens = queries.screens_of(session, participant.id)
    pregnancy_tests = queries.pregnancy_tests_of(session, participant.id)
    threads = note_threads(queries.notes_of(session, participant.id))
    dosing_rows = [s for s in sessions if s.kind == "dosing"]
    dosing_records = queries.dosing_records_of(session, [s.id for s in dosing_rows])
    people = participant_queries.people_of_page(
        session,
        participant.site_id,
        {e.assessed_by_id for e in events}
        | {e.recorded_by_id for e in events}
        | {s.recorded_by_id for s in side_effects}
        | {s.recorded_by_id for s in screens}
        | {t.recorded_by_id for t in pregnancy_tests},
        participant_id=participant.id,
    )
    choices = choices_of(people.site_therapists)
    kind = SESSION_KIND_FOR_STATE.get(State(participant.state))
    schedule = submitted.get("schedule")
    if schedule is None:
        schedule = ScheduleSessionForm(prefix="schedule", formdata=None)
        schedule.scheduled_at.data = None
    schedule.kind.choices = [(kind, label_of(kind))] if kind else []
    schedule.set_therapist_choices(choices)
    forms: dict[str, FlaskForm] = {
        "schedule": schedule,
        "side": submitted.get("side") or SideEffectForm(prefix="side", formdata=None),
        "ae": submitted.get("ae") or AdverseEventForm(prefix="ae", formdata=None),
        "screen": submitted.get("screen") or SuicidalityScreenForm(prefix="screen", formdata=None),
        "pregnancy": submitted.get("pregnancy")
        or PregnancyTestForm(prefix="pregnancy", formdata=None),
        "note": submitted.get("note") or NoteForm(prefix="note", formdata=None),
    }
    return {
        "sessions": sessions,
        "sessions_by_id": {s.id: s for s in sessions},
        "dosing_records": dosing_records,
        "dosing_charts": [
            (row, vitals_chart(participant, row, dosing_records[row.id]))
            for row in dosing_rows
            if dosing_records[row.id].readings
        ],
        "schedule_refusal": schedule_refusal(participant),
        "adverse_events": events,
        "side_effects": side_effects,
        "screens": screens,
        "pregnancy_tests": pregnancy_tests,
        "note_threads": threads,
        "amend_forms": _amend_forms(threads, submitted),
        "people": people.by_id,
        "assigned": people.assigned,
        "session_forms": forms,
        "therapist_choices": choices,
        "recording_open": is_open(participant),
        "open_for": open_for(State(participant.state)),
    }


# --- the session page -----------------------------------------------------------------------


def _record_form(row: TherapySession, choices: list[tuple[str, str]]) -> SessionRecordForm:
    overnight = "" if row.overnight_stay is None else ("yes" if row.overnight_stay else "no")
    form = SessionRecordForm(
        prefix="record",
        formdata=None,
        data={
            "started_at": row.started_at,
            "ended_at": row.ended_at,
            "status": row.status,
            "therapists": [t.username for t in row.therapists],
            "overnight_stay": overnight,
        },
    )
    form.set_therapist_choices(choices)
    return form


def vitals_chart(
    participant: Participant, row: TherapySession, record: queries.DosingRecord
) -> Markup:
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
    return Markup(svg)  # noqa: S704 - numbers and escaped text only (tracker.sessions.chart)


def session_page(
    session: Session,
    user: User,
    participant: Participant,
    row: TherapySession,
    submitted: Submitted | None = None,
) -> dict[str, Any]:
    submitted = submitted or {}
    dosing = row.kind == "dosing"
    record = queries.dosing_record(session, row) if dosing else None
    notes = [n for n in queries.notes_of(session, participant.id) if n.session_id == row.id]
    threads = note_threads(notes)
    screens = [s for s in queries.screens_of(session, participant.id) if s.session_id == row.id]
    ids: set[int | None] = {row.created_by_id} | {s.recorded_by_id for s in screens}
    if record is not None:
        ids |= {d.recorded_by_id for d in record.doses} | {d.justified_by_id for d in record.doses}
        ids |= {a.acknowledged_by_id for r in record.readings for a in r.alerts}
        ids |= {r.recorded_by_id for r in record.readings}
        if record.effects is not None:
            ids.add(record.effects.recorded_by_id)
    people = participant_queries.people_of_page(session, participant.site_id, ids)
    choices = choices_of(people.site_therapists)
    forms: dict[str, FlaskForm] = {
        "record": submitted.get("record") or _record_form(row, choices),
        "screen": submitted.get("screen") or SuicidalityScreenForm(prefix="screen", formdata=None),
        "note": submitted.get("note") or NoteForm(prefix="note", formdata=None),
    }
    forms["record"].set_therapist_choices(choices)
    acknowledge: dict[int, FlaskForm] = {}
    if record is not None:
        forms["vitals"] = submitted.get("vitals") or VitalSignsForm(prefix="vitals", formdata=None)
        forms["dose"] = submitted.get("dose") or DoseForm(prefix="dose", formdata=None)
        effects = record.effects
        forms["effects"] = submitted.get("effects") or EffectsForm(
            prefix="effects",
            formdata=None,
            data={
                "effects": effects.effects if effects else [],
                "none_observed": effects.none_observed if effects else False,
                "note": effects.note if effects else "",
            },
        )
        for alert in record.open_alerts:
            prefix = f"ack{alert.id}"
            acknowledge[alert.id] = submitted.get(prefix) or AcknowledgeForm(
                prefix=prefix, formdata=None
            )
    return {
        "participant": participant,
        "row": row,
        "dosing": dosing,
        "record": record,
        "protocol": definition_of(participant.protocol_version),
        "chart": vitals_chart(participant, row, record) if record is not None else None,
        "note_threads": threads,
        "amend_forms": _amend_forms(threads, submitted),
        "screens": screens,
        "people": people.by_id,
        "forms": forms,
        "acknowledge_forms": acknowledge,
        "effect_labels": EFFECT_LABELS,
        "recording_open": is_open(participant),
        "open_for": open_for(State(participant.state)),
    }


def adverse_event_page(
    session: Session,
    participant: Participant,
    event: AdverseEvent,
    submitted: Submitted | None = None,
) -> dict[str, Any]:
    submitted = submitted or {}
    people = queries.users_by_id(session, {event.recorded_by_id, event.assessed_by_id})
    assessment = submitted.get("assess") or AdverseEventAssessmentForm(
        prefix="assess",
        formdata=None,
        data={
            "relatedness": event.relatedness or "",
            "expected": None if event.expected is None else ("yes" if event.expected else "no"),
            "note": event.assessment_note or "",
        },
    )
    follow_up = submitted.get("follow") or AdverseEventFollowUpForm(
        prefix="follow",
        formdata=None,
        data={
            "outcome": event.outcome,
            "resolved_at": event.resolved_at,
            "reported_at": event.reported_at,
        },
    )
    return {
        "participant": participant,
        "event": event,
        "people": people,
        "assessment_form": assessment,
        "follow_up_form": follow_up,
    }


# --- the dashboard --------------------------------------------------------------------------


def dashboard_work(session: Session, user: User) -> dict[str, Any]:
    """What is due or overdue, in a fixed number of queries (each list is one query, limited)."""
    events = queries.open_adverse_events(session, user)
    context: dict[str, Any] = {
        "integration_due": queries.integration_due(session, user),
        "report_deadlines": [(e, p) for e, p in events if e.serious and e.reported_at is None],
        "awaiting_assessment": [(e, p) for e, p in events if e.relatedness is None],
        "alerts": queries.open_alerts(session, user),
        "therapist_view": user.role == "therapist",
    }
    if user.role == "therapist":
        context["my_participants"] = queries.active_participants(session, user)
        context["today"] = queries.sessions_today(session, user)
    return context
