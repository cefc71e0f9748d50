"""The data-exchange page and its downloads (the same builders as the API and the CLI)."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from tracker.db import get_db
from tracker.exchange import downloads
from tracker.exchange.scope import may_know_arms
from tracker.exchange.source import participant_count, participants_query
from tracker.randomisation.queries import study_unblinded
from tracker.security import Permission, authenticated_user, requires
from tracker.sites.services import list_sites

bp = Blueprint("exchange", __name__, url_prefix="/exports")


def _site() -> str | None:
    return request.args.get("site") or None


@bp.route("/")
@requires(Permission.DATA_EXPORT)
def exports_page() -> ResponseReturnValue:
    db = get_db()
    user = authenticated_user()
    return render_template(
        "exchange/exports.html",
        arms=may_know_arms(db, user, False),
        unblinded=study_unblinded(db) is not None,
        participants=participant_count(db, participants_query(user, _site())),
        sites=list_sites(db) if user.site_id is None else [],
        site=_site(),
        download_max=downloads.WEB_EXPORT_MAX_PARTICIPANTS,
    )


@bp.route("/odm.xml")
@requires(Permission.DATA_EXPORT)
def odm() -> ResponseReturnValue:
    return downloads.odm_response(authenticated_user(), _site())


@bp.route("/sdtm-<fmt>.zip")
@requires(Permission.DATA_EXPORT)
def sdtm(fmt: str) -> ResponseReturnValue:
    return downloads.sdtm_response(authenticated_user(), fmt, _site())


@bp.route("/fhir-study.json")
@requires(Permission.DATA_EXPORT)
def fhir_study() -> ResponseReturnValue:
    return downloads.fhir_study_response(authenticated_user(), _site())


@bp.route("/fhir/<study_id>.json")
@requires(Permission.DATA_EXPORT)
def fhir_participant(study_id: str) -> ResponseReturnValue:
    return downloads.fhir_participant_response(authenticated_user(), study_id)
