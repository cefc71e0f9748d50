"""Backups: SQLite's online backup API for the embedded database; PostgreSQL is backed up
with its own tools (docs/operations.md gives the pg_dump recipe)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tracker.audit.chain import VerificationResult, verify_chain
from tracker.audit.models import AuditEvent
from tracker.db import create_engine

PG_DUMP_RECIPE = (
    "PostgreSQL is backed up with its own tools, consistently and while the app runs:\n"
    '  pg_dump --format=custom --no-owner --file="tracker-$STAMP.dump" "$DATABASE"\n'
    "and restored into an empty database with:\n"
    '  pg_restore --no-owner --dbname="$EMPTY_DATABASE" "tracker-$STAMP.dump"\n'
    "then `tracker audit verify` against the restored database."
)


class BackupError(RuntimeError):
    pass


def sqlite_path(database_url: str) -> Path:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise BackupError("This command backs up a SQLite file database. " + PG_DUMP_RECIPE)
    return Path(url.database)


def _copy(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy even while the app writes (WAL included)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    # sqlite3's context manager commits but does not close.
    src.close()
    dst.close()


def verify_file(path: Path) -> VerificationResult:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(AuditEvent.__table__).order_by(AuditEvent.__table__.c.seq)
            )
            return verify_chain(rows)  # type: ignore[arg-type]
    finally:
        engine.dispose()


def backup_sqlite(database_url: str, target: Path) -> VerificationResult:
    """Copy the live database to ``target`` and verify the copy's audit chain."""
    source = sqlite_path(database_url)
    if not source.exists():
        raise BackupError(f"No database at {source}.")
    if target.exists():
        raise BackupError(
            f"{target} exists; choose a new file name (backups are never overwritten)."
        )
    _copy(source, target)
    result = verify_file(target)
    if not result.ok:
        target.unlink()
        raise BackupError(f"The copy does not verify ({result.problem}); no backup was written.")
    return result


def restore_sqlite(database_url: str, backup: Path) -> VerificationResult:
    """Replace the database with ``backup`` after checking that the backup verifies.
    Stop the app first: open connections would keep the old pages."""
    target = sqlite_path(database_url)
    if not backup.exists():
        raise BackupError(f"No backup at {backup}.")
    result = verify_file(backup)
    if not result.ok:
        raise BackupError(
            f"The backup's audit trail does not verify ({result.problem}); nothing restored."
        )
    _copy(backup, target)
    return result
