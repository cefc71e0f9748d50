"""Randomisation pages (SPEC §11): randomise and unblind from the participant page; the
statistician's and the pharmacist's allocation list."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from wtforms.fields.choices import SelectChoice

from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.errors import DomainError
from tracker.extensions import password_check_limit
from tracker.pages import attempt, signed_in_user
from tracker.participants.models import Participant
from tracker.participants.queries import get_participant
from tracker.participants.views import render_participant
from tracker.randomisation import queries, services
from tracker.randomisation.forms import GuessForm, RandomiseForm, UnblindForm
from tracker.security import Permission, requires
from tracker.sessions.models import TherapySession
from tracker.study.models import ProtocolVersion, definition_of

bp = Blueprint("randomisation", __name__)


def _participant(participant_id: int) -> Participant:
    return get_participant(get_db(), signed_in_user(), participant_id)


def _back(participant: Participant) -> ResponseReturnValue:
    return redirect(
        url_for("participants.detail", participant_id=participant.id, _anchor="randomisation")
    )


@bp.route("/participants/<int:participant_id>/randomise", methods=["POST"])
@requires(Permission.RANDOMISE)
def randomise(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = RandomiseForm()
    if not form.validate_on_submit() or not str(form.expected_version.data or "").isdigit():
        flash("The page was out of date; nothing was changed. Try again.", "error")
        return _back(participant)
    try:
        entry = services.randomise(
            get_db(),
            current_actor(),
            participant,
            expected_version=int(form.expected_version.data),
        )
    except DomainError as error:
        flash(f"Not randomised: {error.message}", "error")
        return _back(participant)
    flash(
        f"{participant.study_id} is randomised: {entry.randomisation_number} "
        f"(stratum {entry.stratum.replace('|', ' · ')}).",
        "success",
    )
    return _back(participant)


@bp.route("/participants/<int:participant_id>/unblind", methods=["POST"])
@requires(Permission.EMERGENCY_UNBLIND)
@password_check_limit
def unblind(participant_id: int) -> ResponseReturnValue:
    participant = _participant(participant_id)
    form = UnblindForm()
    arm, status = attempt(
        form,
        lambda: services.emergency_unblind(
            get_db(),
            current_actor(),
            signed_in_user(),
            participant,
            password=form.password.data or "",
            reason=form.reason.data or "",
        ),
    )
    if arm is None:
        # The participant page again, the form open with the reason as typed (never the
        # password) and every reason it was refused.
        form.form_errors.insert(0, "Not unblinded:")
        return render_participant(participant, status=status, unblind_form=form)
    # Shown on a page, never flashed: a flash travels in the session cookie.
    return render_template("randomisation/unblinded.html", participant=participant, arm=arm)


@bp.route("/randomisation/")
@requires(Permission.ALLOCATIONS_VIEW)
def allocations() -> ResponseReturnValue:
    db = get_db()
    user = signed_in_user()
    lists = []
    if user.role == "statistician":
        for version in db.scalars(sa.select(ProtocolVersion).order_by(ProtocolVersion.id)):
            current = queries.active_list(db, version.id)
            if current is not None:
                lists.append((version, current, queries.used_entries(db, current.id)))
    return render_template(
        "randomisation/allocations.html",
        lists=lists,
        rows=queries.allocations(db, user),
        unblinded=queries.study_unblinded(db),
    )


def _guess_form(participant: Participant, submitted: GuessForm | None = None) -> GuessForm:
    db = get_db()
    user = signed_in_user()
    form = submitted or GuessForm()
    protocol = definition_of(participant.protocol_version)
    assert protocol.randomisation is not None
    own = {"therapist": "Mine (therapist)", "rater": "Mine (rater)"}
    respondents = [("participant", "The participant's")] if user.role != "rater" else []
    if user.role in own:
        respondents.append((user.role, own[user.role]))
    form.respondent.choices = [SelectChoice(v, label) for v, label in respondents]
    # A rater guesses at the primary endpoint only, and is shown no session (SPEC §10).
    occasions = (
        []
        if user.role == "rater"
        else [
            SelectChoice(f"session:{s.id}", f"Dosing session of cycle {s.cycle}")
            for s in db.scalars(
                sa.select(TherapySession).where(
                    TherapySession.participant_id == participant.id,
                    TherapySession.kind == "dosing",
                    TherapySession.status == "completed",
                )
            )
        ]
    )
    if protocol.outcomes is not None:
        occasions.append(
            SelectChoice(f"timepoint:{protocol.outcomes.primary_timepoint}", "The primary endpoint")
        )
    form.occasion.choices = [SelectChoice("", "— choose —"), *occasions]
    form.guess.choices = (
        [SelectChoice("", "— choose —")]
        + [SelectChoice(a.code, a.label) for a in protocol.randomisation.arms]
        + [SelectChoice("unsure", "Unsure")]
    )
    return form


@bp.route("/participants/<int:participant_id>/blinding-guesses", methods=["GET", "POST"])
@requires(Permission.BLINDING_GUESS_RECORD)
def guesses(participant_id: int) -> ResponseReturnValue:
    """Record a blinding-integrity guess (SPEC §11); the page shows the participant's study id
    and the guesses' occasions, nothing a rater should not see."""
    participant = _participant(participant_id)
    if definition_of(participant.protocol_version).randomisation is None:
        abort(404, description=f"{participant.study_id}'s protocol does not randomise.")
    form = _guess_form(participant, GuessForm() if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        kind, _, value = (form.occasion.data or "").partition(":")
        row, status = attempt(
            form,
            lambda: services.record_guess(
                get_db(),
                current_actor(),
                participant,
                respondent=form.respondent.data or "",
                guess=form.guess.data or "",
                confidence=int(form.confidence.data or 0),
                session_id=int(value) if kind == "session" and value.isdigit() else None,
                timepoint=value if kind == "timepoint" else None,
            ),
        )
        if row is not None:
            flash(
                f"The {row.respondent}'s guess is recorded for {participant.study_id}.", "success"
            )
            return redirect(url_for("randomisation.guesses", participant_id=participant.id))
    recorded = [
        g
        for g in queries.guesses_of(get_db(), participant.id)
        if g.recorded_by_id == signed_in_user().id
    ]
    return render_template(
        "randomisation/guesses.html", participant=participant, form=form, recorded=recorded
    ), status or 200
