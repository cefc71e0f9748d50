"""Session pages: scheduling from the participant page, the session page and its record
(start, end, status, therapists, overnight stay). The session page and the participant page's
record sections are composed of several features' records (``tracker.sessions.presenters``);
the dosing, safety and notes views render them again through the helpers here when a form of
theirs is refused.

Each POST parses a form, calls one service and redirects; a refusal re-renders the page with
every reason and a 4xx status (400 for invalid input, 422 for a rule), so the edge rolls back
whatever was half-done.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm

from tracker.auth.signin import current_actor
from tracker.db import get_db, utcnow
from tracker.form_fields import label_of
from tracker.pages import attempt, signed_in_user
from tracker.participants import queries as participant_queries
from tracker.participants.models import Participant
from tracker.participants.views import render_participant
from tracker.protocol import Role, SessionKind
from tracker.security import Permission, requires
from tracker.sessions import presenters, queries, services
from tracker.sessions.forms import ScheduleSessionForm, SessionRecordForm
from tracker.sessions.models import TherapySession
from tracker.site_time import viewer_zone

bp = Blueprint("sessions", __name__)


def participant_for_page(participant_id: int) -> Participant:
    return participant_queries.get_participant(get_db(), signed_in_user(), participant_id)


def therapy_session_for_page(session_id: int) -> tuple[TherapySession, Participant]:
    return services.get_session_and_participant_for(get_db(), signed_in_user(), session_id)


# --- the participant page: sessions, safety records, notes -----------------------------------


def render_participant_records(
    participant: Participant, key: str, form: FlaskForm, status: int
) -> ResponseReturnValue:
    sections = presenters.participant_sections(get_db(), signed_in_user(), participant, {key: form})
    return render_participant(participant, status=status, sections=sections)


def back_to_participant(participant: Participant, anchor: str) -> ResponseReturnValue:
    return redirect(url_for("participants.detail", participant_id=participant.id, _anchor=anchor))


@bp.route("/participants/<int:participant_id>/sessions", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def schedule(participant_id: int) -> ResponseReturnValue:
    participant = participant_for_page(participant_id)
    form = ScheduleSessionForm(prefix="schedule")
    form.kind.choices = [(k, label_of(k)) for k in SessionKind]
    form.set_therapist_choices(presenters.therapist_choices(get_db(), participant.site_id))
    row, status = attempt(
        form,
        lambda: services.schedule_session(
            get_db(),
            current_actor(),
            participant,
            kind=form.kind.data or "",
            scheduled_at=form.scheduled_at.data,  # type: ignore[arg-type]  # required: set once the form validates
            therapists=form.therapists.data or [],
        ),
    )
    if row is None:
        return render_participant_records(participant, "schedule", form, status)
    flash(f"{label_of(row.kind)} session of cycle {row.cycle} scheduled.", "success")
    return redirect(url_for("sessions.detail", session_id=row.id))


# --- the site schedule ----------------------------------------------------------------------


@bp.route("/schedule")
@requires(Permission.PARTICIPANTS_VIEW)
def schedule_week() -> ResponseReturnValue:
    """A week of the site's sessions, one column per day (UTC days), server-rendered;
    ``?week=2026-W49`` picks the ISO week, this week by default."""
    tz = viewer_zone()
    today = utcnow().astimezone(tz).date()
    raw = request.args.get("week", "")
    try:
        year, week = (int(part) for part in raw.split("-W")) if raw else today.isocalendar()[:2]
        monday = date.fromisocalendar(year, week, 1)
    except ValueError:
        abort(400, description="The week is given as YYYY-Www, for example 2026-W49.")
    # The site's days, from its midnights.
    start = datetime.combine(monday, time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(monday + timedelta(days=7), time(), tzinfo=tz).astimezone(UTC)
    rows = queries.sessions_between(get_db(), signed_in_user(), start, end)
    days = [
        (
            monday + timedelta(days=i),
            [
                (s, p)
                for s, p in rows
                if s.scheduled_at.astimezone(tz).date() == monday + timedelta(days=i)
            ],
        )
        for i in range(7)
    ]

    def label(day: date) -> str:
        iso = day.isocalendar()
        return f"{iso[0]}-W{iso[1]:02d}"

    return render_template(
        "sessions/schedule.html",
        days=days,
        week=label(monday),
        previous=label(monday - timedelta(days=7)),
        following=label(monday + timedelta(days=7)),
        today=today,
    )


# --- the session page -----------------------------------------------------------------------


def render_session(
    row: TherapySession,
    participant: Participant,
    key: str | None = None,
    form: FlaskForm | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    submitted = {key: form} if key and form is not None else {}
    context = presenters.session_page(get_db(), signed_in_user(), participant, row, submitted)
    context["investigator"] = signed_in_user().role == Role.INVESTIGATOR.value
    return render_template("sessions/detail.html", **context), status


def back_to_session(row: TherapySession, anchor: str) -> ResponseReturnValue:
    return redirect(url_for("sessions.detail", session_id=row.id, _anchor=anchor))


@bp.route("/sessions/<int:session_id>")
@requires(Permission.PARTICIPANTS_VIEW)
def detail(session_id: int) -> ResponseReturnValue:
    row, participant = therapy_session_for_page(session_id)
    return render_session(row, participant)


@bp.route("/sessions/<int:session_id>/record", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def update(session_id: int) -> ResponseReturnValue:
    row, participant = therapy_session_for_page(session_id)
    form = SessionRecordForm(prefix="record")
    form.set_therapist_choices(presenters.therapist_choices(get_db(), participant.site_id))
    overnight: dict[str, Any] = {}
    if row.kind == SessionKind.DOSING:
        value = form.overnight_stay.data
        overnight["overnight_stay"] = {"yes": True, "no": False}.get(value or "")
    result, status = attempt(
        form,
        lambda: services.update_session(
            get_db(),
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
        return render_session(row, participant, "record", form, status)
    flash(f"Session saved ({row.status}).", "success")
    return back_to_session(row, "session-title")


@bp.app_template_global("now")
def _now() -> Any:
    return utcnow()
