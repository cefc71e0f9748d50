"""Two separate processes race the same transition on the same version: exactly one wins,
the other gets the conflict, and the audit chain still verifies (SPEC §3, §6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import make_test_app
from tests.factories import make_participant, make_user
from tests.support.databases import scratch_database
from tracker import ROOT, migrate
from tracker.audit.services import verify
from tracker.db import get_database
from tracker.participants.models import Participant, TransitionEvent

ROUNDS = 10


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_race_one_transition(backend: str, tmp_path: Path) -> None:
    with scratch_database(backend, tmp_path) as url:
        migrate.upgrade(url)
        app = make_test_app(url, str(tmp_path))
        database = get_database(app)
        with database.session_scope() as session:
            coordinators = [
                make_user(session, "coordinator", "S01", username=f"racer{i}") for i in (1, 2)
            ]
            ids = [make_participant(session, coordinators[0]).id for _ in range(ROUNDS)]

        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        go_prefix = tmp_path / "go"
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.race_worker",
                    url,
                    ",".join(map(str, ids)),
                    user.username,
                    "1",
                    str(go_prefix),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for user in coordinators
        ]
        outcomes = []
        try:
            for round_number in range(ROUNDS):
                for worker in workers:
                    assert worker.stdout is not None
                    assert worker.stdout.readline().strip() == "ready"
                Path(f"{go_prefix}-{round_number}").touch()
                outcomes.append(sorted(w.stdout.readline().strip() for w in workers))  # type: ignore[union-attr]
            for worker in workers:
                _, err = worker.communicate(timeout=60)
                assert worker.returncode == 0, err
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.communicate()

        with database.session_scope() as session:
            versions = dict(
                session.execute(
                    sa.select(Participant.id, Participant.version).where(Participant.id.in_(ids))
                ).all()
            )
            events = session.scalar(
                sa.select(sa.func.count())
                .select_from(TransitionEvent)
                .where(TransitionEvent.participant_id.in_(ids))
            )
            result = verify(session)
        database.engine.dispose()

    assert outcomes == [["conflict", "won"]] * ROUNDS
    assert set(versions.values()) == {2}
    assert events == ROUNDS
    assert result.ok, result.problem
