"""Signatures only their owner can make (SPEC §6, §9; 21 CFR 11.100, 11.300): the password
asked again at signing is no oracle, a password an admin chose must be replaced before its
user signs or uses the API, tokens end with a password change and expire, and a printed
name names one person."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, login, make_test_app
from tests.factories import FACTORY_ACTOR, PASSWORD, make_user
from tests.support.databases import scratch_database
from tracker import clock, migrate
from tracker.audit.models import AuditEvent
from tracker.auth.models import User
from tracker.auth.services import actor_for, create_api_token, create_user, set_password
from tracker.db import get_database
from tracker.errors import Conflict


def _screened(client: FlaskClient, token: str) -> int:
    """A participant whose checklist is complete and eligible, ready to sign."""
    from tests.web.test_participants_api import ALL_NO

    headers = {"Authorization": f"Bearer {token}"}
    created = client.post(
        "/api/v1/participants",
        json={"site": "S01", "sex": "male", "year_of_birth": 1980, "therapists": []},
        headers=headers,
    )
    assert created.status_code == 201, created.get_json()
    pid = created.get_json()["id"]
    answered = client.put(
        f"/api/v1/participants/{pid}/checklist",
        json={"answers": ALL_NO},
        headers=headers,
    )
    assert answered.status_code == 200, answered.get_json()
    return int(pid)


@pytest.fixture
def signer(db_session: Session, client: FlaskClient):  # type: ignore[no-untyped-def]
    coordinator = make_user(db_session, "coordinator", "S01")
    investigator = make_user(db_session, "investigator", "S01")
    tokens = {
        "coordinator": create_api_token(db_session, FACTORY_ACTOR, coordinator),
        "investigator": create_api_token(db_session, FACTORY_ACTOR, investigator),
    }
    db_session.commit()
    pid = _screened(client, tokens["coordinator"])
    return investigator, tokens["investigator"], pid


def _sign(client: FlaskClient, token: str, pid: int, password: str):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/participants/{pid}/checklist/signature",
        json={"password": password, "meaning": "I confirm the eligibility assessment"},
        headers={"Authorization": f"Bearer {token}"},
    )


def _events(session: Session, action: str, user_id: int) -> int:
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.entity_id == str(user_id))
        )
        or 0
    )


def test_wrong_signing_passwords_lock_the_account_each_audited_with_one_answer(
    client: FlaskClient, db_session: Session, signer
) -> None:
    investigator, token, pid = signer
    answers = []
    for attempt in range(30):
        response = _sign(client, token, pid, f"wrong-{attempt}")
        answers.append((response.status_code, response.get_json()["error"]["message"]))
    # Five wrong passwords lock the account and end its sessions; the token is a session
    # of its own, so what follows is the locked account's answer, not a password's.
    wrong = answers[:5]
    assert len(set(wrong)) == 1 and wrong[0][0] == 422, wrong
    assert "password is not correct" in wrong[0][1]
    assert {status for status, _ in answers[5:]} == {422}
    assert all("locked" in message for _, message in answers[5:])
    db_session.expire_all()
    assert _events(db_session, "auth.password_check_failed", investigator.id) == 30
    assert _events(db_session, "auth.account_locked", investigator.id) == 1
    user = db_session.get(User, investigator.id)
    assert user is not None and user.locked_until is not None
    # The right password does not get through a locked account, nor does it sign.
    assert _sign(client, token, pid, PASSWORD).status_code == 422
    assert login(client, investigator.username).status_code == 200  # refused, locked
    assert client.get(f"/api/v1/participants/{pid}", headers=_bearer(token)).get_json()[
        "eligibility"
    ]["signed"] in (None, False)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_right_password_after_a_few_wrong_ones_signs_and_resets_the_count(
    client: FlaskClient, db_session: Session, signer
) -> None:
    investigator, token, pid = signer
    for attempt in range(3):
        assert _sign(client, token, pid, f"wrong-{attempt}").status_code == 422
    assert _sign(client, token, pid, PASSWORD).status_code == 201
    db_session.expire_all()
    assert db_session.get(User, investigator.id).failed_login_count == 0  # type: ignore[union-attr]


def test_signing_is_rate_limited_per_user(backend: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # An app of its own with the limiter on (the shared one runs with it off).
    with scratch_database(backend, tmp_path) as url:
        migrate.upgrade(url)
        limited = make_test_app(
            url,
            str(tmp_path),
            RATELIMIT_ENABLED=True,
            TRACKER_PASSWORD_CHECK_RATE_LIMIT="3 per minute",
            TRACKER_LOGIN_MAX_FAILURES=50,
        )
        try:
            with limited.app_context(), get_database(limited).session_scope() as session:
                coordinator = make_user(session, "coordinator", "S01")
                investigators = [make_user(session, "investigator", "S01") for _ in range(2)]
                tokens = [
                    create_api_token(session, FACTORY_ACTOR, user)
                    for user in (coordinator, *investigators)
                ]
            client = limited.test_client()
            pid = _screened(client, tokens[0])
            first = [_sign(client, tokens[1], pid, f"wrong-{n}").status_code for n in range(4)]
            other = _sign(client, tokens[2], pid, "wrong").status_code
            # The password page draws on the same budget as signing (one per user).
            browser = limited.test_client()
            assert login(browser, investigators[1].username).status_code == 302
            on_the_page = browser.post(
                "/account/password",
                data={
                    "csrf_token": csrf_token(browser, "/account/password"),
                    "current_password": "wrong",
                    "new_password": "a-brand-new-password",
                    "confirm_password": "a-brand-new-password",
                },
            ).status_code
            after_the_page = [
                _sign(client, tokens[2], pid, f"again-{n}").status_code for n in (1, 2)
            ]
        finally:
            get_database(limited).engine.dispose()
    assert first == [422, 422, 422, 429]
    assert other == 422  # the limit follows the user, not the address
    # One sign, the page, one sign: the third check of this user; the fourth is refused.
    assert (on_the_page, after_the_page) == (422, [422, 429])


def test_an_admin_set_password_cannot_sign_or_use_the_api_until_its_owner_changes_it(
    app: Flask, client: FlaskClient, db_session: Session, signer
) -> None:
    investigator, token, pid = signer
    admin = make_user(db_session, "admin")
    chosen = "the-admins-choice-1"
    set_password(db_session, actor_for(admin), investigator, chosen, reason="forgotten")
    db_session.commit()
    assert db_session.get(User, investigator.id).password_temporary  # type: ignore[union-attr]
    # The reset ended the investigator's tokens.
    assert _sign(client, token, pid, chosen).status_code == 401
    with pytest.raises(Exception, match="temporary password"):
        create_api_token(db_session, FACTORY_ACTOR, investigator)
    db_session.rollback()

    # The admin signs in as the investigator: every page leads to the password page.
    response = login(client, investigator.username, chosen)
    assert response.status_code == 302 and response.location.endswith("/account/password")
    assert client.get(f"/participants/{pid}").location.endswith("/account/password")
    page = client.get(f"/participants/{pid}/review")
    assert page.status_code == 302
    refused = client.post(
        f"/participants/{pid}/review/signature",
        data={
            "signature-csrf_token": csrf_token(client, "/account/password"),
            "signature-password": chosen,
            "signature-meaning": "I confirm",
        },
    )
    assert refused.status_code == 302 and refused.location.endswith("/account/password")
    api = client.get("/api/v1/protocol")
    assert api.status_code == 403
    assert api.get_json()["error"]["details"] == ["password_change_required"]
    notice = client.get("/account/password").get_data(as_text=True)
    assert "set by an administrator" in notice

    # Its owner chooses their own; then they can sign.
    changed = client.post(
        "/account/password",
        data={
            "csrf_token": csrf_token(client, "/account/password"),
            "current_password": chosen,
            "new_password": "the-owners-own-1",
            "confirm_password": "the-owners-own-1",
        },
    )
    assert changed.status_code == 302
    db_session.expire_all()
    assert not db_session.get(User, investigator.id).password_temporary  # type: ignore[union-attr]
    fresh = create_api_token(db_session, FACTORY_ACTOR, investigator)
    db_session.commit()
    assert _sign(client, fresh, pid, "the-owners-own-1").status_code == 201


def test_the_password_page_counts_and_audits_wrong_current_passwords(
    client: FlaskClient, db_session: Session, signed_in
) -> None:
    user = signed_in("coordinator")
    statuses = []
    for attempt in range(5):
        statuses.append(
            client.post(
                "/account/password",
                data={
                    "csrf_token": csrf_token(client, "/account/password"),
                    "current_password": f"wrong-{attempt}",
                    "new_password": "a-brand-new-password",
                    "confirm_password": "a-brand-new-password",
                },
            ).status_code
        )
    assert statuses[:4] == [422] * 4
    db_session.expire_all()
    assert _events(db_session, "auth.password_check_failed", user.id) == 5
    assert db_session.get(User, user.id).locked_until is not None  # type: ignore[union-attr]
    # The lock ended this browser session too.
    assert client.get("/account/password").status_code == 302


def test_own_password_change_ends_the_users_api_tokens(
    client: FlaskClient, db_session: Session
) -> None:
    user = make_user(db_session, "auditor")
    token = create_api_token(db_session, FACTORY_ACTOR, user)
    db_session.commit()
    assert client.get("/api/v1/protocol", headers=_bearer(token)).status_code == 200
    set_password(db_session, actor_for(user), user, "my-own-new-password", reason="own")
    db_session.commit()
    assert client.get("/api/v1/protocol", headers=_bearer(token)).status_code == 401


def test_tokens_expire(client: FlaskClient, db_session: Session) -> None:
    user = make_user(db_session, "auditor")
    short = create_api_token(db_session, FACTORY_ACTOR, user, timedelta(hours=1))
    default = create_api_token(db_session, FACTORY_ACTOR, user)
    db_session.commit()
    assert client.get("/api/v1/protocol", headers=_bearer(short)).status_code == 200
    clock.travel(timedelta(hours=1, seconds=1))
    assert client.get("/api/v1/protocol", headers=_bearer(short)).status_code == 401
    assert client.get("/api/v1/protocol", headers=_bearer(default)).status_code == 200
    clock.travel(timedelta(days=90))
    assert client.get("/api/v1/protocol", headers=_bearer(default)).status_code == 401


def test_printed_names_are_unique_whatever_their_case_and_spacing(db_session: Session) -> None:
    first = make_user(db_session, "investigator")
    with pytest.raises(Conflict, match="already used by"):
        create_user(
            db_session,
            FACTORY_ACTOR,
            username="second-signer",
            role="investigator",
            password=PASSWORD,
            printed_name="  " + first.printed_name.upper().replace(" ", "   ") + " ",
            site=first.site,
        )


def test_the_admin_form_refuses_a_taken_printed_name(
    client: FlaskClient, signed_in, db_session: Session
) -> None:
    existing = make_user(db_session, "therapist")
    db_session.commit()
    signed_in("admin")
    token = csrf_token(client, "/admin/users/new")
    response = client.post(
        "/admin/users/new",
        data={
            "csrf_token": token,
            "username": "new-therapist",
            "printed_name": existing.printed_name,
            "role": "therapist",
            "site": "S01",
            "new_password": "a-long-enough-password",
            "confirm_password": "a-long-enough-password",
        },
    )
    assert response.status_code in (400, 409)
    assert "already used by" in response.get_data(as_text=True)
