"""``Idempotency-Key`` on the API's POSTs (SPEC §9): a client that did not hear the answer
sends the request again with the same key, and gets the first answer instead of a second
record. The key is kept with the first successful answer, in the transaction of the change
itself: the change and its key commit together or not at all. A repeat that arrives while
the first is still running waits for it at the key's unique index (PostgreSQL) or at the
write lock (SQLite), then answers from the stored row."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from flask import Response, g, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tracker.api.models import IdempotencyKey
from tracker.db import get_db
from tracker.errors import Conflict, InvalidInput, RuleViolation
from tracker.security import authenticated_user

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
REPLAYED = "Idempotent-Replayed"


def _fingerprint() -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def _valid_key(raw: str) -> str:
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise InvalidInput(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters "
            "(a UUID is a good choice).",
            [{"field": HEADER, "message": "not a usable key"}],
        )
    return key


def _stored(db: Session, user_id: int, key: str) -> IdempotencyKey | None:
    return db.scalar(
        sa.select(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
        )
    )


def _replay(row: IdempotencyKey, fingerprint: str) -> Response:
    if row.body_hash != fingerprint:
        raise RuleViolation(
            f"This {HEADER} was used for another request (another body or path); send a new "
            "key for a new request.",
            [{"field": HEADER, "message": "key reused with a different request"}],
        )
    response = Response(row.response_body, status=row.status_code, mimetype="application/json")
    if row.location:
        response.headers["Location"] = row.location
    response.headers[REPLAYED] = "true"
    return response


def begin() -> Response | None:
    """Before the view: the stored answer of a repeat, or None after claiming the key."""
    raw = request.headers.get(HEADER)
    if raw is None or request.method != "POST":
        return None
    key = _valid_key(raw)
    user = authenticated_user()
    if user is None:
        return None  # the view answers 401
    fingerprint = _fingerprint()
    db = get_db()
    row = _stored(db, user.id, key)
    if row is not None:
        return _replay(row, fingerprint)
    claim = IdempotencyKey(
        user_id=user.id, key=key, method=request.method, path=request.path, body_hash=fingerprint
    )
    try:
        with db.begin_nested():
            db.add(claim)
    except IntegrityError:
        # Another request with this key committed while this one waited for it.
        row = _stored(db, user.id, key)
        if row is None or row.status_code is None:
            raise Conflict(f"A request with this {HEADER} is in progress; retry shortly.") from None
        return _replay(row, fingerprint)
    g.idempotency_claim = claim
    return None


def finish(response: Response) -> Response:
    """After the view, before the commit: keep a successful answer with its key. A refused
    request rolls back, key and all, so sending it again is a new attempt."""
    claim: IdempotencyKey | None = g.pop("idempotency_claim", None)
    if claim is not None and 200 <= response.status_code < 300 and not response.is_streamed:
        claim.status_code = response.status_code
        claim.response_body = response.get_data(as_text=True)
        claim.location = response.headers.get("Location")
        get_db().flush()
    return response
