"""Session and safety pages: scheduling, the session page (start, end, readings, doses and
alerts as they happen, effects, screens, notes), the adverse event page, and the safety forms
of the participant page.

Each POST parses a form, calls one service and redirects; a refusal re-renders the page with
every reason and a 4xx status (400 for invalid input, 422 for a rule), so the edge rolls back
whatever was half-done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm

from tracker.auth.models import User
from tracker.auth.session import current_actor
from tracker.db import get_session, utcnow
from tracker.errors import DomainError
from tracker.participants import queries as participant_queries
from tracker.participants.models import Participant
from tracker.participants.views import render_participant
from tracker.protocol import Role
from tracker.security import Permission, requires
from tracker.sessions import pages, services
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
from tracker.sessions.models import TherapySession

bp = Blueprint("sessions", __name__)


def _user() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _participant(participant_id: int) -> Participant:
    return participant_queries.get_participant(get_session(), _user(), participant_id)


def _therapy_session(session_id: int) -> tuple[TherapySession, Participant]:
    return services.get_session_and_participant_for(get_session(), _user(), session_id)


def _form_error(form: FlaskForm, error: DomainError) -> None:
    form.form_errors.extend(error.details or [error.message])


def _attempt(form: FlaskForm, action: Callable[[], Any]) -> tuple[Any, int]:
    """Validate the form and run the service: (result, 0) when done, else (None, status)."""
    if not form.validate_on_submit():
        return None, 400
    try:
        return action(), 0
    except DomainError as error:
        _form_error(form, error)
        return None, error.status


def _yes(value: str | None) -> bool:
    return value == "yes"


# --- the participant page: sessions, safety records, notes -----------------------------------


def _participant_page(
    participant: Participant, key: str, form: FlaskForm, status: int
) -> ResponseReturnValue:
    sections = pages.participant_sections(get_session(), _user(), participant, {key: form})
    return render_participant(participant, status=status, sections=sections)


def _back_to_participant(participant: Participant, anchor: str) -> ResponseReturnValue:
    return redirect(url_for("participants.detail", participant_id=participant.id, _anchor=anchor))


@bp.route("/participants/<int:participant_id>/sessions", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def schedule(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = ScheduleSessionForm(prefix="schedule")
    form.kind.choices = [(k, label_of(k)) for k in ("preparation", "dosing", "integration")]
    form.set_therapist_choices(pages.therapist_choices(get_session(), participant.site_id))
    row, status = _attempt(
        form,
        lambda: services.schedule_session(
            get_session(),
            current_actor(),
            participant,
            kind=form.kind.data or "",
            scheduled_at=form.scheduled_at.data,  # type: ignore[arg-type]  # required: set once the form validates
            therapists=form.therapists.data or [],
        ),
    )
    if row is None:
        return _participant_page(participant, "schedule", form, status)
    flash(f"{label_of(row.kind)} session of cycle {row.cycle} scheduled.", "success")
    return redirect(url_for("sessions.detail", session_id=row.id))


@bp.route("/participants/<int:participant_id>/side-effects", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def side_effect(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = SideEffectForm(prefix="side")
    row, status = _attempt(
        form,
        lambda: services.record_side_effect(
            get_session(),
            current_actor(),
            participant,
            term=form.term.data or "",
            severity=form.severity.data or "",
            onset_at=form.onset_at.data,  # type: ignore[arg-type]  # required: set once the form validates
            resolved_at=form.resolved_at.data,
        ),
    )
    if row is None:
        return _participant_page(participant, "side", form, status)
    flash(f"Side effect “{row.term}” recorded.", "success")
    return _back_to_participant(participant, "safety-title")


@bp.route("/participants/<int:participant_id>/adverse-events", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def adverse_event_record(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = AdverseEventForm(prefix="ae")
    row, status = _attempt(
        form,
        lambda: services.record_adverse_event(
            get_session(),
            current_actor(),
            participant,
            term=form.term.data or "",
            onset_at=form.onset_at.data,  # type: ignore[arg-type]  # required: set once the form validates
            grade=int(form.grade.data or 0),
            serious=bool(form.serious.data),
            serious_criteria=form.serious_criteria.data or [],
            description=form.description.data,
            aware_at=form.aware_at.data,
        ),
    )
    if row is None:
        return _participant_page(participant, "ae", form, status)
    message = f"Adverse event “{row.term}” (grade {row.grade}) recorded."
    if row.serious:
        message += (
            f" Serious: {participant.study_id} is on hold; report it by "
            f"{row.report_due_at:%Y-%m-%d %H:%M} UTC."
        )
    flash(message, "success")
    return redirect(url_for("sessions.adverse_event", event_id=row.id))


@bp.route("/participants/<int:participant_id>/suicidality-screens", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def screen(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = SuicidalityScreenForm(prefix="screen")
    row, status = _attempt(form, lambda: _record_screen(participant, form, None))
    if row is None:
        return _participant_page(participant, "screen", form, status)
    _flash_screen(participant, row)
    return _back_to_participant(participant, "safety-title")


def _record_screen(
    participant: Participant, form: SuicidalityScreenForm, session_id: int | None
) -> Any:
    return services.record_suicidality_screen(
        get_session(),
        current_actor(),
        participant,
        ideation=_yes(form.ideation.data),
        intent=_yes(form.intent.data),
        plan=_yes(form.plan.data),
        behaviour=_yes(form.behaviour.data),
        screened_at=form.screened_at.data,
        session_id=session_id,
    )


def _flash_screen(participant: Participant, row: Any) -> None:
    if row.positive:
        flash(f"Positive suicidality screen recorded: {participant.study_id} is on hold.", "error")
    else:
        flash("Negative suicidality screen recorded.", "success")


@bp.route("/participants/<int:participant_id>/pregnancy-tests", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def pregnancy_test(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = PregnancyTestForm(prefix="pregnancy")
    row, status = _attempt(
        form,
        lambda: services.record_pregnancy_test(
            get_session(),
            current_actor(),
            participant,
            tested_at=form.tested_at.data,  # type: ignore[arg-type]  # required: set once the form validates
            result=form.result.data or "",
        ),
    )
    if row is None:
        return _participant_page(participant, "pregnancy", form, status)
    flash(f"Pregnancy test recorded: {row.result}.", "success")
    return _back_to_participant(participant, "safety-title")


@bp.route("/participants/<int:participant_id>/notes", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def participant_note(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = NoteForm(prefix="note")
    row, status = _attempt(
        form,
        lambda: services.add_note(
            get_session(), current_actor(), participant, form.text.data or ""
        ),
    )
    if row is None:
        return _participant_page(participant, "note", form, status)
    flash("Note saved.", "success")
    return _back_to_participant(participant, "notes-title")


@bp.route("/notes/<int:note_id>/corrections", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def amend_note(note_id: int) -> ResponseReturnValue:
    note = services.get_note(get_session(), _user(), note_id)
    participant = _participant(note.participant_id)
    prefix = pages.amend_prefix(note.id)
    form = AmendNoteForm(prefix=prefix)
    row, status = _attempt(
        form,
        lambda: services.amend_note(
            get_session(), current_actor(), note, form.text.data or "", form.reason.data or ""
        ),
    )
    if row is None:
        if note.session_id is not None:
            therapy_session, _ = _therapy_session(note.session_id)
            return _session_page(therapy_session, participant, prefix, form, status)
        return _participant_page(participant, prefix, form, status)
    flash(
        f"Note corrected: version {row.version} saved; earlier versions stay readable.", "success"
    )
    if note.session_id is not None:
        return redirect(
            url_for("sessions.detail", session_id=note.session_id, _anchor="notes-title")
        )
    return _back_to_participant(participant, "notes-title")


# --- the session page -----------------------------------------------------------------------


def _session_page(
    row: TherapySession,
    participant: Participant,
    key: str | None = None,
    form: FlaskForm | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    submitted = {key: form} if key and form is not None else {}
    context = pages.session_page(get_session(), _user(), participant, row, submitted)
    context["investigator"] = _user().role == Role.INVESTIGATOR.value
    return render_template("sessions/detail.html", **context), status


def _back_to_session(row: TherapySession, anchor: str) -> ResponseReturnValue:
    return redirect(url_for("sessions.detail", session_id=row.id, _anchor=anchor))


@bp.route("/sessions/<int:session_id>")
@requires(Permission.PARTICIPANTS_VIEW)
def detail(session_id: int) -> ResponseReturnValue:
    row, participant = _therapy_session(session_id)
    return _session_page(row, participant)


@bp.route("/sessions/<int:session_id>/record", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def update(session_id: int) -> ResponseReturnValue:
    row, participant = _therapy_session(session_id)
    form = SessionRecordForm(prefix="record")
    form.set_therapist_choices(pages.therapist_choices(get_session(), participant.site_id))
    overnight: dict[str, Any] = {}
    if row.kind == "dosing":
        value = form.overnight_stay.data
        overnight["overnight_stay"] = {"yes": True, "no": False}.get(value or "")
    result, status = _attempt(
        form,
        lambda: services.update_session(
            get_session(),
            current_actor(),
            row,
            started_at=form.started_at.data,
            ended_at=form.ended_at.data,
            status=form.status.data or row.status,
            therapists=form.therapists.data or [],
            **overnight,
        ),
    )
    if result is None:
        return _session_page(row, participant, "record", form, status)
    flash(f"Session saved ({row.status}).", "success")
    return _back_to_session(row, "session-title")


@bp.route("/sessions/<int:session_id>/vitals", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def vitals(session_id: int) -> ResponseReturnValue:
    row, participant = _therapy_session(session_id)
    form = VitalSignsForm(prefix="vitals")
    reading, status = _attempt(
        form,
        lambda: services.record_vital_signs(
            get_session(),
            current_actor(),
            row,
            measured_at=form.measured_at.data,  # type: ignore[arg-type]  # required: set once the form validates
            systolic=form.systolic.data or 0,
            diastolic=form.diastolic.data or 0,
            heart_rate=form.heart_rate.data or 0,
            temperature_c=form.temperature_c.data or 0.0,
        ),
    )
    if reading is None:
        return _session_page(row, participant, "vitals", form, status)
    if reading.alerts:
        signs = ", ".join(
            f"{label_of(a.sign)} {a.value:g} ≥ {a.threshold:g}" for a in reading.alerts
        )
        flash(
            f"Reading at {reading.measured_at:%H:%M} UTC breaches a threshold: {signs}. "
            "Acknowledge the alert with a note.",
            "error",
        )
        return _back_to_session(row, "alerts-title")
    flash(f"Reading at {reading.measured_at:%H:%M} UTC recorded.", "success")
    return _back_to_session(row, "record-title")


@bp.route("/sessions/<int:session_id>/doses", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def dose(session_id: int) -> ResponseReturnValue:
    row, participant = _therapy_session(session_id)
    form = DoseForm(prefix="dose")
    given, status = _attempt(
        form,
        lambda: services.record_dose(
            get_session(),
            current_actor(),
            row,
            administered_at=form.administered_at.data,  # type: ignore[arg-type]  # required: set once the form validates
            amount_mg=form.amount_mg.data or 0,
            kind=form.kind.data or "",
            # The service decides who may justify a breach, for the API and the page alike.
            breach_justification=form.breach_justification.data,
        ),
    )
    if given is None:
        return _session_page(row, participant, "dose", form, status)
    flash(
        f"{label_of(given.kind)} dose of {given.amount_mg} mg at "
        f"{given.administered_at:%H:%M} UTC recorded.",
        "success",
    )
    return _back_to_session(row, "record-title")


@bp.route("/alerts/<int:alert_id>/acknowledgement", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def acknowledge(alert_id: int) -> ResponseReturnValue:
    alert = services.get_alert(get_session(), _user(), alert_id)
    row, participant = _therapy_session(alert.session_id)
    prefix = f"ack{alert.id}"
    form = AcknowledgeForm(prefix=prefix)
    done, status = _attempt(
        form,
        lambda: services.acknowledge_alert(
            get_session(), current_actor(), alert, form.note.data or ""
        ),
    )
    if done is None:
        return _session_page(row, participant, prefix, form, status)
    flash(f"Alert ({label_of(alert.sign)} {alert.value:g}) acknowledged.", "success")
    return _back_to_session(row, "alerts-title")


@bp.route("/sessions/<int:session_id>/effects", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def effects(session_id: int) -> ResponseReturnValue:
    row, participant = _therapy_session(session_id)
    form = EffectsForm(prefix="effects")
    done, status = _attempt(
        form,
        lambda: services.record_effects(
            get_session(),
            current_actor(),
            row,
            effects=form.effects.data or [],
            none_observed=bool(form.none_observed.data),
            note=form.note.data,
        ),
    )
    if done is None:
        return _session_page(row, participant, "effects", form, status)
    flash("Effects checklist saved.", "success")
    return _back_to_session(row, "effects-title")


@bp.route("/sessions/<int:session_id>/suicidality-screens", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def session_screen(session_id: int) -> ResponseReturnValue:
    row, participant = _therapy_session(session_id)
    form = SuicidalityScreenForm(prefix="screen")
    done, status = _attempt(form, lambda: _record_screen(participant, form, row.id))
    if done is None:
        return _session_page(row, participant, "screen", form, status)
    _flash_screen(participant, done)
    return _back_to_session(row, "screen-title")


@bp.route("/sessions/<int:session_id>/notes", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def session_note(session_id: int) -> ResponseReturnValue:
    row, participant = _therapy_session(session_id)
    form = NoteForm(prefix="note")
    done, status = _attempt(
        form,
        lambda: services.add_note(
            get_session(), current_actor(), participant, form.text.data or "", session_id=row.id
        ),
    )
    if done is None:
        return _session_page(row, participant, "note", form, status)
    flash("Session note saved.", "success")
    return _back_to_session(row, "notes-title")


# --- the adverse event page -----------------------------------------------------------------


def _event_page(
    event_id: int, key: str | None = None, form: FlaskForm | None = None, status: int = 200
) -> ResponseReturnValue:
    event = services.get_adverse_event(get_session(), _user(), event_id)
    participant = _participant(event.participant_id)
    submitted = {key: form} if key and form is not None else {}
    context = pages.adverse_event_page(get_session(), participant, event, submitted)
    return render_template("sessions/adverse_event.html", **context), status


@bp.route("/adverse-events/<int:event_id>")
@requires(Permission.PARTICIPANTS_VIEW)
def adverse_event(event_id: int) -> ResponseReturnValue:
    return _event_page(event_id)


@bp.route("/adverse-events/<int:event_id>/assessment", methods=["POST"])
@requires(Permission.ADVERSE_EVENTS_ASSESS)
def assess_adverse_event(event_id: int) -> ResponseReturnValue:
    event = services.get_adverse_event(get_session(), _user(), event_id)
    form = AdverseEventAssessmentForm(prefix="assess")
    done, status = _attempt(
        form,
        lambda: services.assess_adverse_event(
            get_session(),
            current_actor(),
            event,
            relatedness=form.relatedness.data or "",
            expected=_yes(form.expected.data),
            note=form.note.data,
        ),
    )
    if done is None:
        return _event_page(event_id, "assess", form, status)
    flash("Assessment recorded.", "success")
    return redirect(url_for("sessions.adverse_event", event_id=event.id))


@bp.route("/adverse-events/<int:event_id>/follow-up", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def follow_up_adverse_event(event_id: int) -> ResponseReturnValue:
    event = services.get_adverse_event(get_session(), _user(), event_id)
    form = AdverseEventFollowUpForm(prefix="follow")
    done, status = _attempt(
        form,
        lambda: services.update_adverse_event(
            get_session(),
            current_actor(),
            event,
            outcome=form.outcome.data or None,
            resolved_at=form.resolved_at.data,
            reported_at=form.reported_at.data,
        ),
    )
    if done is None:
        return _event_page(event_id, "follow", form, status)
    flash("Follow-up saved.", "success")
    return redirect(url_for("sessions.adverse_event", event_id=event.id))


@bp.app_template_global("now")
def _now() -> Any:
    return utcnow()
