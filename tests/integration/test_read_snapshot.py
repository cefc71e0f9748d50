"""A long export reads one snapshot: what commits while it is being made is not in it."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from tests.support.databases import scratch_database
from tracker.db import Database, create_engine


def test_a_read_session_sees_one_moment_while_others_commit(backend: str, tmp_path: Path) -> None:
    with scratch_database(backend, tmp_path) as url:
        engine = create_engine(url)
        try:
            with engine.begin() as setup:
                setup.execute(sa.text("CREATE TABLE doses (id INTEGER PRIMARY KEY)"))
                setup.execute(sa.text("INSERT INTO doses (id) VALUES (1)"))
            database = Database(engine)
            count = sa.text("SELECT count(*) FROM doses")
            reading = database.read_session()
            try:
                assert reading.scalar(count) == 1  # the snapshot begins with the first read
                with database.session_scope() as writes:  # the app writes meanwhile
                    writes.execute(sa.text("INSERT INTO doses (id) VALUES (2)"))
                assert reading.scalar(count) == 1
            finally:
                reading.rollback()
                reading.close()
            with database.session_scope() as fresh:
                assert fresh.scalar(count) == 2
        finally:
            engine.dispose()
