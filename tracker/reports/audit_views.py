"""The audit trail browser: filter, read, export and verify."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, render_template, request, url_for
from flask.typing import ResponseReturnValue

from tracker.audit import queries
from tracker.audit.export import AuditCsv
from tracker.audit.services import checkpoint_store, record_event, verify
from tracker.auth.signin import current_actor
from tracker.db import get_db, stream_reading, utcnow, write_unit
from tracker.errors import InvalidInput
from tracker.notes.models import Note
from tracker.participants.models import Participant
from tracker.safety.models import AdverseEvent
from tracker.security import Permission, requires
from tracker.sessions.models import TherapySession

bp = Blueprint("audit", __name__, url_prefix="/audit")
PAGE_SIZE = 50


def _date_arg(name: str, *, end_of_day: bool = False) -> datetime | None:
    """A UTC date (or an ISO time) from the query string; with ``end_of_day`` a bare date
    means the end of that day, so "until 2026-03-01" includes the events of March 1st."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a date (YYYY-MM-DD), not {raw!r}.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if len(raw) == 10 and end_of_day:
        moment += timedelta(days=1)
    return moment


def participant_records(study_id: str) -> dict[str, sa.Select[Any]]:
    """The ids of one participant's sessions, adverse events and notes, by the entity type
    their audit events carry."""
    participant_id = (
        sa.select(Participant.id)
        .where(Participant.study_id == study_id.strip().upper())
        .scalar_subquery()
    )
    return {
        "session": sa.select(sa.cast(TherapySession.id, sa.String)).where(
            TherapySession.participant_id == participant_id
        ),
        "adverse_event": sa.select(sa.cast(AdverseEvent.id, sa.String)).where(
            AdverseEvent.participant_id == participant_id
        ),
        "note": sa.select(sa.cast(Note.id, sa.String)).where(Note.participant_id == participant_id),
    }


def _filter_from_args() -> queries.AuditFilter:
    participant = request.args.get("participant") or None
    return queries.AuditFilter(
        actor=request.args.get("actor") or None,
        action=request.args.get("action") or None,
        entity_type=request.args.get("entity_type") or None,
        entity_id=request.args.get("entity_id") or None,
        participant=participant,
        participant_records=participant_records(participant) if participant else {},
        since=_date_arg("since"),
        until=_date_arg("until", end_of_day=True),
    )


@bp.app_template_filter("audit_value")
def audit_value(value: Any) -> str:
    """One recorded value as the browser shows it: text as written, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@bp.route("/")
@requires(Permission.AUDIT_VIEW)
def browse() -> ResponseReturnValue:
    audit_filter = _filter_from_args()
    before = request.args.get("before", type=int)
    events = queries.events_page(get_db(), audit_filter, before, PAGE_SIZE + 1)
    filters: dict[str, Any] = {
        k: v for k, v in request.args.to_dict().items() if k != "before" and v
    }
    next_url = None
    if len(events) > PAGE_SIZE:
        events = events[:PAGE_SIZE]
        next_url = url_for("audit.browse", **filters, before=events[-1].seq)
    return render_template(
        "audit/browse.html",
        events=events,
        next_url=next_url,
        newest_url=url_for("audit.browse", **filters) if before is not None else None,
        export_url=url_for("audit.export_csv", **filters),
        filtered=bool(filters),
        actions=queries.distinct_actions(get_db()),
        args=request.args,
    )


@bp.route("/verify", methods=["POST"])
@requires(Permission.AUDIT_VERIFY)
def verify_trail() -> ResponseReturnValue:
    result = verify(get_db(), checkpoint_store())
    return render_template("audit/verify.html", result=result, checked_at=utcnow())


@bp.route("/export.csv")
@requires(Permission.AUDIT_EXPORT)
def export_csv() -> ResponseReturnValue:
    audit_filter = _filter_from_args()
    # The export is itself an event, on record (in a unit of work of its own) before the rows
    # stream out; the rows are read in the stream's own read-only transaction.
    with write_unit(get_db()) as writes:
        record_event(
            writes,
            current_actor(),
            "audit.export",
            "audit_trail",
            None,
            new={"format": "csv", "filter": audit_filter.described()},
        )
    clauses = audit_filter.clauses()
    lines = stream_reading(lambda db: iter(AuditCsv(db, clauses)))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        lines,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="audit-trail-{stamp}.csv"'},
    )
