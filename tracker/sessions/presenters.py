"""What the session page, the participant page's record sections and the dashboard's work
lists show, read in a fixed number of queries per page. The pages are composed of several
features' records: each feature's presenters give its part, this module puts them together.
Forms carry their own prefix so that many share one page (a form that failed is passed back in
``submitted`` to show its errors)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from wtforms.fields.choices import SelectChoice

from tracker.auth.models import User
from tracker.db import utcnow
from tracker.dosing import queries as dosing_queries
from tracker.dosing.forms import AcknowledgeForm, DoseForm, EffectsForm, VitalSignsForm
from tracker.dosing.presenters import EFFECT_LABELS, vitals_chart
from tracker.form_fields import label_of
from tracker.notes import queries as notes_queries
from tracker.notes.forms import NoteForm
from tracker.notes.presenters import amend_forms, note_threads
from tracker.participants import queries as participant_queries
from tracker.participants.models import Participant
from tracker.participants.presenters import therapist_choices as choices_of
from tracker.pharmacy import queries as pharmacy_queries
from tracker.protocol import CLOSED_STATES, SESSION_KIND_FOR_STATE, SessionKind, State, open_for
from tracker.safety import queries as safety_queries
from tracker.safety.forms import (
    AdverseEventForm,
    PregnancyTestForm,
    SideEffectForm,
    SuicidalityScreenForm,
)
from tracker.sessions import queries
from tracker.sessions.forms import ScheduleSessionForm, SessionRecordForm
from tracker.sessions.models import TherapySession
from tracker.site_time import zone
from tracker.study.services import definition_of

Submitted = dict[str, FlaskForm]


def therapist_choices(db: Session, site_id: int) -> list[tuple[str, str]]:
    return choices_of(participant_queries.therapists_of_site(db, site_id))


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
    db: Session, user: User, participant: Participant, submitted: Submitted | None = None
) -> dict[str, Any]:
    """The participant page's sessions, safety records and notes, with their forms."""
    submitted = submitted or {}
    sessions = queries.sessions_of(db, participant.id)
    events = safety_queries.adverse_events_of(db, participant.id)
    side_effects = safety_queries.side_effects_of(db, participant.id)
    screens = safety_queries.screens_of(db, participant.id)
    pregnancy_tests = safety_queries.pregnancy_tests_of(db, participant.id)
    threads = note_threads(notes_queries.notes_of(db, participant.id))
    dosing_rows = [s for s in sessions if s.kind == SessionKind.DOSING]
    dosing_records = dosing_queries.dosing_records_of(db, [s.id for s in dosing_rows])
    people = participant_queries.people_of_page(
        db,
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
        "amend_forms": amend_forms(threads, submitted),
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


def session_page(
    db: Session,
    user: User,
    participant: Participant,
    row: TherapySession,
    submitted: Submitted | None = None,
) -> dict[str, Any]:
    submitted = submitted or {}
    dosing = row.kind == SessionKind.DOSING
    record = dosing_queries.dosing_record(db, row) if dosing else None
    notes = [n for n in notes_queries.notes_of(db, participant.id) if n.session_id == row.id]
    threads = note_threads(notes)
    screens = [s for s in safety_queries.screens_of(db, participant.id) if s.session_id == row.id]
    ids: set[int | None] = {row.created_by_id} | {s.recorded_by_id for s in screens}
    if record is not None:
        ids |= {d.recorded_by_id for d in record.doses} | {d.justified_by_id for d in record.doses}
        ids |= {a.acknowledged_by_id for r in record.readings for a in r.alerts}
        ids |= {r.recorded_by_id for r in record.readings}
        if record.effects is not None:
            ids.add(record.effects.recorded_by_id)
    people = participant_queries.people_of_page(db, participant.site_id, ids)
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
        dispensings = pharmacy_queries.dispensings_for(db, row.id)
        standing = [d for d in dispensings if not d.corrected]
        # No choice to make with none or one dispensing (the service names the one).
        forms["dose"].dispensing_id.choices = (
            [] if len(standing) <= 1 else [SelectChoice("", "— choose —")]
        ) + [
            SelectChoice(str(d.id), f"{d.number} ({d.use.available_mg:g} mg left)")
            for d in standing
        ]
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
        "dispensings": dispensings if record is not None else [],
        "protocol": definition_of(participant.protocol_version),
        "chart": vitals_chart(participant, row, record) if record is not None else None,
        "note_threads": threads,
        "amend_forms": amend_forms(threads, submitted),
        "screens": screens,
        "people": people.by_id,
        "forms": forms,
        "acknowledge_forms": acknowledge,
        "effect_labels": EFFECT_LABELS,
        "recording_open": is_open(participant),
        "open_for": open_for(State(participant.state)),
    }


# --- the dashboard --------------------------------------------------------------------------


def site_midnight(user: User) -> datetime:
    """The start of the user's site's today, in UTC (a site in Berlin starts its day an hour
    before UTC does)."""
    tz = zone(user.site.time_zone) if user.site is not None else UTC
    local = utcnow().astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


def dashboard_work(db: Session, user: User) -> dict[str, Any]:
    """What is due or overdue, in a fixed number of queries (each list is one query, limited)."""
    events = safety_queries.open_adverse_events(db, user)
    context: dict[str, Any] = {
        "integration_due": queries.integration_due(db, user),
        "report_deadlines": [(e, p) for e, p in events if e.serious and e.reported_at is None],
        "awaiting_assessment": [(e, p) for e, p in events if e.relatedness is None],
        "alerts": dosing_queries.open_alerts(db, user),
        "therapist_view": user.role == "therapist",
    }
    # The site's staff act on the week and on what was left open; the auditor reads reports.
    if user.role in ("coordinator", "investigator", "therapist"):
        week, left_open = queries.week_and_left_open(db, user, site_midnight(user))
        context["open_too_long"] = left_open
        if user.role != "therapist":
            context["week"] = week
    if user.role == "therapist":
        context["my_participants"] = queries.active_participants(db, user)
        context["today"] = queries.sessions_today(db, user, day=site_midnight(user))
    return context
