"""Fixtures of the integration tests that need more than the shared transaction per test."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from flask import Flask

from tests.conftest import make_test_app
from tests.factories import make_team
from tracker import migrate
from tracker.db import get_database
from tracker.histories import protocol_history, run_histories


@pytest.fixture
def study(tmp_path: Path) -> Flask:
    """A SQLite file study of its own, through one protocol history (the tampering tests drop
    its triggers)."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    migrate.upgrade(url)
    app = make_test_app(url, str(tmp_path / "instance"))
    with app.app_context(), get_database(app).session_scope() as session:
        team = make_team(session, "S01")
        run_histories([protocol_history(session, team, random.Random(5), "integration")])
    return app
