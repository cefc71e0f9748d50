"""One contender in a transition race, in a process of its own.

Usage: python -m tests.support.race_worker DATABASE_URL PARTICIPANT_IDS USERNAME VERSION GO_PREFIX
For each participant id (comma-separated) in turn: prints "ready", waits for GO_PREFIX-<n>,
applies place_on_hold decided on VERSION, prints the outcome.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import make_test_app
from tracker.auth.services import actor_for, get_user_by_username
from tracker.db import get_database
from tracker.errors import Conflict, RuleViolation
from tracker.participants import queries
from tracker.participants.transitions import apply_transition


def main() -> None:
    url, participant_ids, username, version, go_prefix = sys.argv[1:6]
    app = make_test_app(url, tempfile.mkdtemp())
    database = get_database(app)
    try:
        for round_number, participant_id in enumerate(participant_ids.split(",")):
            print("ready", flush=True)
            if not _wait(Path(f"{go_prefix}-{round_number}")):
                print("timeout", flush=True)
                return
            print(_race(database, int(participant_id), username, int(version)), flush=True)
    finally:
        database.engine.dispose()


def _wait(go: Path) -> bool:
    deadline = time.monotonic() + 30
    while not go.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def _race(database, participant_id: int, username: str, version: int) -> str:  # type: ignore[no-untyped-def]
    try:
        with database.session_scope() as session:
            user = get_user_by_username(session, username)
            participant = queries.get_participant(session, user, participant_id)
            apply_transition(
                session,
                actor_for(user),
                participant,
                "place_on_hold",
                expected_version=version,
                reason=f"race by {username}",
            )
        return "won"
    except Conflict:
        return "conflict"
    except RuleViolation as error:
        return f"refused {error.details}"


if __name__ == "__main__":
    main()
