"""Settings from ``TRACKER_*`` environment variables, checked once at start-up."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
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
class SmtpSettings:
    """Where the safety notifications are sent from (``TRACKER_SMTP_*``); None: not set up,
    and the outbox keeps every message until it is."""

    host: str
    port: int = 25
    username: str = ""
    password: str = ""
    sender: str = "tracker@localhost"
    starttls: bool = False
    timeout_seconds: int = 10
    base_url: str = ""  # TRACKER_BASE_URL: links in the messages


def _smtp(environ: dict[str, str]) -> SmtpSettings | None:
    host = environ.get("TRACKER_SMTP_HOST", "").strip()
    if not host:
        return None
    starttls = environ.get("TRACKER_SMTP_STARTTLS", "").strip().lower()
    if starttls not in ("", "0", "1", "true", "false", "yes", "no"):
        raise ConfigError(f"TRACKER_SMTP_STARTTLS must be true or false, not {starttls!r}")
    username = environ.get("TRACKER_SMTP_USERNAME", "")
    password = environ.get("TRACKER_SMTP_PASSWORD", "")
    if bool(username) != bool(password):
        raise ConfigError("TRACKER_SMTP_USERNAME and TRACKER_SMTP_PASSWORD go together")
    return SmtpSettings(
        host=host,
        port=_int(environ, "TRACKER_SMTP_PORT", 25),
        username=username,
        password=password,
        sender=environ.get("TRACKER_SMTP_FROM", "tracker@localhost").strip(),
        starttls=starttls in ("1", "true", "yes"),
        timeout_seconds=_int(environ, "TRACKER_SMTP_TIMEOUT", 10),
        base_url=environ.get("TRACKER_BASE_URL", "").strip().rstrip("/"),
    )


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
    # Signing and the password page ask for the password again: per user, besides the lockout.
    password_check_rate_limit: str = "10 per minute"  # noqa: S105 (a rate, not a password)
    # The role migrations run as; the app's own role (database_url) owns nothing.
    database_owner_url: str = ""
    # PEM text or the path of a PEM file (load_settings fills in the development default).
    audit_signing_key: str = ""
    audit_checkpoint_dir: Path | None = None
    audit_checkpoint_minutes: int = 5
    # Trusted reverse-proxy hops in front of the app (0: the peer address is the client's).
    proxy_fix: int = 0
    smtp: SmtpSettings | None = None
    # Where background exports (tracker jobs work) write their files, and how long they stay.
    exports_dir: Path | None = None
    export_keep_hours: int = 72
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
            "TRACKER_DATABASE_OWNER_URL": self.database_owner_url or self.database_url,
            "TRACKER_SESSION_IDLE_MINUTES": self.session_idle_minutes,
            "TRACKER_LOGIN_MAX_FAILURES": self.login_max_failures,
            "TRACKER_LOCKOUT_MINUTES": self.lockout_minutes,
            "TRACKER_LOGIN_RATE_LIMIT": self.login_rate_limit,
            "TRACKER_PASSWORD_CHECK_RATE_LIMIT": self.password_check_rate_limit,
            "TRACKER_AUDIT_CHECKPOINT_DIR": str(self.audit_checkpoint_dir),
            "TRACKER_AUDIT_CHECKPOINT_MINUTES": self.audit_checkpoint_minutes,
            "TRACKER_EXPORTS_DIR": str(self.exports_dir or self.instance_path / "exports"),
            "TRACKER_EXPORT_KEEP_HOURS": self.export_keep_hours,
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


def _database_url(name: str, url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        # psycopg 3 is the driver; accept the URL people copy from their provider.
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if not (url.startswith("sqlite") or url.startswith("postgresql+psycopg")):
        raise ConfigError(f"{name} must be a sqlite:/// or postgresql+psycopg:// URL")
    return url


def _hops(environ: dict[str, str]) -> int:
    raw = environ.get("TRACKER_PROXY_FIX", "").strip()
    if raw == "":
        return 0
    if not raw.isdigit() or int(raw) > 5:
        raise ConfigError(
            f"TRACKER_PROXY_FIX is the number of trusted proxies in front of the app (0 to 5), "
            f"not {raw!r}"
        )
    return int(raw)


def server_workers() -> int:
    """How many worker processes serve the app: gunicorn's own setting when it runs us (read
    the way gunicorn reads it: command line, GUNICORN_CMD_ARGS, config file), else
    WEB_CONCURRENCY, else one."""
    import sys

    if "gunicorn.arbiter" in sys.modules:
        try:
            from gunicorn.app.wsgiapp import WSGIApplication

            return int(WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg.workers)
        except (Exception, SystemExit):  # noqa: S110 (fall back to the environment)
            pass
    raw = os.environ.get("WEB_CONCURRENCY", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


def check_shared_state(settings: Settings, workers: int) -> None:
    """The login limit is shared by every worker (SPEC §9): in production, several workers
    with the limiter in each one's memory would multiply the limit by their number."""
    if settings.production and workers > 1 and settings.ratelimit_storage_uri.startswith("memory"):
        raise ConfigError(
            f"{workers} workers with TRACKER_RATELIMIT_STORAGE_URI="
            f"{settings.ratelimit_storage_uri}: each would keep its own count and the login "
            f"limit would be multiplied by {workers}. Set TRACKER_RATELIMIT_STORAGE_URI="
            "redis://HOST:6379/0, or run one worker."
        )


