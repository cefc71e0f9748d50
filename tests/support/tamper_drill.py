"""The tamper drill: an insider rewrites the audit trail every way the SPEC names, and the
tracker must notice each time.

    python -m tests.support.tamper_drill            # SQLite
    python -m tests.support.tamper_drill --postgres # and PostgreSQL, in a throwaway cluster

A study is seeded once and signed (a checkpoint of its head); each case then works on a
fresh copy of the database and of the checkpoint directory, tampers as its attacker can,
and runs the check a reviewer would run (`tracker audit verify`, or `tracker db restore`).
The table says what was done, whether it was caught, and the message that caught it.
``tests/integration/test_tamper_drill.py`` runs it and fails on any case not caught.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from tracker import clock, create_app, migrate
from tracker.audit.chain import compute_hash
from tracker.audit.checkpoints import CheckpointStore, load_private_key
from tracker.audit.services import CHECKPOINTS, head, verify
from tracker.backup import BackupError, restore_sqlite
from tracker.cli import cli_actor
from tracker.db import create_engine, get_database
from tracker.histories import protocol_history, run_histories

TARGET = 10  # the event the insider goes after
TAIL = 50  # how many events a tail truncation cuts off
SECRET = "drill-secret-key-of-at-least-32-characters"


@dataclass(frozen=True)
class Outcome:
    case: str
    backend: str
    attack: str
    detected: bool
    by: str
    message: str


def _app(url: str, instance: Path) -> Flask:
    return create_app(
        overrides={
            "env": "testing",
            "database_url": url,
            "instance_path": str(instance),
            "secret_key": SECRET,
            "audit_checkpoint_dir": str(instance / "checkpoints"),
        },
        environ={},
    )


def seed(app: Flask, histories: int = 2) -> int:
    """A small study with real histories and a signed checkpoint of its head."""
    from tests.factories import make_team

    with app.app_context(), get_database(app).session_scope() as session:
        team = make_team(session, "S01")
        run_histories(
            [
                protocol_history(session, team, random.Random(seed), "integration")
                for seed in range(histories)
            ]
        )
    clock.reset()
    with get_database(app).session_scope() as session:
        seq, head_hash = head(session)
    app.extensions[CHECKPOINTS].write(seq, head_hash, "command")
    return seq


# --- what the insider does (on a connection that gets past the triggers) ------------------


def _edit(connection: sa.Connection, events: int) -> str:
    connection.exec_driver_sql(
        f"UPDATE audit_events SET reason = 'edited by an insider' WHERE seq = {TARGET}"
    )
    return f"changed the reason of event {TARGET}"


def _delete(connection: sa.Connection, events: int) -> str:
    connection.exec_driver_sql(f"DELETE FROM audit_events WHERE seq = {TARGET}")
    return f"deleted event {TARGET}"


def _reorder(connection: sa.Connection, events: int) -> str:
    run = connection.exec_driver_sql
    run(f"UPDATE audit_events SET seq = {events + 1000} WHERE seq = {TARGET}")
    run(f"UPDATE audit_events SET seq = {TARGET} WHERE seq = {TARGET + 1}")
    run(f"UPDATE audit_events SET seq = {TARGET + 1} WHERE seq = {events + 1000}")
    return f"swapped events {TARGET} and {TARGET + 1}"


def _rows(connection: sa.Connection) -> list[Any]:
    return list(connection.execute(sa.text("SELECT * FROM audit_events ORDER BY seq")))


def _insert(connection: sa.Connection, events: int) -> str:
    rows = _rows(connection)
    for row in reversed(rows[TARGET - 1 :]):
        connection.exec_driver_sql(
            f"UPDATE audit_events SET seq = {row.seq + 1} WHERE seq = {row.seq}"
        )
    forged = dict(rows[TARGET - 1]._mapping)
    forged.update(seq=TARGET, reason="inserted by an insider", prev_hash=rows[TARGET - 2].hash)
    forged["hash"] = compute_hash(forged["prev_hash"], _Event(forged))
    table = sa.table("audit_events", *(sa.column(name) for name in forged))
    connection.execute(sa.insert(table).values(**_storable(connection, forged)))
    return f"inserted a forged event at {TARGET} (its own hash right)"


def _truncate_tail(connection: sa.Connection, events: int) -> str:
    connection.exec_driver_sql(f"DELETE FROM audit_events WHERE seq > {events - TAIL}")
    return f"deleted the last {TAIL} events"


def _recompute(connection: sa.Connection, events: int) -> str:
    rows = [dict(row._mapping) for row in _rows(connection)]
    rows[TARGET - 1]["reason"] = "rewritten by an insider"
    prev = rows[TARGET - 2]["hash"]
    for row in rows[TARGET - 1 :]:
        row["prev_hash"] = prev
        row["hash"] = prev = compute_hash(prev, _Event(row))
        connection.execute(
            sa.text(
                "UPDATE audit_events SET reason = :reason, prev_hash = :prev_hash, hash = :hash "
                "WHERE seq = :seq"
            ),
            {k: row[k] for k in ("reason", "prev_hash", "hash", "seq")},
        )
    return f"rewrote event {TARGET} and recomputed every later hash with compute_hash"


class _Event:
    """A row as ``compute_hash`` reads it (times and JSON as the app stored them)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        from tracker.db import UTCDateTime

        values = dict(fields)
        occurred = values["occurred_at"]
        if isinstance(occurred, str):
            from datetime import datetime

            occurred = datetime.fromisoformat(occurred)
        values["occurred_at"] = UTCDateTime().process_result_value(occurred, _SQLITE)
        for name in ("old_values", "new_values"):
            if isinstance(values[name], str):
                import json

                values[name] = json.loads(values[name])
        self.__dict__.update(values)


