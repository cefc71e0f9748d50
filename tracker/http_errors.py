"""How a refusal becomes an answer: a domain error, an HTTP error, a CSRF failure or an
unreachable database as a JSON error for the API or a page for a browser; never a bare 500."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, Response, jsonify, render_template
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from tracker.db import get_db, has_db
from tracker.errors import DomainError
from tracker.security import is_api_request

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "rule_violation",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


def json_error(
    status: int, message: str, code: str | None = None, details: list[Any] | None = None
) -> Response:
    response = jsonify(
        {
            "error": {
                "code": code or HTTP_CODES.get(status, "error"),
                "message": message,
                "details": details or [],
            }
        }
    )
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="tracker"'
    return response


def _page(status: int, title: str, message: str, reference: str | None = None) -> tuple[str, int]:
    page = render_template(
        "errors/error.html", status=status, title=title, message=message, reference=reference
    )
    return page, status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Any:
        if is_api_request():
            return json_error(error.status, error.message, error.code, error.details)
        return _page(
            error.status,
            HTTP_CODES.get(error.status, "error").replace("_", " ").capitalize(),
            error.message,
        )

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError) -> Any:
        message = "The form's security token is missing or expired; reload the page and try again."
        if is_api_request():
            return json_error(400, message, "csrf_failed")
        return _page(400, "Form expired", message)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        status = error.code or 500
        message = error.description or error.name
        if is_api_request():
            response = json_error(status, message)
            if error.code == 429:
                response.headers.update(
                    {
                        k: v
                        for k, v in error.get_headers()
                        if k.lower().startswith(("retry", "x-ratelimit"))
                    }
                )
            return response
        return _page(status, error.name, message)

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def _database_unavailable(error: OperationalError | PoolTimeout) -> Any:
        # A server that is down, a SQLite file locked past the busy timeout, or a pool with no
        # free connection: all say "try again", none is a 500.
        cause = error.orig if isinstance(error, OperationalError) else error
        app.logger.error("database unavailable: %s", type(cause).__name__)
        message = "The database is not reachable right now; nothing was changed. Try again shortly."
        if is_api_request():
            return json_error(503, message)
        # Straight from the Jinja environment: render_template would run the context
        # processors, and Flask-Login's asks the database for the signed-in user again.
        page = app.jinja_env.get_template("errors/unavailable.html").render(
            status=503, title="Service unavailable", message=message
        )
        return page, 503, {"Retry-After": "30"}

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        if isinstance(error, HTTPException):  # pragma: no cover - handled above
            return _http_error(error)
        # A reference the user can quote and support can find in the log.
        reference = secrets.token_hex(4)
        app.logger.exception("unhandled error, reference %s", reference)
        if has_db():
            # A statement that failed leaves the transaction broken, and the error page reads
            # the signed-in user: roll back first (nothing of the request is kept anyway).
            get_db().rollback()
        message = "An unexpected error occurred; nothing was changed."
        if is_api_request():
            return json_error(500, message, details=[f"reference: {reference}"])
        return _page(500, "Internal error", message, reference)
