"""Eight clients randomise at once through two gunicorn servers over one database (SPEC §11):
for the same participant exactly one wins and the others get 409; for different participants
of one stratum every one is randomised and they take the stratum's first entries, each once,
with no gap. On PostgreSQL (row lock on the list) and on one SQLite file (its write lock)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from tests.factories import FACTORY_ACTOR, actor, make_team, make_user
from tests.reliability.seed import open_database
from tests.reliability.servers import ApiClient, gunicorn
from tests.support.databases import scratch_database
from tracker import clock, migrate
from tracker.audit.models import AuditEvent
from tracker.audit.services import Actor, verify
from tracker.auth.services import create_api_token
from tracker.histories import protocol_history, run_histories
from tracker.outcome_histories import spread
from tracker.outcomes.services import record_assessment, set_raters
from tracker.participants.models import Participant
from tracker.paths import FIXTURES
from tracker.randomisation.models import RandomisationEntry
from tracker.randomisation.services import generate_for
from tracker.study.services import activate_protocol, definition_of

CLIENTS = 8
SEVERE = 41  # a baseline MADRS total in the severe band: every participant in one stratum


def _seed(url: str) -> tuple[list[int], list[str]]:
    """Nine participants in preparation at S01 with a severe baseline, a list, and a token
    for each of four coordinators and four investigators."""
    migrate.upgrade(url)
    database = open_database(url)
    try:
        with database.session_scope() as db:
            version = activate_protocol(
                db,
                Actor.system(),
                (FIXTURES / "protocols" / "mdma-mdd-v2.toml").read_text(encoding="utf-8"),
            )
            team = make_team(db, "S01", usernames=("coord1", "invest1", "thera1", "thera2"))
            rater = make_user(db, "rater", "S01", username="rater1")
            statistician = make_user(db, "statistician", None, username="stat1")
            generate_for(db, actor(statistician), version, per_stratum=24, seed=99)
            run_histories(
                [
                    protocol_history(db, team, random.Random(i), "preparation", notes=False)
                    for i in range(CLIENTS + 1)
                ]
            )
            madrs = definition_of(version).instrument("madrs")
            participants = list(db.scalars(sa.select(Participant).order_by(Participant.id)))
            for participant in participants:
                set_raters(db, team.as_coordinator, participant, [rater.username])
                record_assessment(
                    db,
                    actor(rater),
                    participant,
                    timepoint="baseline",
                    instrument="madrs",
                    administered_at=clock.now(),
                    items=spread(madrs, SEVERE, random.Random(participant.id)),
                )
            users = [team.coordinator, team.investigator]
            users += [make_user(db, "coordinator", "S01", username=f"coord{i}") for i in (2, 3, 4)]
            users += [
                make_user(db, "investigator", "S01", username=f"invest{i}") for i in (2, 3, 4)
            ]
            tokens = [create_api_token(db, FACTORY_ACTOR, u) for u in users]
            ids = [p.id for p in participants]
        return ids, tokens
    finally:
        database.engine.dispose()


def _all_at_once(calls: list) -> list[requests.Response]:  # type: ignore[type-arg]
    """Run the calls on their own threads, released together."""
    barrier = threading.Barrier(len(calls))
    results: list[requests.Response | BaseException] = [None] * len(calls)  # type: ignore[list-item]

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
        assert not thread.is_alive(), "a client hung"
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures
    return results  # type: ignore[return-value]


def _race(url: str, tmp_path: Path, workers: int) -> None:
    ids, tokens = _seed(url)
    contested, *own = ids
    with (
        gunicorn(url, tmp_path, workers=workers) as first,
        gunicorn(url, tmp_path, workers=workers) as second,
    ):
        clients = [ApiClient((first, second)[i % 2].url, token) for i, token in enumerate(tokens)]
        version = clients[0].get(f"/api/v1/participants/{contested}").json()["version"]
        # The same participant, eight times at once.
        same = _all_at_once(
            [
                lambda c=c: c.post(
                    f"/api/v1/participants/{contested}/randomisation",
                    json={"expected_version": version},
                )
                for c in clients
            ]
        )
        # Eight participants of one stratum, one each, at once.
        versions = {
            pid: clients[0].get(f"/api/v1/participants/{pid}").json()["version"] for pid in own
        }
        different = _all_at_once(
            [
                lambda c=c, pid=pid: c.post(
                    f"/api/v1/participants/{pid}/randomisation",
                    json={"expected_version": versions[pid]},
                )
                for c, pid in zip(clients, own, strict=True)
            ]
        )
        logs = first.log_text() + second.log_text()
    assert "Traceback" not in logs, logs[-5000:]
    statuses = Counter(r.status_code for r in same)
    assert statuses == {201: 1, 409: CLIENTS - 1}, [(r.status_code, r.text[:200]) for r in same]
    assert [r.status_code for r in different] == [201] * CLIENTS, [r.text[:300] for r in different]

    database = open_database(url)
    try:
        with database.session_scope() as db:
            used = db.execute(
                sa.select(RandomisationEntry.participant_id, RandomisationEntry.position)
                .where(RandomisationEntry.participant_id.is_not(None))
                .order_by(RandomisationEntry.position)
            ).all()
            events = db.scalar(
                sa.select(sa.func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "participant.randomise")
            )
            verification = verify(db)
    finally:
        database.engine.dispose()
    # Nine participants, the stratum's first nine entries, each once.
    assert sorted(pid for pid, _ in used) == sorted(ids)
    assert [position for _, position in used] == list(range(1, CLIENTS + 2))
    assert events == CLIENTS + 1
    assert verification.ok, verification.problem


@pytest.mark.slow
def test_randomisation_race_on_postgresql(tmp_path: Path) -> None:
    with scratch_database("postgresql", tmp_path) as url:
        _race(url, tmp_path, workers=2)


@pytest.mark.slow
def test_randomisation_race_on_one_sqlite_file(tmp_path: Path) -> None:
    with scratch_database("sqlite", tmp_path) as url:
        _race(url, tmp_path, workers=1)