class _Dialect:
    name = "sqlite"


_SQLITE: Any = _Dialect()


def _storable(connection: sa.Connection, fields: dict[str, Any]) -> dict[str, Any]:
    """The row's values as this database takes them back (JSON as text on PostgreSQL)."""
    import json

    if connection.dialect.name == "sqlite":
        return dict(fields)
    return {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in fields.items()}


ATTACKS: dict[str, Callable[[sa.Connection, int], str]] = {
    "edit": _edit,
    "delete": _delete,
    "reorder": _reorder,
    "insert": _insert,
    "tail truncation": _truncate_tail,
    "full recompute": _recompute,
}


# --- the backends ---------------------------------------------------------------------------


class Backend:
    name: str

    def case(self, label: str) -> Any:  # a context manager yielding (url, instance)
        raise NotImplementedError

    def insider(self, url: str) -> Any:  # a context manager yielding a connection
        raise NotImplementedError


def _check(url: str, instance: Path, key: Any) -> tuple[bool, str]:
    store = CheckpointStore(instance / "checkpoints", key, timedelta(minutes=5))
    engine = create_engine(url)
    try:
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            result = verify(session, store)
    finally:
        engine.dispose()
    return (not result.ok, (result.problem or "verifies OK").replace("\n", " "))


def run_drill(backend: Backend, base_url: str, base_instance: Path) -> list[Outcome]:
    key = load_private_key(str(base_instance / "audit-signing-key.pem"))
    events = _event_count(base_url)
    outcomes = []
    for case, attack in ATTACKS.items():
        with backend.case(case) as (url, instance), backend.insider(url) as connection:
            done = attack(connection, events)
            connection.commit()
        with backend.case(case, reuse=True) as (url, instance):
            detected, message = _check(url, instance, key)
            by = "chain" if "checkpoint" not in message else "checkpoint"
        outcomes.append(Outcome(case, backend.name, done, detected, by, message))
    outcomes.append(backend.trigger_case(events, key))
    outcomes.append(backend.backup_case(events, key))
    return outcomes


def _event_count(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(sa.text("SELECT count(*) FROM audit_events")) or 0)
    finally:
        engine.dispose()


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root / "base"
        self.base_url = f"sqlite:///{self.base / 'study.db'}"

    def prepare(self) -> None:
        self.base.mkdir(parents=True)
        migrate.upgrade(self.base_url)
        app = _app(self.base_url, self.base)
        try:
            seed(app)
        finally:
            get_database(app).engine.dispose()

    @contextmanager
    def case(self, label: str, reuse: bool = False) -> Iterator[tuple[str, Path]]:
        instance = self.root / label.replace(" ", "-")
        if not reuse:
            shutil.copytree(self.base, instance)
        yield f"sqlite:///{instance / 'study.db'}", instance

    @contextmanager
    def insider(self, url: str) -> Iterator[sa.Connection]:
        """Whoever can write the file can drop the triggers first."""
        engine = sa.create_engine(url)
        try:
            with engine.connect() as connection:
                for verb in ("update", "delete"):
                    connection.exec_driver_sql(f"DROP TRIGGER audit_events_no_{verb}")
                yield connection
        finally:
            engine.dispose()

    def trigger_case(self, events: int, key: Any) -> Outcome:
        with self.case("trigger dropped") as (url, instance), self.insider(url) as connection:
            _truncate_tail(connection, events)
            connection.commit()
        detected, message = _check(url, instance, key)
        return Outcome(
            "trigger disabled by the app's credentials",
            self.name,
            f"dropped the append-only triggers (the file's owner can) and deleted the last {TAIL}",
            detected,
            "checkpoint",
            message,
        )

    def backup_case(self, events: int, key: Any) -> Outcome:
        with self.case("older backup") as (url, instance):
            older = self.root / "older.db"
            with self.insider(url) as connection:  # an older state of the same study
                _truncate_tail(connection, events)
                connection.commit()
            shutil.move(instance / "study.db", older)
            shutil.copy(self.base / "study.db", instance / "study.db")
            store = CheckpointStore(instance / "checkpoints", key, timedelta(minutes=5))
            try:
                restore_sqlite(url, older, store, cli_actor())
            except BackupError as refused:
                return Outcome(
                    "older backup restored",
                    self.name,
                    f"ran `tracker db restore` with a backup {TAIL} events behind",
                    True,
                    "db restore",
                    str(refused).split(". Nothing")[0],
                )
            detected, message = _check(url, instance, key)
            return Outcome(
                "older backup restored",
                self.name,
                "restored an older backup",
                detected,
                "verify",
                message,
            )


