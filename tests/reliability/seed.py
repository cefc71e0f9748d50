"""Scratch studies for the reliability tests, made by the real services (so the audit trail
is real) on a migrated scratch database, with API tokens for the HTTP clients."""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import make_test_app
from tests.factories import FACTORY_ACTOR, PASSWORD, actor, make_participant, make_team, make_user
from tracker import clock, migrate
from tracker.auth.services import create_api_token
from tracker.db import Database, get_database
from tracker.histories import protocol_history, run_histories
from tracker.participants.models import Participant
from tracker.participants.services import set_therapists
from tracker.sessions.models import TherapySession

SIMULATED_DAYS = timedelta(days=60)


@dataclass
class RaceStudy:
    participant_ids: list[int]
    dosing_session_of: dict[int, int]  # participant id -> its open dosing session
    tokens: dict[str, tuple[str, str]]  # username -> (role, bearer token)
    passwords: dict[str, str]


def open_database(url: str) -> Database:
    """The app's Database object for ``url`` (testing settings, cheap argon2)."""
    return get_database(make_test_app(url, tempfile.mkdtemp(prefix="tracker-seed-")))


def seed_race_study(url: str, participants: int = 4) -> RaceStudy:
    """Participants with a dosing session under way (so readings can be recorded), every
    therapist assigned to every participant, and one user with a token per client."""
    migrate.upgrade(url)
    database = open_database(url)
    rng = random.Random(20260601)
    try:
        with database.session_scope() as session:
            team = make_team(session, "S01", usernames=("coord1", "invest1", "thera1", "thera2"))
            # The histories run on a simulated timeline that ends before the real now.
            real_now = clock.now()
            clock.start_simulation(real_now - SIMULATED_DAYS)
            try:
                run_histories(
                    [
                        protocol_history(session, team, rng, "dosing_in_progress", notes=False)
                        for _ in range(participants)
                    ],
                    until=real_now - timedelta(minutes=10),
                )
            finally:
                clock.reset()
            extra = [
                make_user(session, "investigator", "S01", username=f"invest{i}") for i in (2, 3, 4)
            ] + [make_user(session, "coordinator", "S01", username="coord2")]
            users = [team.coordinator, team.investigator, *team.therapists, *extra]
            rows = list(session.scalars(sa.select(Participant).order_by(Participant.id)))
            for participant in rows:
                set_therapists(
                    session,
                    team.as_coordinator,
                    participant,
                    [t.username for t in team.therapists],
                )
            dosing = {
                row.participant_id: row.id
                for row in session.scalars(
                    sa.select(TherapySession).where(
                        TherapySession.kind == "dosing",
                        TherapySession.started_at.is_not(None),
                        TherapySession.ended_at.is_(None),
                    )
                )
            }
            tokens = {
                user.username: (user.role, create_api_token(session, FACTORY_ACTOR, user))
                for user in users
            }
            ids = [p.id for p in rows]
        assert len(ids) == participants and set(dosing) == set(ids), (ids, dosing)
        return RaceStudy(
            participant_ids=ids,
            dosing_session_of=dosing,
            tokens=tokens,
            passwords={u: PASSWORD for u in tokens},
        )
    finally:
        database.engine.dispose()


@dataclass
class SmallStudy:
    participant_id: int
    tokens: dict[str, str]  # role -> bearer token
    usernames: dict[str, str]  # role -> username


def seed_small_study(url: str) -> SmallStudy:
    """One participant at S01, one user of each clinical role with a token (and an admin)."""
    migrate.upgrade(url)
    database = open_database(url)
    try:
        with database.session_scope() as session:
            users = {
                role: make_user(session, role, "S01", username=f"{role}1")
                for role in ("coordinator", "investigator", "therapist", "auditor", "admin")
            }
            participant = make_participant(session, users["coordinator"])
            set_therapists(
                session, actor(users["coordinator"]), participant, [users["therapist"].username]
            )
            tokens = {
                role: create_api_token(session, FACTORY_ACTOR, user) for role, user in users.items()
            }
            return SmallStudy(
                participant_id=participant.id,
                tokens=tokens,
                usernames={role: user.username for role, user in users.items()},
            )
    finally:
        database.engine.dispose()


def seed_demo_study(url: str, instance: Path) -> dict[str, str]:
    """The demo study (participants in every state, sessions, notes, adverse events) and a
    bearer token for each role: role -> token."""
    from tracker.auth.models import User
    from tracker.demo import load_demo

    migrate.upgrade(url)
    database = open_database(url)
    try:
        load_demo(database, instance)
        with database.session_scope() as session:
            return {
                role: create_api_token(
                    session,
                    FACTORY_ACTOR,
                    session.scalars(
                        sa.select(User).where(User.role == role).order_by(User.id)
                    ).first(),
                )
                for role in ("auditor", "coordinator", "therapist", "investigator", "admin")
            }
    finally:
        database.engine.dispose()
