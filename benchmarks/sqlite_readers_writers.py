"""Readers beside writers on one SQLite file (SPEC §8): 8 reader threads (signed-in pages) and
2 writer threads (notes through the API) against gunicorn with 4 workers, for a fixed time.

    python -m benchmarks.sqlite_readers_writers [--seconds 30] [--participants 200]
        [--tree PATH]   # serve another checkout (e.g. a worktree of an older commit)

The data comes from benchmarks.generate (a realistic study of --participants). It prints
requests per second and latency percentiles of each side, and every error; a reader or writer
that waits out the busy timeout shows as an error or a long tail. The load generator shares the
machine's cores with the server, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from benchmarks.generate import BENCH_PASSWORD, seed
from tracker import migrate
from tracker.audit.services import Actor
from tracker.auth.models import User
from tracker.auth.services import create_api_token
from tracker.db import Database, create_engine
from tracker.participants.models import Participant

ROOT = Path(__file__).resolve().parent.parent
READ_PATHS = ("/", "/participants/")
READER_USER = "s01-coordinator1"
PORT = 8766


@dataclass
class Side:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, problem: str | None) -> None:
        with self.lock:
            if problem:
                self.errors.append(problem)
            else:
                self.latencies.append(seconds)

    def summary(self, seconds: float) -> str:
        ordered = sorted(self.latencies) or [0.0]
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        median = statistics.median(ordered)
        return (
            f"{len(self.latencies) / seconds:7.1f} req/s  p50 {median * 1000:6.1f} ms"
            f"  p95 {p95 * 1000:6.1f} ms  max {ordered[-1] * 1000:7.1f} ms"
            f"  errors {len(self.errors)}"
        )


def prepare(path: Path, participants: int) -> tuple[str, int]:
    """A seeded SQLite study; returns a coordinator's API token and one of their participants."""
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    seed(url, participants)
    database = Database(create_engine(url))
    try:
        with database.session_scope() as db:
            user = db.scalars(sa.select(User).where(User.username == READER_USER)).one()
            token = create_api_token(db, Actor.system("benchmark"), user)
            participant_id = db.scalars(
                sa.select(Participant.id).where(Participant.site_id == user.site_id).limit(1)
            ).one()
    finally:
        database.engine.dispose()
    return token, participant_id


def request(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: dict[str, str],
    body: str | None = None,
) -> tuple[int, bytes, http.client.HTTPResponse]:
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read(), response


def login_cookie() -> str:
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    _, page, response = request(connection, "GET", "/login", {})
    cookie = (response.getheader("Set-Cookie") or "").split(";")[0]
    match = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, "no CSRF token on /login"
    form = f"username={READER_USER}&password={BENCH_PASSWORD}&csrf_token={match.group(1).decode()}"
    status, _, response = request(
        connection,
        "POST",
        "/login",
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
        form,
    )
    assert status == 302, status
    return (response.getheader("Set-Cookie") or "").split(";")[0]


def run(tree: Path, seconds: float, participants: int) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="tracker-rw-"))
    database_file = scratch / "tracker.db"
    token, participant_id = prepare(database_file, participants)
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")},
        "PYTHONPATH": str(tree),
        "TRACKER_ENV": "development",
        "TRACKER_DATABASE_URL": f"sqlite:///{database_file}",
        "TRACKER_SECRET_KEY": "benchmark-secret-key-that-is-long-enough-0123456789",
        "TRACKER_INSTANCE_PATH": str(scratch / "instance"),
        "TRACKER_LOGIN_RATE_LIMIT": "1000 per minute",
    }
    gunicorn = str(ROOT / ".venv" / "bin" / "gunicorn")
    server = subprocess.Popen(  # noqa: S603 (our own gunicorn)
        [gunicorn, "-w", "4", "-b", f"127.0.0.1:{PORT}", "--timeout", "120", "wsgi:app"],
        cwd=tree,
        env=environment,
    )
    try:
        for _ in range(150):
            try:
                probe = http.client.HTTPConnection("127.0.0.1", PORT, timeout=1)
                if request(probe, "GET", "/api/v1/health", {})[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        cookie = login_cookie()
        readers, writers = Side(), Side()
        stop = time.monotonic() + seconds

        def reader(index: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
            n = index
            while time.monotonic() < stop:
                path = READ_PATHS[n % len(READ_PATHS)]
                n += 1
                started = time.monotonic()
                try:
                    status, _, _ = request(connection, "GET", path, {"Cookie": cookie})
                    problem = None if status == 200 else f"GET {path}: {status}"
                except (OSError, http.client.HTTPException) as error:
                    problem = f"GET {path}: {error!r}"
                    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
                readers.add(time.monotonic() - started, problem)

        def writer() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            path = f"/api/v1/participants/{participant_id}/notes"
            while time.monotonic() < stop:
                started = time.monotonic()
                try:
                    status, body, _ = request(
                        connection, "POST", path, headers, json.dumps({"text": "benchmark note"})
                    )
                    problem = None if status == 201 else f"POST note: {status} {body[:120]!r}"
                except (OSError, http.client.HTTPException) as error:
                    problem = f"POST note: {error!r}"
                    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
                writers.add(time.monotonic() - started, problem)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
        threads += [threading.Thread(target=writer) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(f"tree {tree}, {participants} participants, {seconds:.0f} s, gunicorn -w 4")
        print(f"  8 readers (GET {', '.join(READ_PATHS)}): {readers.summary(seconds)}")
        print(f"  2 writers (POST a note):        {writers.summary(seconds)}")
        for problem in sorted(set(readers.errors + writers.errors))[:10]:
            print(f"  error: {problem}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to serve")
    arguments = parser.parse_args()
    run(arguments.tree.resolve(), arguments.seconds, arguments.participants)


if __name__ == "__main__":
    main()
