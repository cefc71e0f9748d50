"""gunicorn's settings for the tracker: ``gunicorn -c python:tracker.gunicorn_config wsgi:app``.

The app is loaded once in the master (``preload_app``) and the workers are forked from it: a
worker starts in milliseconds instead of importing the app itself, and the workers share the
master's memory until they write to it. A forked worker must not use a database connection
the master opened: the master checks the database once before it forks (a wrong URL or an
unreachable server stops it at start with the reason, not at the first request) and closes
what it opened, and each worker drops the pool it inherited. Command-line options override
these (``-w``, ``-b``, ``--timeout``); the environment variables below set them without a
command line.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa

bind = os.environ.get("TRACKER_BIND", "127.0.0.1:8000")
# Two cores take four workers: a request waits on the database about half its time.
workers = int(os.environ.get("TRACKER_WORKERS", "4"))
# TRACKER_PRELOAD=0 lets each worker import the app itself (a HUP then reloads the code).
preload_app = os.environ.get("TRACKER_PRELOAD", "1") != "0"
# A request that needs longer is a job for the command line or a background job.
timeout = 30
graceful_timeout = 20
keepalive = 5
# Replace a worker after about a thousand requests, so memory a library keeps (the PDF's
# layout libraries) cannot grow without end; the jitter keeps them from restarting together.
max_requests = int(os.environ.get("TRACKER_MAX_REQUESTS", "1000"))
max_requests_jitter = max_requests // 10


def _database(server: Any) -> Any:
    from tracker.db import get_database

    return get_database(server.app.wsgi())


def when_ready(server: Any) -> None:
    """In the master, after the app is loaded and before the first fork."""
    if not server.cfg.preload_app:
        return  # the app is not loaded here: each worker connects for itself
    database = _database(server)
    with database.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    database.engine.dispose()  # the master keeps no connection


def post_fork(server: Any, worker: Any) -> None:
    """In each new worker: forget any pooled connection inherited from the master without
    closing it (it is the master's socket; closing it would end it for everyone)."""
    if server.cfg.preload_app:
        _database(server).engine.dispose(close=False)
