"""The extension objects, created here and bound to the app with ``init_app``."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf import CSRFProtect

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."
login_manager.login_message_category = "info"
# Flask-Login's own session protection would fight our server-side sessions; ours is stricter.
login_manager.session_protection = None

csrf = CSRFProtect()

# Storage comes from RATELIMIT_STORAGE_URI (memory:// by default, redis://... for several workers).
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def per_user() -> str:
    """The rate-limit key of a password check made by a signed-in user: the account, so the
    limit follows the person and not the address they guess from."""
    from tracker.security import authenticated_user

    user = authenticated_user()
    return f"user:{user.id}" if user is not None else f"address:{get_remote_address()}"


def password_check_rate_limit() -> str:
    from flask import current_app

    return str(current_app.config["TRACKER_PASSWORD_CHECK_RATE_LIMIT"])


# Every route that asks for a password again (signing on the page and through the API, the
# password page) draws on one budget per user: three routes must not mean three budgets.
password_check_limit = limiter.shared_limit(
    password_check_rate_limit, scope="password-check", key_func=per_user, methods=["POST"]
)
