"""Eight identical adverse-event POSTs sent at once with one ``Idempotency-Key``, through four
gunicorn workers over one database: one row is stored and every client gets the same answer
(SPEC §9). Without the key, eight requests are eight reports, as a client that sends eight
means."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from tests.reliability.seed import open_database, seed_small_study
from tests.reliability.servers import ApiClient, gunicorn
from tests.support.databases import BACKENDS, scratch_database
from tracker.audit.services import verify
from tracker.safety.models import AdverseEvent

CLIENTS = 8
EVENT = {
    "term": "Nausea",
    "onset_at": "2026-11-30T10:00:00+00:00",
    "grade": 2,
    "serious": False,
    "description": "after the supplemental dose",
}


def _race(server_url: str, token: str, pid: int, key: str | None) -> list[requests.Response]:
    barrier = threading.Barrier(CLIENTS)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def send() -> None:
        client = ApiClient(server_url, token)
        headers = {"Idempotency-Key": key} if key else {}
        barrier.wait()
        response = client.post(
            f"/api/v1/participants/{pid}/adverse-events", json=EVENT, headers=headers
        )
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=send) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def _rows(url: str, pid: int) -> int:
    database = open_database(url)
    try:
        with database.session_scope() as session:
            assert verify(session).ok
            return int(
                session.scalar(
                    sa.select(sa.func.count())
                    .select_from(AdverseEvent)
                    .where(AdverseEvent.participant_id == pid)
                )
                or 0
            )
    finally:
        database.engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_eight_identical_posts_with_one_key_store_one_row(backend: str, tmp_path: Path) -> None:
    with scratch_database(backend, tmp_path) as url:
        study = seed_small_study(url)
        pid, token = study.participant_id, study.tokens["coordinator"]
        with gunicorn(url, tmp_path, workers=4) as server:
            keyed = _race(server.url, token, pid, "ae-report-7f3c")
            assert len(keyed) == CLIENTS
            assert [r.status_code for r in keyed] == [201] * CLIENTS, [r.text for r in keyed]
            assert len({r.text for r in keyed}) == 1, [r.text for r in keyed]
            assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in keyed) == CLIENTS - 1
            assert _rows(url, pid) == 1

            unkeyed = _race(server.url, token, pid, None)
            assert [r.status_code for r in unkeyed] == [201] * CLIENTS
            assert _rows(url, pid) == 1 + CLIENTS
            assert "Traceback" not in server.log_text()
