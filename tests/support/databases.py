"""Scratch databases for the test run: a SQLite file, or a PostgreSQL database of its own."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("TRACKER_TEST_POSTGRES_URL", "").strip()
REQUIRE_POSTGRES = os.environ.get("TRACKER_REQUIRE_POSTGRES") == "1"
BACKENDS = ("sqlite", "postgresql")


def postgres_or_skip() -> str:
    """The PostgreSQL URL; a failure (not a skip) when TRACKER_REQUIRE_POSTGRES=1."""
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("TRACKER_REQUIRE_POSTGRES=1 but TRACKER_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL tests need TRACKER_TEST_POSTGRES_URL")
    url = POSTGRES_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
    except sa.exc.OperationalError as error:
        message = f"PostgreSQL at TRACKER_TEST_POSTGRES_URL is unreachable: {error.orig}"
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)
    return url


@contextmanager
def scratch_database(backend: str, tmp_dir: Path) -> Iterator[str]:
    """A new, empty database; dropped afterwards (PostgreSQL) or left in tmp (SQLite)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_dir / f'tracker-{secrets.token_hex(4)}.db'}"
        return
    base = postgres_or_skip()
    name = f"tracker_test_{os.getpid()}_{secrets.token_hex(4)}"
    # Pre-ping: a PostgreSQL restart (tests/reliability) must not leave a dead connection here.
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
