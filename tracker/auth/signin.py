"""Who is signed in: browser sign-ins bound to Flask-Login (the cookie is Flask's session),
and bearer tokens for the API."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app, g, request, session
from flask_login import login_user, logout_user

from tracker.audit.services import Actor
from tracker.auth import services
from tracker.auth.models import User
from tracker.db import get_db
from tracker.errors import Unauthenticated
from tracker.extensions import login_manager


def init_login(app: Flask) -> None:
    login_manager.init_app(app)


def _idle_timeout() -> timedelta:
    return timedelta(minutes=current_app.config["TRACKER_SESSION_IDLE_MINUTES"])


# Flask-Login ships no types: its decorator is untyped to mypy.
@login_manager.user_loader  # type: ignore[untyped-decorator]
def _load_user(token: str) -> User | None:
    user = services.load_sign_in(get_db(), token, _idle_timeout())
    if user is not None:
        user.login_token = token
    return user


def client_address() -> str | None:
    return request.remote_addr


def current_actor() -> Actor:
    """The signed-in user (browser or token) as the actor of an audited change."""
    from tracker.security import authenticated_user

    user = authenticated_user()
    if user is None:
        raise Unauthenticated("Sign in first.")
    return services.actor_for(user, client_address())


def begin_sign_in(result: services.LoginResult) -> None:
    """A fresh Flask session (new cookie content) bound to the new login session."""
    session.clear()
    session.permanent = True
    result.user.login_token = result.sign_in_token
    login_user(result.user, remember=False, fresh=True)


def end_sign_in(user: User) -> None:
    if user.login_token:
        services.logout(get_db(), user.login_token, services.actor_for(user, client_address()))
    logout_user()
    session.clear()


def load_bearer_user() -> None:
    """Set ``g.api_user`` from an ``Authorization: Bearer`` header, if one is sent."""
    header = request.headers.get("Authorization", "")
    if not header:
        return
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'.")
    user = services.authenticate_token(get_db(), raw.strip())
    if user is None:
        raise Unauthenticated("The API token is unknown, revoked, or its user is disabled.")
    g.api_user = user
