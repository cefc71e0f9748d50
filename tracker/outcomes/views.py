"""Outcome pages: a participant's timepoints, assessments and score trajectory; the assessment
form generated from its instrument; recording a missed timepoint. A blinded rater reaches these
pages and no other page about the participant."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.errors import DomainError
from tracker.outcomes import presenters, queries, services
from tracker.outcomes.forms import MissedForm, RatersForm, assessment_form, item_scores
from tracker.pages import attempt, signed_in_user
from tracker.participants.models import Participant
from tracker.participants.queries import get_participant
from tracker.protocol import ProtocolDefinition
from tracker.protocol.outcomes import Instrument, Timepoint
from tracker.security import Permission, requires
from tracker.study.services import definition_of

bp = Blueprint("outcomes", __name__)


def _participant(participant_id: int) -> Participant:
    return get_participant(get_db(), signed_in_user(), participant_id)


def _measures(
    protocol: ProtocolDefinition, timepoint: str, instrument: str
) -> tuple[Timepoint, Instrument]:
    """The service's pair, or a 404: the page's address names them."""
    try:
        return services.measures_of(protocol, timepoint, instrument)
    except DomainError as error:
        abort(404, description=error.message)


def _raters_form(participant: Participant, submitted: RatersForm | None = None) -> RatersForm:
    db = get_db()
    form = submitted or RatersForm(
        formdata=None, data={"raters": [u.username for u in queries.raters_of(db, participant.id)]}
    )
    form.raters.choices = [
        (u.username, f"{u.printed_name} ({u.username})")
        for u in queries.raters_of_site(db, participant.site_id)
    ]
    return form


def _render(participant: Participant, status: int = 200, **forms: object) -> ResponseReturnValue:
    db = get_db()
    protocol = definition_of(participant.protocol_version)
    return render_template(
        "outcomes/participant.html",
        participant=participant,
        protocol=protocol,
        record=presenters.outcome_record(db, participant),
        charts=presenters.score_charts(db, participant),
        missed_form=forms.get("missed_form") or MissedForm(formdata=None),
        missed_timepoint=forms.get("missed_timepoint"),
        raters_form=_raters_form(participant, forms.get("raters_form")),  # type: ignore[arg-type]
        raters=queries.raters_of(db, participant.id),
    ), status


@bp.route("/participants/<int:participant_id>/outcomes")
@requires(Permission.OUTCOMES_VIEW)
def participant_outcomes(participant_id: int) -> ResponseReturnValue:
    return _render(_participant(participant_id))


@bp.route(
    "/participants/<int:participant_id>/outcomes/<timepoint>/<instrument>",
    methods=["GET", "POST"],
)
@requires(Permission.OUTCOMES_RECORD)
def assess(participant_id: int, timepoint: str, instrument: str) -> ResponseReturnValue:
    participant = _participant(participant_id)
    point, scale = _measures(definition_of(participant.protocol_version), timepoint, instrument)
    form = assessment_form(scale)
    status = 200
    preview = None
    if form.is_submitted() and request.form.get("action") == "preview":
        # The total as it will be stored, shown before anything is (no JavaScript needed).
        preview, status = attempt(
            form,
            lambda: services.preview_assessment(
                participant,
                timepoint=point.code,
                instrument=scale.code,
                items=item_scores(form, scale),
            ),
        )
    elif form.is_submitted():
        row, status = attempt(
            form,
            lambda: services.record_assessment(
                get_db(),
                current_actor(),
                participant,
                timepoint=point.code,
                instrument=scale.code,
                administered_at=form["administered_at"].data,
                items=item_scores(form, scale),
                reason=form["reason"].data,
            ),
        )
        if row is not None:
            flash(
                f"{scale.code} at {point.title} recorded for {participant.study_id}: total "
                f"{row.total}{f' ({row.band})' if row.band else ''}.",
                "success",
            )
            return redirect(url_for("outcomes.participant_outcomes", participant_id=participant.id))
    return render_template(
        "outcomes/assess.html",
        participant=participant,
        timepoint=point,
        instrument=scale,
        form=form,
        preview=preview,
        item_fields=[form[f"item_{item.code}"] for item in scale.items],
    ), status or 200


@bp.route("/participants/<int:participant_id>/outcomes/<timepoint>/missed", methods=["POST"])
@requires(Permission.OUTCOMES_RECORD)
def missed(participant_id: int, timepoint: str) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = MissedForm()
    row, status = attempt(
        form,
        lambda: services.record_missed_timepoint(
            get_db(), current_actor(), participant, timepoint, form.reason.data
        ),
    )
    if row is None:
        return _render(participant, status, missed_form=form, missed_timepoint=timepoint)
    flash(f"{timepoint.replace('_', ' ')} recorded as missed.", "success")
    return redirect(url_for("outcomes.participant_outcomes", participant_id=participant.id))


@bp.route("/participants/<int:participant_id>/raters", methods=["POST"])
@requires(Permission.RATERS_ASSIGN)
def set_raters(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = _raters_form(participant, RatersForm())
    row, status = attempt(
        form,
        lambda: services.set_raters(get_db(), current_actor(), participant, form.raters.data or []),
    )
    if row is None:
        return _render(participant, status, raters_form=form)
    names = ", ".join(u.username for u in row) or "none"
    flash(f"Raters of {participant.study_id}: {names}.", "success")
    return redirect(url_for("outcomes.participant_outcomes", participant_id=participant.id))
