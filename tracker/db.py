"""Engine, one session per request, the declarative base and the SQLite settings.

The request owns the transaction: services flush, the edge commits once (see
``commit_or_rollback``) or rolls back when anything went wrong.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from tracker import clock

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Requests with these methods read: their session begins deferred on SQLite (no write lock) and
# refuses to flush a change. A read that must write (a login's last-seen time, an export's own
# audit event) does it in a unit of work of its own (``write_unit``).
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The execution option that marks an engine (and its connections) as reading only.
READS_ONLY = "tracker_reads_only"


def enum_column(enum: type[StrEnum], length: int = 20) -> sa.Enum:
    """A column holding one of the protocol core's enumerations: stored as the member's value
    in a VARCHAR (the table's named CHECK constraint lists the allowed values, so the schema
    stays the one the migrations made) and read back as the member, so code compares members,
    never string literals."""
    return sa.Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def utcnow() -> datetime:
    return clock.now()


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite has no zone, so the value is kept as naive UTC
    and given its zone back when read.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC timestamp is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


def _configure_sqlite(engine: Engine) -> None:
    """Foreign keys, WAL, a busy timeout; a unit of work that writes takes the write lock at
    BEGIN, one that only reads does not.

    pysqlite's own transaction handling is switched off so that SQLAlchemy's BEGIN is the one
    sent. BEGIN IMMEDIATE makes a second writer wait (busy timeout) instead of failing later
    with "database is locked" when it upgrades a read lock. Connections of an engine derived
    with the ``READS_ONLY`` option begin deferred and so read under WAL beside a writer.
    """

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get(READS_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def canonical_json(value: Any) -> str:
    """How JSON columns are stored: keys sorted, text as typed. Exports write the stored text
    as it is, so it must already read well."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def create_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for the tracker's two databases."""
    kwargs.setdefault("json_serializer", canonical_json)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 5)
    kwargs.setdefault("pool_timeout", 10)
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    engine = sa.create_engine(url, **kwargs)

    @sa.event.listens_for(engine, "do_connect")
    def _name_the_process(_dialect: Any, _record: Any, _args: Any, params: Any) -> None:
        # pg_stat_activity names the process that holds each connection (a gunicorn worker,
        # the notification worker, a command); read at connect time, so a forked worker
        # names itself, not the master the engine was made in.
        params.setdefault("application_name", f"tracker:{os.getpid()}")

    return engine


class ReadOnlySessionWrite(RuntimeError):
    """A session made for reading was asked to write: a programming error, caught by tests."""


def _refuse_writes(db: Session, _context: Any, _instances: Any) -> None:
    if db.new or db.dirty or db.deleted:
        raise ReadOnlySessionWrite(
            "a read-only unit of work tried to write; make the change in write_unit(session)"
        )


def make_session_factories(
    bind: Engine | sa.Connection,
    read_bind: Engine | sa.Connection | None = None,
    **options: Any,
) -> tuple[sessionmaker[Session], sessionmaker[Session]]:
    """The factory of sessions that write and the factory of sessions that only read."""
    options = {"expire_on_commit": False, "autoflush": True, **options}
    writes = sessionmaker(bind=bind, **options)
    reads = sessionmaker(bind=read_bind or bind, info={READS_ONLY: True}, **options)
    sa.event.listen(reads, "before_flush", _refuse_writes)
    return writes, reads


class Database:
    """The app's engine and its two session factories (writing, reading); tests may rebind
    both to one connection with ``bind_sessions``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.read_engine = engine.execution_options(**{READS_ONLY: True})
        self.session_factory, self.read_session_factory = make_session_factories(
            engine, self.read_engine
        )

    def bind_sessions(
        self, factories: tuple[sessionmaker[Session], sessionmaker[Session]]
    ) -> tuple[sessionmaker[Session], sessionmaker[Session]]:
        """Use these factories from now on; returns the ones they replace."""
        previous = (self.session_factory, self.read_session_factory)
        self.session_factory, self.read_session_factory = factories
        return previous

    def read_session(self) -> Session:
        """A session of its own that only reads, from one snapshot: a long export is the
        study at one moment, not batches read at different ones while the app writes. On
        SQLite its deferred transaction takes no write lock and under WAL reads the snapshot
        of its first read; on PostgreSQL it is REPEATABLE READ, READ ONLY (which never fails
        on serialisation). The caller closes it."""
        db = self.read_session_factory()
        if db.get_bind().dialect.name == "postgresql":
            connection = db.connection()
            if connection.in_nested_transaction():
                # Joined to an enclosing transaction (the tests' one connection): its
                # snapshot is the enclosing one's; only reading can be asked of it.
                connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            else:
                connection.exec_driver_sql(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                )
        return db

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        """A unit of work outside a request (CLI): commit on success, roll back on error."""
        db = self.session_factory()
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()


def init_app(app: Flask, database_url: str) -> Database:
    database = Database(create_engine(database_url))
    app.extensions["tracker.db"] = database

    @app.teardown_appcontext
    def _close_session(exc: BaseException | None) -> None:
        db: Session | None = g.pop("db_session", None)
        if db is not None:
            if exc is not None or db.in_transaction():
                # Anything not committed by the edge is abandoned, never half-kept.
                db.rollback()
            db.close()

    return database


def get_database(app: Flask | None = None) -> Database:
    database: Database = (app or current_app).extensions["tracker.db"]
    return database


def _request_reads_only() -> bool:
    return has_request_context() and request.method in READ_METHODS


def get_db() -> Session:
    """The session of the current request (or app context), created on first use. A request
    that only reads (GET, HEAD, OPTIONS) gets a session that reads only."""
    if "db_session" not in g:
        database = get_database()
        factory = (
            database.read_session_factory if _request_reads_only() else database.session_factory
        )
        g.db_session = factory()
    db: Session = g.db_session
    return db


@contextmanager
def write_unit(db: Session) -> Iterator[Session]:
    """Where a change is made by code that reads with ``session``. That session itself, unless
    it is a session that only reads (a GET request's): then a short unit of work of its own,
    committed at once, so the read never holds the write lock. ``session`` may not see the
    change (a SQLite read keeps its snapshot): take over a row with ``merge(row, load=False)``."""
    if not db.info.get(READS_ONLY):
        yield db
        return
    with get_database().session_scope() as writes:
        yield writes
    if db.in_transaction():
        db.rollback()


def stream_reading(produce: Callable[[Session], Iterator[T]]) -> Iterator[T]:
    """``produce``'s items, read in a read-only transaction of the stream's own that ends when
    the stream ends, fails or is closed (the client went away). The request's session is not
    used: it has been committed and closed before the first item is sent."""
    database = get_database()

    def stream() -> Iterator[T]:
        db = database.read_session()
        try:
            yield from produce(db)
        finally:
            db.rollback()
            db.close()

    return stream()


def has_db() -> bool:
    return "db_session" in g