def write_private_file(path: Path, text: str) -> None:
    """Write a secret to a new file only its owner can read; FileExistsError if it exists
    (a key is never overwritten, and two workers starting at once cannot both write it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _made_once(path: Path, make: Callable[[], str]) -> Path:
    """``path``, written with ``make()`` the first time it is asked for."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another worker made it first
            write_private_file(path, make())
    return path


def _development_secret(instance_path: Path) -> str:
    """A random key made once and kept under instance/ so sessions survive restarts."""
    path = _made_once(instance_path / "secret_key", lambda: secrets.token_hex(32))
    return path.read_text().strip()


def _development_signing_key(instance_path: Path) -> str:
    """An Ed25519 key made once under instance/. Production names its own, kept away from
    the database (see docs/security.md)."""
    from tracker.audit.checkpoints import generate_key_pem

    return str(_made_once(instance_path / "audit-signing-key.pem", generate_key_pem))


def _secret_key(env: str, instance: Path, secret: str | None) -> str:
    """Production names a strong key; development makes one once under instance/."""
    if env != "production":
        return secret or _development_secret(instance)
    if not secret:
        raise ConfigError("TRACKER_SECRET_KEY is required when TRACKER_ENV=production")
    if secret.lower() in KNOWN_WEAK_SECRETS or len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            "TRACKER_SECRET_KEY is a default or too short: use at least "
            f"{MIN_SECRET_LENGTH} random characters (python -c 'import secrets; "
            "print(secrets.token_hex(32))')"
        )
    return secret


def _audit_checkpoints(
    env: str, instance: Path, signing_key: str, checkpoint_dir: str | None
) -> tuple[str, Path]:
    """The checkpoints' signing key and directory: named in production, made under
    instance/ in development."""
    if env == "production":
        missing = [
            name
            for name, value in (
                ("TRACKER_AUDIT_SIGNING_KEY", signing_key),
                ("TRACKER_AUDIT_CHECKPOINT_DIR", checkpoint_dir),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} required when TRACKER_ENV=production: the audit "
                "checkpoints are signed with a key, and kept in a directory, outside the "
                "database (docs/security.md, 'Signed checkpoints')"
            )
    key = signing_key or _development_signing_key(instance)
    return key, Path(checkpoint_dir or instance / "audit-checkpoints").resolve()


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
    database_url = _database_url("TRACKER_DATABASE_URL", database_url)
    owner_url = overrides.pop("database_owner_url", None) or env_vars.get(
        "TRACKER_DATABASE_OWNER_URL", ""
    )
    owner_url = _database_url("TRACKER_DATABASE_OWNER_URL", owner_url) if owner_url else ""

    secret = _secret_key(
        env, instance, overrides.pop("secret_key", None) or env_vars.get("TRACKER_SECRET_KEY")
    )
    signing_key, checkpoint_dir = _audit_checkpoints(
        env,
        instance,
        overrides.pop("audit_signing_key", None) or env_vars.get("TRACKER_AUDIT_SIGNING_KEY", ""),
        overrides.pop("audit_checkpoint_dir", None) or env_vars.get("TRACKER_AUDIT_CHECKPOINT_DIR"),
    )

    return Settings(
        env=env,
        database_url=database_url,
        database_owner_url=owner_url,
        secret_key=secret,
        ratelimit_storage_uri=overrides.pop("ratelimit_storage_uri", None)
        or env_vars.get("TRACKER_RATELIMIT_STORAGE_URI", "memory://"),
        instance_path=instance,
        session_idle_minutes=_int(env_vars, "TRACKER_SESSION_IDLE_MINUTES", 30),
        login_max_failures=_int(env_vars, "TRACKER_LOGIN_MAX_FAILURES", 5),
        lockout_minutes=_int(env_vars, "TRACKER_LOCKOUT_MINUTES", 15),
        login_rate_limit=env_vars.get("TRACKER_LOGIN_RATE_LIMIT", "20 per minute"),
        password_check_rate_limit=env_vars.get(
            "TRACKER_PASSWORD_CHECK_RATE_LIMIT", "10 per minute"
        ),
        audit_signing_key=signing_key,
        audit_checkpoint_dir=checkpoint_dir,
        audit_checkpoint_minutes=_int(env_vars, "TRACKER_AUDIT_CHECKPOINT_MINUTES", 5),
        proxy_fix=_hops(env_vars),
        smtp=_smtp(env_vars),
        exports_dir=Path(
            overrides.pop("exports_dir", None)
            or env_vars.get("TRACKER_EXPORTS_DIR")
            or instance / "exports"
        ).resolve(),
        export_keep_hours=_int(env_vars, "TRACKER_EXPORT_KEEP_HOURS", 72),
        extra={
            # Several installations may share one Redis: each counts under its own prefix.
            "RATELIMIT_KEY_PREFIX": env_vars.get("TRACKER_RATELIMIT_KEY_PREFIX", "tracker"),
            **overrides,
        },
    )
