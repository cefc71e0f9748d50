"""Settings from ``TRACKER_*`` environment variables, checked once at start-up."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENVIRONMENTS = ("development", "production", "testing")

# Values that ship in examples or that people type when in a hurry; production refuses them.
KNOWN_WEAK_SECRETS = frozenset(
    {"", "dev", "secret", "changeme", "change-me", "development", "please-change-me", "tracker"}
)
MIN_SECRET_LENGTH = 32


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message says what to set."""


@dataclass(frozen=True)
class Settings:
    env: str
    database_url: str
    secret_key: str
    ratelimit_storage_uri: str
    instance_path: Path
    session_idle_minutes: int = 30
    login_max_failures: int = 5
    lockout_minutes: int = 15
    login_rate_limit: str = "20 per minute"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.env == "production"

    def flask_config(self) -> dict[str, Any]:
        """The Flask configuration keys these settings imply."""
        from datetime import timedelta

        return {
            "SECRET_KEY": self.secret_key,
            "TRACKER_ENV": self.env,
            "TRACKER_DATABASE_URL": self.database_url,
            "TRACKER_SESSION_IDLE_MINUTES": self.session_idle_minutes,
            "TRACKER_LOGIN_MAX_FAILURES": self.login_max_failures,
            "TRACKER_LOCKOUT_MINUTES": self.lockout_minutes,
            "TRACKER_LOGIN_RATE_LIMIT": self.login_rate_limit,
            "RATELIMIT_STORAGE_URI": self.ratelimit_storage_uri,
            "RATELIMIT_HEADERS_ENABLED": True,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": self.production,
            "SESSION_COOKIE_NAME": "tracker_session",
            "PERMANENT_SESSION_LIFETIME": timedelta(minutes=self.session_idle_minutes),
            "REMEMBER_COOKIE_DURATION": timedelta(seconds=0),
            "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the login session
            "MAX_CONTENT_LENGTH": 1024 * 1024,
            "TESTING": self.env == "testing",
            **self.extra,
        }


def _int(environ: dict[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, not {value}")
    return value


def _development_secret(instance_path: Path) -> str:
    """A random key made once and kept under instance/ so sessions survive restarts."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def load_settings(
    environ: dict[str, str] | None = None,
    instance_path: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Read and check the settings; raise ConfigError naming what is wrong."""
    env_vars = dict(os.environ if environ is None else environ)
    overrides = dict(overrides or {})
    instance = Path(
        overrides.pop("instance_path", None)
        or env_vars.get("TRACKER_INSTANCE_PATH")
        or instance_path
        or Path.cwd() / "instance"
    ).resolve()

    env = overrides.pop("env", None) or env_vars.get("TRACKER_ENV", "development")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"TRACKER_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")

    database_url = (
        overrides.pop("database_url", None)
        or env_vars.get("TRACKER_DATABASE_URL")
        or f"sqlite:///{instance / 'tracker.db'}"
    )
    if database_url.startswith("postgresql://") or database_url.startswith("postgres://"):
        # psycopg 3 is the driver; accept the URL people copy from their provider.
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
    if not (database_url.startswith("sqlite") or database_url.startswith("postgresql+psycopg")):
        raise ConfigError("TRACKER_DATABASE_URL must be a sqlite:/// or postgresql+psycopg:// URL")

    secret = overrides.pop("secret_key", None) or env_vars.get("TRACKER_SECRET_KEY")
    if env == "production":
        if not secret:
            raise ConfigError("TRACKER_SECRET_KEY is required when TRACKER_ENV=production")
        if secret.lower() in KNOWN_WEAK_SECRETS or len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                "TRACKER_SECRET_KEY is a default or too short: use at least "
                f"{MIN_SECRET_LENGTH} random characters (python -c 'import secrets; "
                "print(secrets.token_hex(32))')"
            )
    elif not secret:
        secret = _development_secret(instance)

    return Settings(
        env=env,
        database_url=database_url,
        secret_key=secret,
        ratelimit_storage_uri=overrides.pop("ratelimit_storage_uri", None)
        or env_vars.get("TRACKER_RATELIMIT_STORAGE_URI", "memory://"),
        instance_path=instance,
        session_idle_minutes=_int(env_vars, "TRACKER_SESSION_IDLE_MINUTES", 30),
        login_max_failures=_int(env_vars, "TRACKER_LOGIN_MAX_FAILURES", 5),
        lockout_minutes=_int(env_vars, "TRACKER_LOCKOUT_MINUTES", 15),
        login_rate_limit=env_vars.get("TRACKER_LOGIN_RATE_LIMIT", "20 per minute"),
        extra=overrides,
    )
