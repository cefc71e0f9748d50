from __future__ import annotations

import pytest

from tracker.config import ConfigError, load_settings


def test_production_refuses_to_start_without_a_secret(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="TRACKER_SECRET_KEY is required"):
        load_settings(environ={"TRACKER_ENV": "production"}, instance_path=tmp_path)


@pytest.mark.parametrize("secret", ["changeme", "dev", "short-but-random-x"])
def test_production_refuses_default_or_short_secrets(tmp_path, secret: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="default or too short"):
        load_settings(
            environ={"TRACKER_ENV": "production", "TRACKER_SECRET_KEY": secret},
            instance_path=tmp_path,
        )


def test_production_accepts_a_long_random_secret(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(
        environ={
            "TRACKER_ENV": "production",
            "TRACKER_SECRET_KEY": "k" * 20 + "3f9a0c1b7d2e4f6a8b",
            "TRACKER_AUDIT_SIGNING_KEY": "/run/secrets/tracker-audit.pem",
            "TRACKER_AUDIT_CHECKPOINT_DIR": "/var/lib/tracker-checkpoints",
        },
        instance_path=tmp_path,
    )
    assert settings.production and settings.flask_config()["SESSION_COOKIE_SECURE"] is True


def test_development_generates_one_secret_and_keeps_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = load_settings(environ={}, instance_path=tmp_path)
    second = load_settings(environ={}, instance_path=tmp_path)
    assert first.secret_key == second.secret_key and len(first.secret_key) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_default_database_is_sqlite_under_instance(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(environ={}, instance_path=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'tracker.db'}"
    assert settings.ratelimit_storage_uri == "memory://"


def test_postgres_urls_use_psycopg3(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(
        environ={"TRACKER_DATABASE_URL": "postgresql://u@h/db"}, instance_path=tmp_path
    )
    assert settings.database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    "environ,message",
    [
        ({"TRACKER_ENV": "staging"}, "TRACKER_ENV must be one of"),
        ({"TRACKER_DATABASE_URL": "mysql://x"}, "TRACKER_DATABASE_URL must be"),
        ({"TRACKER_SESSION_IDLE_MINUTES": "soon"}, "must be a whole number"),
        ({"TRACKER_LOGIN_MAX_FAILURES": "0"}, "must be positive"),
    ],
)
def test_bad_settings_are_named(tmp_path, environ: dict[str, str], message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ, instance_path=tmp_path)
