"""``Idempotency-Key`` on API POSTs (SPEC §9), in one process: a repeat with the same key and
body returns the first answer and stores nothing; the same key with another body is a 422; a
refused request keeps no key. The race of identical requests runs against live servers in
tests/reliability/test_idempotency.py."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.factories import FACTORY_ACTOR, make_participant, make_user
from tracker.auth.services import create_api_token
from tracker.safety.models import AdverseEvent

EVENT = {"term": "Headache", "onset_at": "2026-11-30T10:00:00+00:00", "grade": 1, "serious": False}


@pytest.fixture
def reporter(db_session: Session):  # type: ignore[no-untyped-def]
    coordinator = make_user(db_session, "coordinator", "S01")
    participant = make_participant(db_session, coordinator)
    token = create_api_token(db_session, FACTORY_ACTOR, coordinator)
    db_session.commit()
    return participant.id, token


def _post(client: FlaskClient, token: str, pid: int, body: dict, key: str | None):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"/api/v1/participants/{pid}/adverse-events", json=body, headers=headers)


def _stored(session: Session, pid: int) -> int:
    session.expire_all()
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(AdverseEvent)
            .where(AdverseEvent.participant_id == pid)
        )
        or 0
    )


def test_a_repeat_with_the_same_key_returns_the_first_answer_and_stores_nothing(
    client: FlaskClient, db_session: Session, reporter
) -> None:
    pid, token = reporter
    first = _post(client, token, pid, EVENT, "key-1")
    again = _post(client, token, pid, EVENT, "key-1")
    assert first.status_code == again.status_code == 201, first.get_json()
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _stored(db_session, pid) == 1
    assert _post(client, token, pid, EVENT, "key-2").status_code == 201
    assert _post(client, token, pid, EVENT, None).status_code == 201
    assert _stored(db_session, pid) == 3


def test_the_same_key_with_another_body_is_a_422(
    client: FlaskClient, db_session: Session, reporter
) -> None:
    pid, token = reporter
    assert _post(client, token, pid, EVENT, "key-1").status_code == 201
    other = _post(client, token, pid, {**EVENT, "grade": 2}, "key-1")
    assert other.status_code == 422
    assert "used for another request" in other.get_json()["error"]["message"]
    assert _stored(db_session, pid) == 1


def test_a_refused_request_keeps_no_key_so_a_corrected_one_may_use_it(
    client: FlaskClient, db_session: Session, reporter
) -> None:
    pid, token = reporter
    refused = _post(client, token, pid, {**EVENT, "grade": 9}, "key-1")
    assert refused.status_code == 400
    assert _post(client, token, pid, {**EVENT, "grade": 9}, "key-1").status_code == 400
    assert _stored(db_session, pid) == 0


@pytest.mark.parametrize("key", ["", " ", "k" * 256, "clé"])
def test_an_unusable_key_is_a_400(
    client: FlaskClient, db_session: Session, reporter, key: str
) -> None:
    pid, token = reporter
    response = _post(client, token, pid, EVENT, key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.get_json()["error"]["message"]
    assert _stored(db_session, pid) == 0


def test_keys_belong_to_their_user(client: FlaskClient, db_session: Session, reporter) -> None:
    pid, token = reporter
    other = make_user(db_session, "coordinator", "S01")
    other_token = create_api_token(db_session, FACTORY_ACTOR, other)
    db_session.commit()
    assert _post(client, token, pid, EVENT, "shared").status_code == 201
    second = _post(client, other_token, pid, EVENT, "shared")
    assert second.status_code == 201 and "Idempotent-Replayed" not in second.headers
    assert _stored(db_session, pid) == 2


def test_every_post_of_the_api_documents_the_header(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    posts = [
        operation
        for operations in document["paths"].values()
        for method, operation in operations.items()
        if method == "post" and operation.get("security") != []
    ]
    assert len(posts) >= 10
    for operation in posts:
        names = {p["name"] for p in operation.get("parameters", [])}
        assert "Idempotency-Key" in names, operation["operationId"]
