"""Eight pharmacists dispense the last units of one lot at once through two gunicorn servers
over one database (SPEC §12): exactly as many succeed as the balance covers, the others are
refused with the figures, and the balance never goes below zero. On PostgreSQL (a row lock on
the lot) and on one SQLite file (its write lock)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.factories import FACTORY_ACTOR, actor, make_team, make_user
from tests.reliability.seed import open_database
from tests.reliability.servers import ApiClient, gunicorn
from tests.reliability.test_randomisation_race import _all_at_once
from tracker import clock, migrate
from tracker.audit.services import verify
from tracker.auth.services import create_api_token
from tracker.histories import protocol_history, run_histories
from tracker.pharmacy import queries, services
from tracker.pharmacy.models import LedgerEntry
from tracker.protocol.accountability import EntryKind, balance, running_balances
from tracker.sessions.models import TherapySession

CLIENTS = 8
STOCK = 20
EACH = 9  # two dispensings fit in the stock, the third does not


def _seed(url: str) -> tuple[int, list[int], list[str]]:
    """Eight participants each in a dosing session, then the site's registration and a lot
    of 20 units; a token for each of eight pharmacists."""
    migrate.upgrade(url)
    database = open_database(url)
    try:
        with database.session_scope() as db:
            team = make_team(db, "S01", usernames=("coord1", "invest1", "thera1", "thera2"))
            run_histories(
                [
                    protocol_history(db, team, random.Random(i), "dosing_in_progress", notes=False)
                    for i in range(CLIENTS)
                ]
            )
            sessions = list(
                db.scalars(sa.select(TherapySession.id).where(TherapySession.kind == "dosing"))
            )
            pharmacists = [
                make_user(db, "pharmacist", "S01", username=f"pharm{i}") for i in range(CLIENTS)
            ]
            first = pharmacists[0]
            services.register_site(
                db,
                actor(first),
                "S01",
                number="RS7654329",
                registrant="S01 pharmacy",
                expires_on=date(2031, 1, 1),
            )
            lot = services.create_lot(
                db,
                actor(first),
                first,
                site="S01",
                product="MDMA 20 mg capsules",
                lot="RACE-1",
                strength_mg=20,
                expires_on=date(2031, 1, 1),
            )
            services.record_entry(
                db,
                actor(first),
                first,
                lot,
                kind="receipt",
                units=STOCK,
                occurred_at=clock.now(),
                dea_form_222="221999999",
                witness="coord1",
            )
            tokens = [create_api_token(db, FACTORY_ACTOR, u) for u in pharmacists]
            return lot.id, sessions, tokens
    finally:
        database.engine.dispose()


def _race(url: str, tmp_path: Path, workers: int) -> None:
    lot_id, sessions, tokens = _seed(url)
    assert len(sessions) == CLIENTS
    with (
        gunicorn(url, tmp_path, workers=workers) as first,
        gunicorn(url, tmp_path, workers=workers) as second,
    ):
        clients = [ApiClient((first, second)[i % 2].url, token) for i, token in enumerate(tokens)]
        # The servers run on the real clock; the seed's histories moved the test's own.
        moment = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        answers = _all_at_once(
            [
                lambda c=c, sid=sid: c.post(
                    f"/api/v1/inventory/lots/{lot_id}/entries",
                    json={
                        "kind": "dispensing",
                        "units": EACH,
                        "session_id": sid,
                        "occurred_at": moment,
                    },
                )
                for c, sid in zip(clients, sessions, strict=True)
            ]
        )
        after = clients[0].get(f"/api/v1/inventory/lots/{lot_id}").json()
        logs = first.log_text() + second.log_text()
    assert "Traceback" not in logs, logs[-5000:]
    statuses = Counter(r.status_code for r in answers)
    fits = STOCK // EACH
    assert statuses == {201: fits, 422: CLIENTS - fits}, [
        (r.status_code, r.text[:200]) for r in answers
    ]
    refused = [r.json() for r in answers if r.status_code == 422]
    assert all(f"balance is {STOCK - fits * EACH} units" in str(body) for body in refused), refused
    assert after["balance"] == STOCK - fits * EACH

    database = open_database(url)
    try:
        with database.session_scope() as db:
            lines = queries.lines_of(db, lot_id)
            dispensed = db.scalar(
                sa.select(sa.func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.kind == EntryKind.DISPENSING)
            )
            verification = verify(db)
    finally:
        database.engine.dispose()
    assert dispensed == fits
    assert balance(lines) == STOCK - fits * EACH
    assert min(after for _, after in running_balances(lines)) >= 0
    assert verification.ok, verification.problem


@pytest.mark.slow
def test_dispensing_race_on_postgresql(tmp_path: Path) -> None:
    from tests.support.databases import scratch_database

    with scratch_database("postgresql", tmp_path) as url:
        _race(url, tmp_path, workers=2)


@pytest.mark.slow
def test_dispensing_race_on_one_sqlite_file(tmp_path: Path) -> None:
    from tests.support.databases import scratch_database

    with scratch_database("sqlite", tmp_path) as url:
        _race(url, tmp_path, workers=1)
