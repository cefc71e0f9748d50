"""Eight clients race transitions, vital signs and notes on the same participants through two
gunicorn servers over one database (SPEC §3 concurrency, §6 chain): no lost update, exactly one
winner per contested version, every acknowledged write stored, one unforked audit chain."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from tests.reliability.seed import RaceStudy, open_database, seed_race_study
from tests.reliability.servers import ApiClient, gunicorn
from tests.support.databases import scratch_database
from tracker.audit.models import AuditEvent
from tracker.audit.services import verify
from tracker.dosing.models import VitalSignReading
from tracker.notes.models import Note
from tracker.participants.models import Participant, TransitionEvent

CLIENTS = 8
RACE_SECONDS = 15.0
TRANSITIONS = ("place_on_hold", "release_hold")


@dataclass
class Attempt:
    client: str
    kind: str  # transition, reading, note
    participant_id: int
    status: int
    expected_version: int | None = None
    transition: str | None = None
    version_after: int | None = None
    record_id: int | None = None
    sent: dict[str, Any] = field(default_factory=dict)
    body: str = ""


@dataclass
class Snapshot:
    versions: dict[int, int]
    transition_events: dict[int, int]
    reading_ids: set[int]
    note_ids: set[int]
    audit_actions: Counter[str]


def snapshot(url: str, study: RaceStudy) -> Snapshot:
    database = open_database(url)
    try:
        with database.session_scope() as session:
            ids = study.participant_ids
            versions = dict(
                session.execute(
                    sa.select(Participant.id, Participant.version).where(Participant.id.in_(ids))
                ).all()
            )
            events = dict(
                session.execute(
                    sa.select(TransitionEvent.participant_id, sa.func.count())
                    .where(TransitionEvent.participant_id.in_(ids))
                    .group_by(TransitionEvent.participant_id)
                ).all()
            )
            readings = set(session.scalars(sa.select(VitalSignReading.id)))
            notes = set(session.scalars(sa.select(Note.id)))
            actions = Counter(
                dict(
                    session.execute(
                        sa.select(AuditEvent.action, sa.func.count()).group_by(AuditEvent.action)
                    ).all()
                )
            )
        return Snapshot(versions, events, readings, notes, actions)
    finally:
        database.engine.dispose()


def _client_loop(
    name: str,
    role: str,
    client: ApiClient,
    study: RaceStudy,
    deadline: float,
    seed: int,
    out: list[Attempt],
    errors: list[str],
) -> None:
    rng = random.Random(seed)
    count = 0
    try:
        while time.monotonic() < deadline:
            count += 1
            pid = rng.choice(study.participant_ids)
            roll = rng.random()
            if roll < 0.5:
                seen = client.get(f"/api/v1/participants/{pid}")
                if seen.status_code != 200:
                    errors.append(f"{name} GET participant {pid}: {seen.status_code} {seen.text}")
                    continue
                state, version = seen.json()["state"], seen.json()["version"]
                if state == "on_hold":
                    if role != "investigator":
                        roll = 0.75  # only an investigator releases a hold; record instead
                    else:
                        out.append(_transition(name, client, pid, "release_hold", version, count))
                        continue
                else:
                    out.append(_transition(name, client, pid, "place_on_hold", version, count))
                    continue
            if roll < 0.75:
                sent = {
                    "measured_at": (datetime.now(UTC) - timedelta(seconds=2)).isoformat(),
                    "systolic": rng.randint(110, 140),
                    "diastolic": rng.randint(70, 90),
                    "heart_rate": rng.randint(60, 100),
                    "temperature_c": round(rng.uniform(36.5, 37.4), 1),
                    # The seeded sessions began weeks ago: the readings' time is confirmed.
                    "confirm_time": True,
                }
                response = client.post(
                    f"/api/v1/sessions/{study.dosing_session_of[pid]}/vitals", json=sent
                )
                kind = "reading"
            else:
                sent = {"text": f"race note {name} #{count} {rng.getrandbits(32):08x}"}
                response = client.post(f"/api/v1/participants/{pid}/notes", json=sent)
                kind = "note"
            record_id = response.json().get("id") if response.status_code == 201 else None
            out.append(
                Attempt(
                    name,
                    kind,
                    pid,
                    response.status_code,
                    record_id=record_id,
                    sent=sent,
                    body="" if response.status_code == 201 else response.text[:500],
                )
            )
    except requests.RequestException as error:  # a hang or a dropped connection fails the test
        errors.append(f"{name}: {type(error).__name__}: {error}")


def _transition(
    name: str, client: ApiClient, pid: int, transition: str, version: int, count: int
) -> Attempt:
    response = client.post(
        f"/api/v1/participants/{pid}/transitions",
        json={
            "transition": transition,
            "expected_version": version,
            "reason": f"race {name} #{count}",
        },
    )
    version_after = None
    if response.status_code == 201:
        version_after = response.json()["transition"]["version_after"]
    return Attempt(
        name,
        "transition",
        pid,
        response.status_code,
        expected_version=version,
        transition=transition,
        version_after=version_after,
        body="" if response.status_code == 201 else response.text[:500],
    )


def run_race(study: RaceStudy, bases: list[str], seconds: float) -> tuple[list[Attempt], list[str]]:
    attempts: list[Attempt] = []
    errors: list[str] = []
    names = list(study.tokens)
    assert len(names) == CLIENTS
    deadline = time.monotonic() + seconds
    threads = []
    for index, username in enumerate(names):
        role, token = study.tokens[username]
        client = ApiClient(bases[index % len(bases)], token)
        threads.append(
            threading.Thread(
                target=_client_loop,
                args=(username, role, client, study, deadline, index, attempts, errors),
                daemon=True,
            )
        )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
        assert not thread.is_alive(), "a client hung"
    return attempts, errors


def check_race(url: str, study: RaceStudy, before: Snapshot, attempts: list[Attempt]) -> dict:
    """Every assertion of the race; returns the figures for the report."""
    after = snapshot(url, study)
    unexpected = [
        a for a in attempts if not (a.status == 201 or (a.kind == "transition" and a.status == 409))
    ]
    assert not unexpected, [(a.client, a.kind, a.status, a.body) for a in unexpected[:10]]

    transitions = [a for a in attempts if a.kind == "transition"]
    wins = [a for a in transitions if a.status == 201]
    conflicts = [a for a in transitions if a.status == 409]
    lost_updates = 0
    for pid in study.participant_ids:
        start = before.versions[pid]
        mine = sorted(
            (a.expected_version for a in wins if a.participant_id == pid),
            key=lambda v: v or 0,
        )
        # One winner per version, and the winners form an unbroken sequence of versions.
        assert mine == list(range(start, start + len(mine))), (pid, start, mine)
        for a in wins:
            if a.participant_id == pid:
                assert a.version_after == (a.expected_version or 0) + 1, a
        final = after.versions[pid]
        lost_updates += start + len(mine) - final
        assert final == start + len(mine), f"participant {pid}: version {final}, expected " + str(
            start + len(mine)
        )
        new_events = after.transition_events.get(pid, 0) - before.transition_events.get(pid, 0)
        assert new_events == len(mine), (pid, new_events, len(mine))
    winners = {(a.participant_id, a.expected_version) for a in wins}
    attempts_per_version = Counter((a.participant_id, a.expected_version) for a in transitions)
    contested = [key for key, n in attempts_per_version.items() if n > 1]
    for key in contested:
        assert key in winners, f"contested version {key} had no winner"
    for a in conflicts:
        # A conflict is only right when someone else won that very version.
        assert (a.participant_id, a.expected_version) in winners, a

    readings = [a for a in attempts if a.kind == "reading"]
    notes = [a for a in attempts if a.kind == "note"]
    new_readings = after.reading_ids - before.reading_ids
    new_notes = after.note_ids - before.note_ids
    assert {a.record_id for a in readings} == new_readings
    assert {a.record_id for a in notes} == new_notes

    database = open_database(url)
    try:
        with database.session_scope() as session:
            stored_text = dict(
                session.execute(sa.select(Note.id, Note.text).where(Note.id.in_(new_notes))).all()
            )
            for a in notes:
                assert stored_text[a.record_id] == a.sent["text"]
            stored_bp = dict(
                session.execute(
                    sa.select(VitalSignReading.id, VitalSignReading.systolic).where(
                        VitalSignReading.id.in_(new_readings)
                    )
                ).all()
            )
            for a in readings:
                assert stored_bp[a.record_id] == a.sent["systolic"]
            duplicate_seq = session.execute(
                sa.select(AuditEvent.seq).group_by(AuditEvent.seq).having(sa.func.count() > 1)
            ).all()
            count, low, high = session.execute(
                sa.select(sa.func.count(), sa.func.min(AuditEvent.seq), sa.func.max(AuditEvent.seq))
            ).one()
            result = verify(session)
    finally:
        database.engine.dispose()
    assert duplicate_seq == []
    assert (low, high) == (1, count), "the audit sequence has a gap"
    assert result.ok, (result.first_bad_seq, result.problem)
    delta = after.audit_actions - before.audit_actions
    assert delta["participant.place_on_hold"] + delta["participant.release_hold"] == len(wins)
    assert delta["vitals.record"] == len(readings)
    assert delta["note.add"] == len(notes)
    return {
        "clients": CLIENTS,
        "requests": len(attempts) + len(transitions),  # each transition also read the version
        "transitions_tried": len(transitions),
        "transitions_won": len(wins),
        "conflicts_409": len(conflicts),
        "contested_versions": len(contested),
        "readings": len(readings),
        "notes": len(notes),
        "lost_updates": lost_updates,
        "audit_events": count,
    }


def _race_on(url: str, tmp_path: Path, workers: int) -> dict:
    study = seed_race_study(url)
    before = snapshot(url, study)
    with (
        gunicorn(url, tmp_path, workers=workers) as first,
        gunicorn(url, tmp_path, workers=workers) as second,
    ):
        attempts, errors = run_race(study, [first.url, second.url], RACE_SECONDS)
        logs = first.log_text() + second.log_text()
    assert not errors, errors[:10]
    assert "Traceback" not in logs, logs[-5000:]
    figures = check_race(url, study, before, attempts)
    # The race must really have raced, or it proves nothing.
    assert figures["transitions_won"] >= 20 and figures["conflicts_409"] >= 1, figures
    assert figures["readings"] >= 5 and figures["notes"] >= 5, figures
    print(f"\nrace figures ({url.split(':', 1)[0]}, {workers} worker(s) per server): {figures}")
    return figures


@pytest.mark.slow
def test_race_two_servers_on_postgresql(tmp_path: Path) -> None:
    with scratch_database("postgresql", tmp_path) as url:
        _race_on(url, tmp_path, workers=2)


@pytest.mark.slow
def test_race_two_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    with scratch_database("sqlite", tmp_path) as url:
        _race_on(url, tmp_path, workers=1)
