"""Randomisation pages (SPEC §11): randomise and unblind from the participant page; the
statistician's and the pharmacist's allocation list."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.errors import DomainError
from tracker.extensions import password_check_limit
from tracker.pages import signed_in_user
from tracker.participants.models import Participant
from tracker.participants.queries import get_participant
from tracker.randomisation import queries, services
from tracker.randomisation.forms import RandomiseForm, UnblindForm
from tracker.security import Permission, requires
from tracker.study.models import ProtocolVersion

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
    if form.validate_on_submit():
        try:
            arm = services.emergency_unblind(
                get_db(),
                current_actor(),
                signed_in_user(),
                participant,
                password=form.password.data or "",
                reason=form.reason.data or "",
            )
        except DomainError as error:
            flash(f"Not unblinded: {error.message}", "error")
            return _back(participant)
        # Shown on a page, never flashed: a flash travels in the session cookie.
        return render_template("randomisation/unblinded.html", participant=participant, arm=arm)
    flash("Not unblinded: give the reason and your password.", "error")
    return _back(participant)


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
