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
