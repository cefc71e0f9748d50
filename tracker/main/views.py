from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user

from tracker.db import get_db
from tracker.notifications.queries import open_problems
from tracker.outcomes.presenters import rater_work
from tracker.participants.presenters import phase_counts, worklist
from tracker.participants.queries import counts_by_state
from tracker.pharmacy.presenters import pharmacist_work
from tracker.protocol import Role
from tracker.security import Permission, can, requires
from tracker.sessions.presenters import dashboard_work

bp = Blueprint("main", __name__)


@bp.route("/")
@requires(Permission.DASHBOARD_VIEW)
def dashboard() -> ResponseReturnValue:
    context = {}
    if can(Permission.PARTICIPANTS_VIEW):
        # A bounded number of queries whatever the study's size: one count per state, and the
        # work list of at most WORKLIST_LIMIT participants checked together.
        db = get_db()
        user = current_user._get_current_object()
        counts = counts_by_state(db, user)
        phases, on_hold, total = phase_counts(counts)
        context = {
            "phases": phases,
            "on_hold_count": on_hold,
            "total": total,
            "work": worklist(db, user, counts),
            "due": dashboard_work(db, user),
        }
    if current_user.role == Role.RATER:
        context["rater_work"] = rater_work(get_db(), current_user._get_current_object())
    if current_user.role == Role.ADMIN:
        # The admin adds the missing addresses the messages could not reach.
        context["undelivered"] = open_problems(get_db(), limit=20)
    if current_user.role == Role.PHARMACIST:
        context["pharmacy_work"] = pharmacist_work(get_db(), current_user._get_current_object())
    return render_template("main/dashboard.html", **context)
