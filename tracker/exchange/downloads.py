"""Exports as downloads, for the pages and the API alike: the export goes on record first, in
a unit of work of its own; the file then streams from a read-only transaction of the stream's
own (``stream_reading``), so a long export never holds the request's session or a lock."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Response
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.auth.signin import current_actor
from tracker.db import get_db, stream_reading, write_unit
from tracker.errors import InvalidInput, NotFound, RuleViolation
from tracker.exchange import fhir
from tracker.exchange.datasets import write_sdtm_zip
from tracker.exchange.odm import odm_document
from tracker.exchange.scope import SDTM_FORMATS, ExportScope, export_scope
from tracker.exchange.services import record_export
from tracker.exchange.source import participant_count, participants_query, subjects
from tracker.participants.models import Participant

CHUNK = 64 * 1024
# An export takes some 10 ms a participant (docs/benchmarks.md): a larger one from the browser
# or the API would outlast a gunicorn worker's 30 s timeout mid-download; it is made in the
# background instead (tracker.jobs). The command line has no limit.
WEB_EXPORT_MAX_PARTICIPANTS = 1000


def _scope_for(user: User, site: str | None, *, capped: bool = True) -> ExportScope:
    db = get_db()
    scope = export_scope(db, user, user.username, site=site)
    count = participant_count(db, scope.query()) if capped else 0
    if count > WEB_EXPORT_MAX_PARTICIPANTS:
        raise RuleViolation(
            f"{count:,} participants are more than a download carries "
            f"({WEB_EXPORT_MAX_PARTICIPANTS:,}): choose a site, prepare it in the background "
            "(Prepare on the Data exchange page, or POST /api/v1/exports/jobs), or export on "
            "the server with `tracker export`.",
            details=[f"participants: {count}"],
        )
    return scope


def _record(standard: str, fmt: str, scope: ExportScope, subject: str | None = None) -> None:
    with write_unit(get_db()) as writes:
        record_export(writes, current_actor(), standard, fmt, scope, subject)


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _stamp() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"


def _rescoped(db: Session, scope: ExportScope, user_id: int) -> ExportScope:
    """The scope with its user read again in the stream's own session (the request's
    session, and the user read with it, are closed before the first byte is sent)."""
    return dataclasses.replace(scope, user=db.get_one(User, user_id))


def odm_response(user: User, site: str | None) -> Response:
    scope, user_id = _scope_for(user, site), user.id
    _record("odm", "xml", scope)

    def text(db: Session) -> Iterator[str]:
        return odm_document(db, _rescoped(db, scope, user_id))

    return Response(
        stream_reading(text), mimetype="application/xml", headers=_attachment(f"odm-{_stamp()}.xml")
    )


def sdtm_response(user: User, fmt: str, site: str | None) -> Response:
    if fmt not in SDTM_FORMATS:
        raise InvalidInput(f"Unknown SDTM format {fmt!r}: csv, xpt or json.")
    scope, user_id = _scope_for(user, site), user.id
    _record("sdtm", fmt, scope)

    def archive(db: Session) -> Iterator[bytes]:
        # Spooled to a temporary file (gone when the stream ends, fails or is closed), then
        # sent in chunks.
        with tempfile.TemporaryFile() as spool:
            write_sdtm_zip(db, _rescoped(db, scope, user_id), fmt, spool)
            spool.seek(0)
            while chunk := spool.read(CHUNK):
                yield chunk

    return Response(
        stream_reading(archive),
        mimetype="application/zip",
        headers=_attachment(f"sdtm-{fmt}-{_stamp()}.zip"),
    )


def fhir_study_response(user: User, site: str | None) -> Response:
    scope, user_id = _scope_for(user, site), user.id
    _record("fhir", "json", scope)

    def text(db: Session) -> Iterator[str]:
        return fhir.study_bundle(db, _rescoped(db, scope, user_id))

    return Response(
        stream_reading(text),
        mimetype="application/fhir+json",
        headers=_attachment(f"fhir-study-{_stamp()}.json"),
    )


def fhir_participant_response(user: User, study_id: str) -> Response:
    """One participant's bundle (a 404 for a participant the user may not see)."""
    db = get_db()
    scope = _scope_for(user, None, capped=False)
    query = participants_query(user).where(Participant.study_id == study_id.strip().upper())
    found = next(subjects(db, query, arms=scope.arms), None)
    if found is None:
        raise NotFound(f"No participant {study_id!r}.")
    bundle = fhir.participant_bundle(found, scope, datetime.now(UTC))
    _record("fhir", "json", scope, found.study_id)
    return Response(
        json.dumps(bundle, ensure_ascii=False),
        mimetype="application/fhir+json",
        headers=_attachment(f"fhir-{found.study_id}.json"),
    )
