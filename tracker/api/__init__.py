"""The JSON API under /api/v1: the same services as the pages, JSON in and out."""

from __future__ import annotations

from flask import Blueprint, Response, g, request
from flask_login import current_user

from tracker.api import idempotency
from tracker.auth.signin import load_bearer_user
from tracker.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@bp.before_request
def _authenticate() -> Response | None:
    g.api_user = None
    load_bearer_user()
    # A bearer token cannot be forged by another site; a browser cookie can, so the browser
    # session must send its CSRF token (X-CSRFToken) for changes.
    if g.api_user is None and request.method in UNSAFE_METHODS and current_user.is_authenticated:
        csrf.protect()
    return idempotency.begin()


@bp.after_request
def _keep_idempotent_answer(response: Response) -> Response:
    return idempotency.finish(response)
