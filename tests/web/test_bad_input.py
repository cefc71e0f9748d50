"""Bad input is a 4xx with its reason and changes nothing (SPEC §9): a body nested deeper than
the API needs, a time outside the years 1900-2200 (year 1 or 9999 near a year boundary would
overflow when turned to UTC), and ``null`` where a list is expected."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, login
from tests.factories import FACTORY_ACTOR
from tracker.api.openapi import MAX_JSON_DEPTH, json_depth
from tracker.audit.models import AuditEvent
from tracker.auth.services import create_api_token
from tracker.histories import protocol_history, run_histories
from tracker.sessions.models import TherapySession

EDGE_TIMES = (
    "0001-01-01T00:30:00+05:00",  # before year 1 in UTC
    "9999-12-31T23:30:00-05:00",  # after year 9999 in UTC
    "1899-12-31T23:59:00+00:00",
    "2201-01-01T00:00:00+00:00",
)


@pytest.fixture
def dosing(db_session: Session, team):  # type: ignore[no-untyped-def]
    """A participant in integration with real sessions, and tokens of its team."""
    run_histories([protocol_history(db_session, team, random.Random(3), "integration")])
    session_row = db_session.scalars(
        sa.select(TherapySession)
        .where(TherapySession.kind == "dosing")
        .order_by(TherapySession.id.desc())
    ).first()
    assert session_row is not None
    therapist = session_row.therapists[0]
    tokens = {
        "therapist": create_api_token(db_session, FACTORY_ACTOR, therapist),
        "coordinator": create_api_token(db_session, FACTORY_ACTOR, team.coordinator),
    }
    db_session.commit()
    return session_row, tokens


def _head(session: Session) -> int:
    return int(session.scalar(sa.select(sa.func.max(AuditEvent.seq))) or 0)


def _call(client: FlaskClient, token: str, method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
    return client.open(
        f"/api/v1{path}", method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs
    )


def test_json_depth_reads_nesting_outside_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[{{{"}]}') == 3
    assert json_depth(b'"\\"[[["') == 0
    assert json_depth(b"[" * 1000 + b"]" * 1000) == 1000


def test_a_body_nested_a_thousand_levels_is_a_400(
    client: FlaskClient, db_session: Session, dosing
) -> None:
    session_row, tokens = dosing
    before = _head(db_session)
    deep = '{"text": ' + "[" * 1000 + "]" * 1000 + "}"
    response = _call(
        client,
        tokens["therapist"],
        "POST",
        f"/sessions/{session_row.id}/notes",
        data=deep,
        content_type="application/json",
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert f"no request needs more than {MAX_JSON_DEPTH}" in response.get_json()["error"]["message"]
    assert _head(db_session) == before


@pytest.mark.parametrize("moment", EDGE_TIMES)
def test_times_outside_the_study_years_are_a_400(
    client: FlaskClient, db_session: Session, dosing, moment: str
) -> None:
    session_row, tokens = dosing
    before = _head(db_session)
    vitals = _call(
        client,
        tokens["therapist"],
        "POST",
        f"/sessions/{session_row.id}/vitals",
        json={
            "measured_at": moment,
            "systolic": 120,
            "diastolic": 80,
            "heart_rate": 70,
            "temperature_c": 36.8,
        },
    )
    patch = _call(
        client,
        tokens["therapist"],
        "PATCH",
        f"/sessions/{session_row.id}",
        json={"ended_at": moment},
    )
    for response in (vitals, patch):
        assert response.status_code == 400, response.get_data(as_text=True)
        assert "1900 to 2200" in response.get_json()["error"]["message"]
    consent = _call(
        client,
        tokens["coordinator"],
        "POST",
        f"/participants/{session_row.participant_id}/consent",
        json={"version": "v2", "signed_on": moment[:10]},
    )
    assert consent.status_code == 400
    assert _head(db_session) == before


@pytest.mark.parametrize("field", ["therapists", "status", "overnight_stay", "started_at"])
def test_null_in_a_session_patch_is_a_400_naming_the_field(
    client: FlaskClient, db_session: Session, dosing, field: str
) -> None:
    session_row, tokens = dosing
    before = _head(db_session)
    response = _call(
        client, tokens["therapist"], "PATCH", f"/sessions/{session_row.id}", json={field: None}
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert f"{field}: null is not a value" in response.get_json()["error"]["message"]
    assert _head(db_session) == before


def test_a_form_time_outside_the_study_years_is_a_form_error(
    client: FlaskClient, db_session: Session, dosing, team
) -> None:
    session_row, _tokens = dosing
    assert login(client, team.coordinator.username).status_code == 302
    db_session.expire_all()
    before = _head(db_session)
    page = f"/participants/{session_row.participant_id}"
    response = client.post(
        f"{page}/sessions",
        data={
            "schedule-csrf_token": csrf_token(client, page),
            "schedule-kind": "integration",
            "schedule-scheduled_at": "0001-01-01T00:30",
        },
    )
    assert response.status_code == 400, response.status_code
    assert "Give a time in the years 1900 to 2200." in response.get_data(as_text=True)
    assert _head(db_session) == before
