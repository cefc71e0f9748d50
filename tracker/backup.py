"""Backups: SQLite's online backup API for the embedded database; PostgreSQL is backed up
with its own tools (docs/operations.md gives the pg_dump recipe)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tracker.audit.chain import VerificationResult
from tracker.audit.checkpoints import CheckpointStore
from tracker.audit.models import AuditEvent
from tracker.audit.services import Actor, head, record_event, verify
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


def verify_file(path: Path, store: CheckpointStore | None = None) -> VerificationResult:
    """The audit chain of a SQLite file, held against the checkpoints of ``store`` that it
    reaches (a backup is older than the newest checkpoints by nature)."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with Session(engine) as db:
            return verify(db, store, reached_only=True)
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


@dataclass(frozen=True)
class Restored:
    result: VerificationResult
    events_lost: int
    superseded: list[str]


def restore_sqlite(
    database_url: str,
    backup: Path,
    store: CheckpointStore,
    actor: Actor,
    *,
    accept_loss: bool = False,
) -> Restored:
    """Replace the database with ``backup`` after checking that the backup verifies and
    agrees with every signed checkpoint it reaches. A backup behind the newest checkpoint
    would lose the events after it: refused unless ``accept_loss``, and then the restore is
    itself recorded (an audit event and a checkpoint) and the later checkpoints are moved
    aside, kept. Stop the app first: open connections would keep the old pages."""
    target = sqlite_path(database_url)
    if not backup.exists():
        raise BackupError(f"No backup at {backup}.")
    result = verify_file(backup, store)
    if not result.ok:
        raise BackupError(
            f"The backup's audit trail does not verify ({result.problem}); nothing restored."
        )
    newest = store.newest()
    current = _event_count(target)
    lost = max(current, newest.seq if newest else 0) - result.events
    if newest is not None and newest.seq > result.events and not accept_loss:
        raise BackupError(
            f"The backup holds {result.events} audit events, but {newest.describe()} shows "
            f"the trail reached event {newest.seq} (the current database holds {current}): "
            f"restoring would lose {lost} events. Nothing restored; pass --accept-loss to "
            "restore anyway (the loss is recorded)."
        )
    _copy(backup, target)
    superseded: list[str] = []
    if lost > 0:
        superseded = store.supersede_after(result.events)
        engine = create_engine(database_url)
        try:
            with Session(engine) as db, db.begin():
                record_event(
                    db,
                    actor,
                    "db.restore",
                    "database",
                    None,
                    new={
                        "backup": backup.name,
                        "events_in_backup": result.events,
                        "events_lost": lost,
                        "checkpoints_superseded": superseded,
                    },
                    reason="restored from an older backup; loss accepted",
                )
                seq, head_hash = head(db)
            store.write(seq, head_hash, "restore")
        finally:
            engine.dispose()
    return Restored(result, max(lost, 0), superseded)


def _event_count(path: Path) -> int:
    if not path.exists():
        return 0
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            return int(connection.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) or 0)
    except sa.exc.DBAPIError:
        return 0
    finally:
        engine.dispose()
