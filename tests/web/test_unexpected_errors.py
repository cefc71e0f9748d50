"""A statement that fails where no rule expected it (a constraint the code did not foresee)
breaks the request's transaction. The answer is still the error page or the JSON error,
never a bare 500 from the error page failing on the broken session, and nothing is kept."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import csrf_token
from tests.factories import FACTORY_ACTOR
from tracker.auth.models import User
from tracker.auth.services import create_api_token
from tracker.db import get_db


def _clashing_write(username: str):  # type: ignore[no-untyped-def]
    """A view that writes a row breaking a unique constraint, as a view meeting a constraint
    it did not foresee would."""

    def view(**_: object) -> str:
        db = get_db()
        db.add(User(username=username, printed_name="Clash", role="coordinator", password_hash="x"))
        db.flush()
        return "unreachable"

    return view


@pytest.fixture
def replaced_view(app: Flask) -> Iterator[dict[str, object]]:
    saved = dict(app.view_functions)
    yield app.view_functions  # type: ignore[misc]
    app.view_functions.clear()
    app.view_functions.update(saved)


def _users(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(User)) or 0


def test_a_page_that_breaks_its_transaction_gets_the_error_page(
    client: FlaskClient,
    signed_in,
    replaced_view,
    db_session: Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = signed_in("coordinator")
    token = csrf_token(client, "/account/password")
    replaced_view["auth.change_password"] = _clashing_write(user.username)
    before = _users(db_session)

    response = client.post("/account/password", data={"csrf_token": token})

    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "An unexpected error occurred; nothing was changed." in page
    assert user.printed_name in page  # the page around it rendered, signed-in header included
    reference = re.search(r"reference <code>([0-9a-f]{8})</code>", page)
    assert reference and f"unhandled error, reference {reference.group(1)}" in caplog.text
    assert _users(db_session) == before


def test_an_api_call_that_breaks_its_transaction_gets_json(
    client: FlaskClient, user_factory, replaced_view, db_session: Session
) -> None:
    coordinator = user_factory("coordinator")
    raw = create_api_token(db_session, FACTORY_ACTOR, coordinator)
    db_session.commit()
    replaced_view["api.participant_note"] = _clashing_write(coordinator.username)
    before = _users(db_session)

    response = client.post(
        "/api/v1/participants/1/notes",
        json={"body": "x"},
        headers={"Authorization": f"Bearer {raw}"},
    )

    assert response.status_code == 500
    error = response.get_json()["error"]
    assert (error["code"], error["message"]) == (
        "internal_error",
        "An unexpected error occurred; nothing was changed.",
    )
    assert [re.fullmatch(r"reference: ([0-9a-f]{8})", d) is not None for d in error["details"]] == [
        True
    ]
    assert _users(db_session) == before