class PostgresBackend(Backend):
    """A throwaway cluster: the owner migrates, the app runs as a role that owns nothing, and
    the insider is the superuser (who can get past any trigger)."""

    name = "postgresql"

    def __init__(self, root: Path, cluster: Any) -> None:
        self.root = root
        self.cluster = cluster
        self.base = root / "pg-base"
        self.base_url = self._url("drill_base", "tracker_app")

    def _url(self, database: str, role: str) -> str:
        return f"postgresql+psycopg://{role}@127.0.0.1:{self.cluster.port}/{database}"

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.cluster.port} user=postgres dbname=postgres",
            autocommit=True,
        ) as connection:
            connection.execute(statement)

    def prepare(self) -> None:
        self._admin("CREATE ROLE tracker_owner LOGIN")
        self._admin("CREATE ROLE tracker_app LOGIN")
        self._admin("CREATE DATABASE drill_base OWNER tracker_owner")
        self.base.mkdir(parents=True)
        migrate.upgrade(self._url("drill_base", "tracker_owner"), app_url=self.base_url)
        app = _app(self.base_url, self.base)
        try:
            seed(app)
        finally:
            get_database(app).engine.dispose()

    @contextmanager
    def case(self, label: str, reuse: bool = False) -> Iterator[tuple[str, Path]]:
        slug = "case_" + "".join(c if c.isalnum() else "_" for c in label)
        instance = self.root / slug
        if not reuse:
            shutil.copytree(self.base, instance)
            self._admin(f"CREATE DATABASE {slug} TEMPLATE drill_base OWNER tracker_owner")
        yield self._url(slug, "tracker_app"), instance

    @contextmanager
    def insider(self, url: str) -> Iterator[sa.Connection]:
        """The superuser: its session is a replica, so no trigger fires."""
        engine = sa.create_engine(url.replace("tracker_app@", "postgres@"))
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SET session_replication_role = replica")
                yield connection
        finally:
            engine.dispose()

    def trigger_case(self, events: int, key: Any) -> Outcome:
        with self.case("trigger disabled") as (url, _instance):
            engine = sa.create_engine(url)
            refused = ""
            try:
                with engine.connect() as connection:
                    connection.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER ALL")
                    connection.commit()
            except sa.exc.DBAPIError as error:
                refused = str(error.orig).splitlines()[0]
            finally:
                engine.dispose()
            return Outcome(
                "trigger disabled by the app's credentials",
                self.name,
                "ALTER TABLE audit_events DISABLE TRIGGER ALL as the app's role",
                bool(refused),
                "privileges",
                refused or "the app's role disabled the triggers",
            )

    def backup_case(self, events: int, key: Any) -> Outcome:
        with self.case("older backup") as (url, instance), self.insider(url) as connection:
            # pg_restore of an older dump leaves the same rows as this does.
            _truncate_tail(connection, events)
            connection.commit()
        detected, message = _check(url, instance, key)
        return Outcome(
            "older backup restored",
            self.name,
            f"restored a dump {TAIL} events behind with pg_restore",
            detected,
            "checkpoint",
            message,
        )


def drill(postgres: bool = False, root: Path | None = None) -> list[Outcome]:
    root = Path(tempfile.mkdtemp(prefix="tamper-drill-")) if root is None else root
    sqlite = SQLiteBackend(root / "sqlite")
    sqlite.prepare()
    outcomes = run_drill(sqlite, sqlite.base_url, sqlite.base)
    if postgres:
        from tests.support.throwaway_postgres import throwaway_cluster

        with throwaway_cluster() as cluster:
            pg = PostgresBackend(root / "postgresql", cluster)
            pg.prepare()
            outcomes += run_drill(pg, pg.base_url, pg.base)
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| case | database | what the insider did | caught | by | message |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        message = o.message if len(o.message) < 160 else o.message[:157] + "..."
        lines.append(
            f"| {o.case} | {o.backend} | {o.attack} | {'yes' if o.detected else 'NO'} "
            f"| {o.by} | {message} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    args = parser.parse_args()
    outcomes = drill(postgres=args.postgres)
    print(table(outcomes))
    missed = [o for o in outcomes if not o.detected]
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
