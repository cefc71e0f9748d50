"""Crashes and outages (SPEC §3, §6, §8): a worker killed with SIGKILL in the middle of a
change leaves no partial record and a chain that verifies, and the next request works; a
PostgreSQL restart is survived by the running server (a quick 503, then 200 again)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.reliability.seed import open_database, seed_race_study, seed_small_study
from tests.reliability.servers import ApiClient, Server, gunicorn
from tests.support.databases import scratch_database
from tests.support.throwaway_postgres import throwaway_cluster
from tracker.audit.models import AuditEvent
from tracker.audit.services import AUDIT_APPEND_LOCK_KEY, verify
from tracker.notes.models import Note
from tracker.participants.models import Participant, TransitionEvent

OUTAGE_ANSWER_SECONDS = 8.0  # a request during the outage must be answered within this


def _chain_report(url: str) -> tuple[bool, str | None, int, list[int]]:
    database = open_database(url)
    try:
        with database.session_scope() as session:
            result = verify(session)
            duplicates = list(
                session.scalars(
                    sa.select(AuditEvent.seq).group_by(AuditEvent.seq).having(sa.func.count() > 1)
                )
            )
            return result.ok, result.problem, result.events, duplicates
    finally:
        database.engine.dispose()


def _wait_for_advisory_waiter(engine: sa.Engine, database_name: str, timeout: float) -> None:
    """Until a backend of the app is blocked on the audit lock, i.e. mid-transaction."""
    deadline = time.monotonic() + timeout
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = :db "
        "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
    )
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if connection.scalar(query, {"db": database_name}):
                return
        time.sleep(0.05)
    raise AssertionError("the request never reached the audit append (no advisory-lock waiter)")


def _kill_worker_blocked_in(
    server: Server, url: str, engine: sa.Engine, send: Callable[[], requests.Response]
) -> str:
    """Hold the audit lock, send a change, SIGKILL the worker while it waits inside the
    transaction (its rows already flushed), then let go. Returns what the client saw."""
    outcome: dict[str, str] = {}

    def client() -> None:
        try:
            response = send()
            outcome["seen"] = f"HTTP {response.status_code}"
        except requests.RequestException as error:
            outcome["seen"] = type(error).__name__

    database_name = make_url(url).database or ""
    with engine.connect() as holder:
        holder.execute(sa.select(sa.func.pg_advisory_lock(AUDIT_APPEND_LOCK_KEY)))
        try:
            thread = threading.Thread(target=client, daemon=True)
            thread.start()
            _wait_for_advisory_waiter(engine, database_name, timeout=15)
            (worker,) = server.worker_pids()
            os.kill(worker, signal.SIGKILL)
            thread.join(timeout=15)
            assert not thread.is_alive(), "the client hung after the worker died"
        finally:
            holder.execute(sa.select(sa.func.pg_advisory_unlock(AUDIT_APPEND_LOCK_KEY)))
            holder.commit()
    server.wait_for_workers()  # gunicorn replaces the dead worker
    return outcome["seen"]


@pytest.mark.slow
def test_worker_killed_mid_transaction_leaves_nothing_partial(tmp_path: Path) -> None:
    """PostgreSQL: the worker is stopped for certain between its flushed rows (participant
    UPDATE, transition event / note INSERT) and the audit append, then killed."""
    with scratch_database("postgresql", tmp_path) as url:
        study = seed_race_study(url, participants=1)
        (pid,) = study.participant_ids
        token = study.tokens["invest1"][1]
        engine = sa.create_engine(url)
        try:
            with gunicorn(url, tmp_path, workers=1) as server:
                client = ApiClient(server.url, token)
                version = client.get(f"/api/v1/participants/{pid}").json()["version"]
                events_before = _count(url, TransitionEvent)
                notes_before = _count(url, Note)
                audit_before = _chain_report(url)[2]

                def hold() -> requests.Response:
                    return ApiClient(server.url, token).post(
                        f"/api/v1/participants/{pid}/transitions",
                        json={
                            "transition": "place_on_hold",
                            "expected_version": version,
                            "reason": "killed mid-change",
                        },
                    )

                def note() -> requests.Response:
                    return ApiClient(server.url, token).post(
                        f"/api/v1/participants/{pid}/notes", json={"text": "killed mid-note"}
                    )

                seen = [
                    _kill_worker_blocked_in(server, url, engine, hold),
                    _kill_worker_blocked_in(server, url, engine, note),
                ]
                assert all(not s.startswith("HTTP 2") for s in seen), seen

                # Nothing of either change survived: no version bump, no event, no note, no
                # audit event; the chain verifies.
                assert _version(url, pid) == version
                assert _count(url, TransitionEvent) == events_before
                assert _count(url, Note) == notes_before
                ok, problem, events, duplicates = _chain_report(url)
                assert ok, problem
                assert events == audit_before and duplicates == []

                # The next requests work, decided on the same version.
                again = client.post(
                    f"/api/v1/participants/{pid}/transitions",
                    json={
                        "transition": "place_on_hold",
                        "expected_version": version,
                        "reason": "after the crash",
                    },
                )
                assert again.status_code == 201, again.text
                assert again.json()["participant"]["version"] == version + 1
                written = client.post(
                    f"/api/v1/participants/{pid}/notes", json={"text": "after the crash"}
                )
                assert written.status_code == 201, written.text
                ok, problem, events, _ = _chain_report(url)
                assert ok, problem
                assert events == audit_before + 2
                print(f"\ncrash cases mid-transaction (postgresql): {seen}")
        finally:
            engine.dispose()


def _count(url: str, model: type) -> int:
    database = open_database(url)
    try:
        with database.session_scope() as session:
            return int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)
    finally:
        database.engine.dispose()


def _version(url: str, pid: int) -> int:
    database = open_database(url)
    try:
        with database.session_scope() as session:
            return int(session.scalar(sa.select(Participant.version).where(Participant.id == pid)))
    finally:
        database.engine.dispose()


KILLS = 8
WRITERS = 4


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_workers_killed_during_a_stream_of_writes(backend: str, tmp_path: Path) -> None:
    """Writers add notes and readings while workers are SIGKILLed at random moments: every
    acknowledged write is stored, every stored note has exactly its one audit event (and the
    reverse), the chain verifies, and the server answers afterwards."""
    with scratch_database(backend, tmp_path) as url:
        study = seed_race_study(url, participants=2)
        before_notes = _count(url, Note)
        with gunicorn(url, tmp_path, workers=2) as server:
            stop = threading.Event()
            acknowledged: list[tuple[int, str]] = []
            failures: list[str] = []
            lock = threading.Lock()

            def writer(index: int) -> None:
                username = list(study.tokens)[index]
                client = ApiClient(server.url, study.tokens[username][1])
                n = 0
                while not stop.is_set():
                    n += 1
                    pid = study.participant_ids[n % 2]
                    text = f"stream {index}-{n}"
                    try:
                        response = client.post(
                            f"/api/v1/participants/{pid}/notes", json={"text": text}, timeout=20
                        )
                    except requests.RequestException as error:
                        with lock:
                            failures.append(type(error).__name__)
                        continue
                    with lock:
                        if response.status_code == 201:
                            acknowledged.append((response.json()["id"], text))
                        else:
                            failures.append(f"HTTP {response.status_code}")

            threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(4)]
            for thread in threads:
                thread.start()
            rng = random.Random(7)
            killed = 0
            try:
                for _ in range(KILLS):
                    time.sleep(rng.uniform(0.3, 0.9))
                    server.wait_for_workers(timeout=30)
                    pids = server.worker_pids()
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    killed += 1
                time.sleep(0.5)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(timeout=30)
            assert not any(t.is_alive() for t in threads), "a writer hung"
            server.wait_for_workers(timeout=30)
            token = study.tokens["invest1"][1]
            after = ApiClient(server.url, token).post(
                f"/api/v1/participants/{study.participant_ids[0]}/notes",
                json={"text": "after the kills"},
            )
            assert after.status_code == 201, after.text
            logs = server.log_text()

        # Only dropped connections (the killed workers' requests) or a 5xx from the gateway
        # are acceptable losses; both must have changed nothing (checked below).
        assert all(f in ("ConnectionError", "ChunkedEncodingError") for f in failures), failures
        database = open_database(url)
        try:
            with database.session_scope() as session:
                stored = dict(session.execute(sa.select(Note.id, Note.text)).all())
                audited = [
                    (e.get("note"), e.get("text"))
                    for e in session.scalars(
                        sa.select(AuditEvent.new_values).where(AuditEvent.action == "note.add")
                    )
                ]
                if backend == "sqlite":
                    assert session.scalar(sa.text("PRAGMA integrity_check")) == "ok"
        finally:
            database.engine.dispose()
        for note_id, text in acknowledged:
            assert stored.get(note_id) == text, note_id
        # No partial record: each note has its audit event and each event its note.
        assert sorted(audited) == sorted(stored.items())
        # Commits whose answer died with the worker are complete (checked above) and can only
        # come from requests that were cut off.
        unacknowledged = len(stored) - before_notes - len(acknowledged) - 1
        assert 0 <= unacknowledged <= len(failures), (unacknowledged, failures)
        ok, problem, _, duplicates = _chain_report(url)
        assert ok, problem
        assert duplicates == []
        assert killed == KILLS and "WORKER TIMEOUT" not in logs
        print(
            f"\nstream kills ({backend}): {killed} workers killed, {len(acknowledged)} notes "
            f"acknowledged, {len(failures)} requests cut off"
        )


@pytest.mark.slow
def test_postgresql_restart_is_survived_by_the_running_server(tmp_path: Path) -> None:
    # A cluster of the test's own: stopping the machine's PostgreSQL would cut every other
    # user of it.
    with throwaway_cluster() as cluster:
        url = cluster.url
        study = seed_small_study(url)
        pid = study.participant_id
        with gunicorn(url, tmp_path, workers=2) as server:
            workers_before = sorted(server.worker_pids())
            client = ApiClient(server.url, study.tokens["coordinator"])
            for _ in range(4):  # every worker's pool holds a connection
                assert client.get("/api/v1/participants").status_code == 200
            notes_before = client.get(f"/api/v1/participants/{pid}/notes").json()["notes"]

            answers: list[tuple[str, int, float, dict]] = []
            try:
                cluster.stop()
                for label, method, path, body in (
                    ("list", "GET", "/api/v1/participants", None),
                    ("detail", "GET", f"/api/v1/participants/{pid}", None),
                    ("note", "POST", f"/api/v1/participants/{pid}/notes", {"text": "outage"}),
                    ("health", "GET", "/api/v1/health", None),
                    ("list again", "GET", "/api/v1/participants", None),
                ):
                    started = time.monotonic()
                    if label == "health":  # a monitoring probe sends no token
                        response = requests.get(server.url + path, timeout=30)
                    else:
                        response = client.request(method, path, json=body, timeout=30)
                    elapsed = time.monotonic() - started
                    answers.append((label, response.status_code, elapsed, response.json()))
            finally:
                cluster.start()

            # The same running server (same workers) answers again at once.
            recovered = client.get("/api/v1/participants")
            assert recovered.status_code == 200, recovered.text
            written = client.post(f"/api/v1/participants/{pid}/notes", json={"text": "back"})
            assert written.status_code == 201, written.text
            assert sorted(server.worker_pids()) == workers_before
            notes_after = client.get(f"/api/v1/participants/{pid}/notes").json()["notes"]

        for label, status, elapsed, body in answers:
            assert status == 503, (label, status, body)
            assert elapsed < OUTAGE_ANSWER_SECONDS, (label, elapsed)
            if label == "health":
                assert body == {"status": "unavailable", "database": "unreachable"}
            else:
                assert body["error"]["code"] == "service_unavailable", body
        # The note sent during the outage was not stored; the one after it was.
        assert [n["text"] for n in notes_after] == [n["text"] for n in notes_before] + ["back"]
        ok, problem, _, duplicates = _chain_report(url)
        assert ok and duplicates == [], problem
        print(
            "\noutage answers: "
            + ", ".join(
                f"{label} {status} in {elapsed:.2f}s" for label, status, elapsed, _ in answers
            )
        )
