"""The shipped gunicorn settings (``tracker/gunicorn_config.py``): the app is loaded once in
the master and the workers are forked from it. A forked worker that used a connection the
master opened would share one socket with its siblings: replies crossed between requests.
The master checks the database before it forks and keeps no connection; each worker opens its
own, which PostgreSQL shows by the process that opened it (``application_name``)."""

from __future__ import annotations

import concurrent.futures
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from tests.reliability.seed import seed_small_study
from tests.reliability.servers import (
    GUNICORN,
    ROOT,
    ApiClient,
    free_port,
    gunicorn,
    server_environment,
)
from tests.support.databases import scratch_database


def _tracker_backends(url: str) -> list[int]:
    """The processes (by pid) that hold a connection to the study's database."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            names = connection.scalars(
                sa.text(
                    "SELECT application_name FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name LIKE 'tracker:%'"
                )
            ).all()
    finally:
        engine.dispose()
    return [int(name.split(":", 1)[1]) for name in names]


def test_workers_forked_from_the_preloaded_app_each_open_their_own_connections(
    tmp_path: Path,
) -> None:
    with scratch_database("postgresql", tmp_path) as url:
        study = seed_small_study(url)
        with gunicorn(url, tmp_path, workers=3) as server:
            client_token = study.tokens["coordinator"]
            path = f"/api/v1/participants/{study.participant_id}/notes"

            def write(i: int) -> int:
                client = ApiClient(server.url, client_token)
                return client.post(path, json={"text": f"note {i}"}).status_code

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(write, range(60)))
            assert statuses == [201] * 60
            holders = set(_tracker_backends(url))
            workers = set(server.worker_pids())
            assert server.process.pid not in holders, "the master kept a connection"
            assert holders and holders <= workers, (holders, workers)
            log = server.log_text()
        assert "Traceback" not in log, log


def test_a_database_that_cannot_be_reached_stops_the_server_at_start(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{port}/nothing"
    instance = tmp_path / "instance"
    instance.mkdir()
    started = time.monotonic()
    outcome = subprocess.run(
        [
            GUNICORN,
            "-c",
            "python:tracker.gunicorn_config",
            "-b",
            f"127.0.0.1:{free_port()}",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=server_environment(unreachable, instance),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert outcome.returncode != 0
    assert "Connection refused" in outcome.stderr or "connection failed" in outcome.stderr
    assert time.monotonic() - started < 30
