"""Safety pages: side effects, adverse events (recorded, assessed, followed up), suicidality
screens and pregnancy tests, from the participant page, the session page and the adverse-event
page. A refusal re-renders the page with every reason and a 4xx status."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm

from tracker.audit.services import record_event
from tracker.auth.signin import current_actor
from tracker.db import get_db, utcnow, write_unit
from tracker.pages import attempt, signed_in_user, yes
from tracker.participants.models import Participant
from tracker.safety import presenters, queries, services
from tracker.safety.forms import (
    AdverseEventAssessmentForm,
    AdverseEventFollowUpForm,
    AdverseEventForm,
    PregnancyTestForm,
    SideEffectForm,
    SuicidalityScreenForm,
)
from tracker.safety.models import AdverseEvent
from tracker.security import Permission, requires
from tracker.sessions.views import (
    back_to_participant,
    back_to_session,
    participant_for_page,
    render_participant_records,
    render_session,
    therapy_session_for_page,
)
from tracker.spreadsheet import csv_lines

bp = Blueprint("safety", __name__)


@bp.route("/participants/<int:participant_id>/side-effects", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def side_effect(participant_id: int) -> ResponseReturnValue:
    participant = participant_for_page(participant_id)
    form = SideEffectForm(prefix="side")
    row, status = attempt(
        form,
        lambda: services.record_side_effect(
            get_db(),
            current_actor(),
            participant,
            term=form.term.data or "",
            severity=form.severity.data or "",
            onset_at=form.onset_at.data,  # type: ignore[arg-type]  # required: set once the form validates
            resolved_at=form.resolved_at.data,
        ),
    )
    if row is None:
        return render_participant_records(participant, "side", form, status)
    flash(f"Side effect “{row.term}” recorded.", "success")
    return back_to_participant(participant, "safety-title")


@bp.route("/participants/<int:participant_id>/adverse-events", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def adverse_event_record(participant_id: int) -> ResponseReturnValue:
    participant = participant_for_page(participant_id)
    form = AdverseEventForm(prefix="ae")
    row, status = attempt(
        form,
        lambda: services.record_adverse_event(
            get_db(),
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
        return render_participant_records(participant, "ae", form, status)
    message = f"Adverse event “{row.term}” (grade {row.grade}) recorded."
    if row.serious:
        message += (
            f" Serious: {participant.study_id} is on hold; report it by "
            f"{row.report_due_at:%Y-%m-%d %H:%M} UTC."
        )
    flash(message, "success")
    return redirect(url_for("safety.adverse_event", event_id=row.id))


@bp.route("/participants/<int:participant_id>/suicidality-screens", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def screen(participant_id: int) -> ResponseReturnValue:
    participant = participant_for_page(participant_id)
    form = SuicidalityScreenForm(prefix="screen")
    row, status = attempt(form, lambda: _record_screen(participant, form, None))
    if row is None:
        return render_participant_records(participant, "screen", form, status)
    _flash_screen(participant, row)
    return back_to_participant(participant, "safety-title")


def _record_screen(
    participant: Participant, form: SuicidalityScreenForm, session_id: int | None
) -> Any:
    return services.record_suicidality_screen(
        get_db(),
        current_actor(),
        participant,
        ideation=yes(form.ideation.data),
        intent=yes(form.intent.data),
        plan=yes(form.plan.data),
        behaviour=yes(form.behaviour.data),
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
    participant = participant_for_page(participant_id)
    form = PregnancyTestForm(prefix="pregnancy")
    row, status = attempt(
        form,
        lambda: services.record_pregnancy_test(
            get_db(),
            current_actor(),
            participant,
            tested_at=form.tested_at.data,  # type: ignore[arg-type]  # required: set once the form validates
            result=form.result.data or "",
        ),
    )
    if row is None:
        return render_participant_records(participant, "pregnancy", form, status)
    flash(f"Pregnancy test recorded: {row.result}.", "success")
    return back_to_participant(participant, "safety-title")


@bp.route("/sessions/<int:session_id>/suicidality-screens", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def session_screen(session_id: int) -> ResponseReturnValue:
    row, participant = therapy_session_for_page(session_id)
    form = SuicidalityScreenForm(prefix="screen")
    done, status = attempt(form, lambda: _record_screen(participant, form, row.id))
    if done is None:
        return render_session(row, participant, "screen", form, status)
    _flash_screen(participant, done)
    return back_to_session(row, "screen-title")


def _event_page(
    event_id: int, key: str | None = None, form: FlaskForm | None = None, status: int = 200
) -> ResponseReturnValue:
    event = services.get_adverse_event(get_db(), signed_in_user(), event_id)
    participant = participant_for_page(event.participant_id)
    submitted = {key: form} if key and form is not None else {}
    context = presenters.adverse_event_page(get_db(), participant, event, submitted)
    return render_template("safety/adverse_event.html", **context), status


LOG_COLUMNS = (
    "event",
    "study_id",
    "site",
    "term",
    "grade",
    "serious",
    "serious_criteria",
    "onset_at",
    "aware_at",
    "outcome",
    "resolved_at",
    "report_due_at",
    "reported_at",
    "relatedness",
    "expected",
    "assessed_at",
)


def _log_row(event: AdverseEvent, participant: Participant, site: str) -> list[object]:
    return [
        event.id,
        participant.study_id,
        site,
        event.term,
        event.grade,
        "yes" if event.serious else "no",
        "; ".join(event.serious_criteria or []),
        event.onset_at.isoformat(),
        event.aware_at.isoformat(),
        event.outcome,
        event.resolved_at.isoformat() if event.resolved_at else "",
        event.report_due_at.isoformat() if event.report_due_at else "",
        event.reported_at.isoformat() if event.reported_at else "",
        event.relatedness or "",
        "" if event.expected is None else ("yes" if event.expected else "no"),
        event.assessed_at.isoformat() if event.assessed_at else "",
    ]


@bp.route("/adverse-events/")
@requires(Permission.PARTICIPANTS_VIEW)
def adverse_event_log() -> ResponseReturnValue:
    """Every adverse event the user may see, to filter and sort (server-side), and as CSV."""
    flt = queries.EventLogFilter.from_args(request.args)
    rows = queries.adverse_event_log(get_db(), signed_in_user(), flt)
    return render_template(
        "safety/adverse_events.html",
        rows=rows,
        flt=flt,
        args=request.args,
        now=utcnow(),
        limit=500,
    )


@bp.route("/adverse-events.csv")
@requires(Permission.PARTICIPANTS_VIEW)
def adverse_event_log_csv() -> ResponseReturnValue:
    """The log as CSV, every row of the filter (cells neutralised), an audited export."""
    flt = queries.EventLogFilter.from_args(request.args)
    db = get_db()
    rows = queries.adverse_event_log(db, signed_in_user(), flt, limit=None)
    with write_unit(db) as writes:
        record_event(
            writes,
            current_actor(),
            "report.export",
            "adverse_event_log",
            None,
            new={"format": "csv", "rows": len(rows), "filters": dict(request.args)},
        )
    text = "".join(csv_lines(LOG_COLUMNS, (_log_row(*row) for row in rows)))
    name = f"adverse-events-{utcnow():%Y%m%dT%H%M%SZ}.csv"
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.route("/adverse-events/<int:event_id>")
@requires(Permission.PARTICIPANTS_VIEW)
def adverse_event(event_id: int) -> ResponseReturnValue:
    return _event_page(event_id)


@bp.route("/adverse-events/<int:event_id>/assessment", methods=["POST"])
@requires(Permission.ADVERSE_EVENTS_ASSESS)
def assess_adverse_event(event_id: int) -> ResponseReturnValue:
    event = services.get_adverse_event(get_db(), signed_in_user(), event_id)
    form = AdverseEventAssessmentForm(prefix="assess")
    done, status = attempt(
        form,
        lambda: services.assess_adverse_event(
            get_db(),
            current_actor(),
            event,
            relatedness=form.relatedness.data or "",
            expected=yes(form.expected.data),
            note=form.note.data,
        ),
    )
    if done is None:
        return _event_page(event_id, "assess", form, status)
    flash("Assessment recorded.", "success")
    return redirect(url_for("safety.adverse_event", event_id=event.id))


@bp.route("/adverse-events/<int:event_id>/follow-up", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def follow_up_adverse_event(event_id: int) -> ResponseReturnValue:
    event = services.get_adverse_event(get_db(), signed_in_user(), event_id)
    form = AdverseEventFollowUpForm(prefix="follow")
    done, status = attempt(
        form,
        lambda: services.update_adverse_event(
            get_db(),
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
    return redirect(url_for("safety.adverse_event", event_id=event.id))
