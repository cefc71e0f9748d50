from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

EXPECTED = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _get_routes(app: Flask) -> list[str]:
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or set()) and not rule.arguments and rule.endpoint != "static"
    )


def _check(response) -> None:  # type: ignore[no-untyped-def]
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (name, response.request.path)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_headers_on_every_page_signed_out(app: Flask, client: FlaskClient) -> None:
    for path in _get_routes(app):
        _check(client.get(path))


def test_headers_on_every_page_signed_in(app: Flask, client: FlaskClient, signed_in) -> None:
    signed_in("admin")
    routes = _get_routes(app)
    assert "/admin/users" in routes
    for path in routes:
        _check(client.get(path))


def test_session_cookie_flags(client: FlaskClient, signed_in) -> None:
    client.get("/login")
    signed_in("coordinator")
    response = client.get("/")
    assert response.status_code == 200
    # The cookie set at login carries the flags.
    from tests.conftest import login  # noqa: F401

    cookie = client.get_cookie("tracker_session")
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Lax"


def test_production_cookie_is_secure(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tracker import create_app
    from tracker.audit.checkpoints import generate_key_pem

    app = create_app(
        overrides={
            "env": "production",
            "database_url": database_url,
            "instance_path": str(tmp_path),
            "secret_key": "p" * 48,
            "audit_signing_key": generate_key_pem(),
            "audit_checkpoint_dir": str(tmp_path / "checkpoints"),
        },
        environ={},
    )
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
