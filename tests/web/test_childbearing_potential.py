"""Childbearing potential (SPEC §4), through the API, the pages and the command line: recorded
at enrolment or later, audited, and until it is recorded as no a participant who is not male
needs a negative pregnancy test before dosing. Before, only the demo loader switched the test
on: a woman enrolled through a page or the API never needed one."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, login
from tests.factories import FACTORY_ACTOR, make_user
from tracker.audit.models import AuditEvent
from tracker.auth.services import create_api_token
from tracker.participants.models import Participant


@pytest.fixture
def coordinator(db_session: Session):  # type: ignore[no-untyped-def]
    user = make_user(db_session, "coordinator", "S01")
    token = create_api_token(db_session, FACTORY_ACTOR, user)
    db_session.commit()
    return user, {"Authorization": f"Bearer {token}"}


def _enrol(client: FlaskClient, headers: dict[str, str], **extra: object) -> dict:  # type: ignore[type-arg]
    body = {"site": "S01", "sex": "female", "year_of_birth": 1985, **extra}
    response = client.post("/api/v1/participants", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def _events(session: Session, study_id: str) -> list[AuditEvent]:
    session.expire_all()
    return list(
        session.scalars(
            sa.select(AuditEvent).where(
                AuditEvent.action == "participant.childbearing_potential",
                AuditEvent.entity_id == study_id,
            )
        )
    )


def test_a_woman_enrolled_through_the_api_needs_pregnancy_tests_until_recorded_no(
    client: FlaskClient, db_session: Session, coordinator
) -> None:
    _user, headers = coordinator
    woman = _enrol(client, headers)
    assert woman["childbearing_potential"] is None and woman["pregnancy_tests_required"] is True
    man = _enrol(client, headers, sex="male")
    assert man["pregnancy_tests_required"] is False
    recorded = _enrol(client, headers, childbearing_potential=False)
    assert recorded["pregnancy_tests_required"] is False

    path = f"/api/v1/participants/{woman['id']}/childbearing-potential"
    answer = client.put(path, json={"childbearing_potential": False}, headers=headers)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["pregnancy_tests_required"] is False
    change = client.put(path, json={"childbearing_potential": True}, headers=headers)
    assert (
        change.status_code == 400 and "reason is required" in change.get_json()["error"]["message"]
    )
    change = client.put(
        path, json={"childbearing_potential": True, "reason": "entered in error"}, headers=headers
    )
    assert change.status_code == 200 and change.get_json()["childbearing_potential"] is True
    events = _events(db_session, woman["study_id"])
    assert [(e.old_values, e.new_values, e.reason) for e in events] == [
        ({"childbearing_potential": None}, {"childbearing_potential": False}, None),
        ({"childbearing_potential": False}, {"childbearing_potential": True}, "entered in error"),
    ]

    refused = client.put(
        f"/api/v1/participants/{man['id']}/childbearing-potential",
        json={"childbearing_potential": True},
        headers=headers,
    )
    assert refused.status_code == 400
    assert "only for participants who are not male" in refused.get_json()["error"]["message"]


def test_the_pages_record_it_at_enrolment_and_later(
    client: FlaskClient, db_session: Session, coordinator
) -> None:
    user, _headers = coordinator
    assert login(client, user.username).status_code == 302
    enrolled = client.post(
        "/participants/new",
        data={
            "csrf_token": csrf_token(client, "/participants/new"),
            "site": "S01",
            "sex": "intersex",
            "year_of_birth": "1990",
            "childbearing_potential": "yes",
        },
    )
    assert enrolled.status_code == 302, enrolled.get_data(as_text=True)[-2000:]
    participant = db_session.scalars(sa.select(Participant).order_by(Participant.id.desc())).first()
    assert participant is not None and participant.childbearing_potential is True
    page_path = f"/participants/{participant.id}"
    page = client.get(page_path).get_data(as_text=True)
    assert "pregnancy test before each dosing" in page
    changed = client.post(
        f"{page_path}/childbearing-potential",
        data={
            "childbearing-csrf_token": csrf_token(client, page_path),
            "childbearing-childbearing_potential": "no",
            "childbearing-reason": "post-menopausal, confirmed by the investigator",
        },
    )
    assert changed.status_code == 302
    db_session.expire_all()
    assert db_session.get(Participant, participant.id).childbearing_potential is False  # type: ignore[union-attr]
    assert "pregnancy test before each dosing" not in client.get(page_path).get_data(as_text=True)


def test_the_command_line_records_it_for_a_site_member(
    app: Flask, client: FlaskClient, db_session: Session, coordinator
) -> None:
    user, headers = coordinator
    woman = _enrol(client, headers)
    runner = app.test_cli_runner()
    done = runner.invoke(
        args=[
            "participants",
            "childbearing-potential",
            woman["study_id"],
            "no",
            "--by",
            user.username,
        ]
    )
    assert done.exit_code == 0, done.output
    events = _events(db_session, woman["study_id"])
    assert len(events) == 1 and events[0].actor.startswith(f"{user.username} (cli:")
    again = runner.invoke(
        args=[
            "participants",
            "childbearing-potential",
            woman["study_id"],
            "yes",
            "--by",
            user.username,
        ]
    )
    assert again.exit_code == 1 and "reason is required" in again.output
