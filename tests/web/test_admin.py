from __future__ import annotations

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, login
from tests.factories import PASSWORD, make_site
from tracker.audit.models import AuditEvent
from tracker.auth.models import User


def _last_event(session: Session) -> AuditEvent:
    return session.scalar(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))


def test_admin_creates_a_user(client: FlaskClient, signed_in, db_session: Session) -> None:
    make_site(db_session, "S01")
    db_session.commit()
    signed_in("admin")
    token = csrf_token(client, "/admin/users/new")
    response = client.post(
        "/admin/users/new",
        data={
            "csrf_token": token,
            "username": "new.therapist",
            "printed_name": "New Therapist",
            "role": "therapist",
            "site": "S01",
            "new_password": PASSWORD,
            "confirm_password": PASSWORD,
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    created = db_session.scalar(sa.select(User).where(User.username == "new.therapist"))
    assert created is not None and created.role == "therapist" and created.site.code == "S01"
    assert created.password_hash.startswith("$argon2id$")
    event = _last_event(db_session)
    assert event.action == "user.create" and event.new_values["role"] == "therapist"


def test_create_user_reports_every_problem_and_writes_nothing(
    client: FlaskClient, signed_in, db_session: Session
) -> None:
    signed_in("admin")
    before = _last_event(db_session).seq
    token = csrf_token(client, "/admin/users/new")
    response = client.post(
        "/admin/users/new",
        data={
            "csrf_token": token,
            "username": "Bad Name!",
            "printed_name": "X",
            "role": "therapist",
            "site": "",
            "new_password": "short-pass12",
            "confirm_password": "short-pass12",
        },
    )
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "The username must be" in text
    assert "The therapist role needs a site." in text
    assert _last_event(db_session).seq == before


def test_role_change_is_audited_and_ends_the_users_sessions(
    app: Flask, client: FlaskClient, signed_in, user_factory, db_session: Session
) -> None:
    target = user_factory("coordinator")
    target_client = app.test_client()
    login(target_client, target.username)
    assert target_client.get("/").status_code == 200
    signed_in("admin")
    path = f"/admin/users/{target.id}"
    token = csrf_token(client, path)
    response = client.post(
        f"{path}/role",
        data={
            "csrf_token": token,
            "role-csrf_token": token,
            "role-role": "investigator",
            "role-site": "S01",
            "role-reason": "promoted to sub-investigator",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    event = _last_event(db_session)
    assert event.action == "user.role_change"
    assert event.old_values["role"] == "coordinator" and event.new_values["role"] == "investigator"
    assert event.reason == "promoted to sub-investigator"
    assert target_client.get("/").status_code == 302


def test_disable_ends_sessions_and_blocks_login(
    app: Flask, client: FlaskClient, signed_in, user_factory, db_session: Session
) -> None:
    target = user_factory("therapist")
    target_client = app.test_client()
    login(target_client, target.username)
    signed_in("admin")
    token = csrf_token(client, f"/admin/users/{target.id}")
    response = client.post(
        f"/admin/users/{target.id}/active",
        data={"active-csrf_token": token, "active-reason": "left the site"},
    )
    assert response.status_code == 302
    assert target_client.get("/").status_code == 302
    assert "Invalid username or password." in login(app.test_client(), target.username).get_data(
        as_text=True
    )
    assert _last_event(db_session).action in {"user.disable", "auth.login_failed"}


def test_reset_password(app: Flask, client: FlaskClient, signed_in, user_factory) -> None:
    target = user_factory("investigator")
    signed_in("admin")
    token = csrf_token(client, f"/admin/users/{target.id}")
    new = "reset-by-the-admin-1"
    response = client.post(
        f"/admin/users/{target.id}/password",
        data={
            "reset-csrf_token": token,
            "reset-new_password": new,
            "reset-confirm_password": new,
            "reset-reason": "forgotten",
        },
    )
    assert response.status_code == 302
    assert login(app.test_client(), target.username, new).status_code == 302
    assert login(app.test_client(), target.username, PASSWORD).status_code == 200


def test_admin_creates_a_site(client: FlaskClient, signed_in, db_session: Session) -> None:
    signed_in("admin")
    token = csrf_token(client, "/admin/sites")
    response = client.post(
        "/admin/sites", data={"csrf_token": token, "code": "s09", "name": "Ninth site"}
    )
    assert response.status_code == 302
    assert _last_event(db_session).new_values == {
        "code": "S09",
        "name": "Ninth site",
        "time_zone": "UTC",
    }
    again = client.post("/admin/sites", data={"csrf_token": token, "code": "S09", "name": "Dup"})
    assert again.status_code == 400
    assert "already exists" in again.get_data(as_text=True)


def test_the_admin_chooses_the_protocol_new_enrolments_use(
    client: FlaskClient, db_session: Session, user_factory
) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import csrf_token, login

    admin = user_factory("admin")
    assert login(client, admin.username).status_code == 302
    page = client.get("/admin/protocols")
    assert page.status_code == 200 and "mdma-mdd-v1.toml" in page.get_data(as_text=True)
    done = client.post(
        "/admin/protocols",
        data={"csrf_token": csrf_token(client, "/admin/protocols"), "protocol": "mdma-mdd-v1.toml"},
        follow_redirects=True,
    )
    assert "New enrolments now use mdma-mdd version 1" in done.get_data(as_text=True)
    # The protocol the API serves is the active one, with its instruments and timepoints.
    from tests.factories import FACTORY_ACTOR
    from tracker.auth.services import create_api_token

    token = create_api_token(db_session, FACTORY_ACTOR, user_factory("coordinator"))
    db_session.commit()
    body = client.get("/api/v1/protocol", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert body["code"] == "mdma-mdd"
    served = body["definition"]
    assert [i["code"] for i in served["instruments"]] == ["madrs", "phq9", "gad7", "cssrs"]
    assert "month_12" in [t["code"] for t in served["timepoints"]]
    assert all("text" not in item for item in served["instruments"][0]["items"])  # licensed
    unknown = client.post(
        "/admin/protocols",
        data={"csrf_token": csrf_token(client, "/admin/protocols"), "protocol": "nope.toml"},
    )
    assert unknown.status_code == 400


def test_admin_sets_the_address_safety_notifications_go_to(
    client: FlaskClient, signed_in, user_factory, db_session: Session
) -> None:
    investigator = user_factory("investigator")
    db_session.commit()
    signed_in("admin")
    page = f"/admin/users/{investigator.id}"
    assert "no safety notification reaches this user" in client.get(page).get_data(as_text=True)
    bad = client.post(
        f"{page}/email", data={"csrf_token": csrf_token(client, page), "email-email": "not-mail"}
    )
    assert bad.status_code == 400 and "is not an e-mail address" in bad.get_data(as_text=True)
    good = client.post(
        f"{page}/email",
        data={"csrf_token": csrf_token(client, page), "email-email": "PI@Site.test"},
    )
    assert good.status_code == 302
    db_session.refresh(investigator)
    assert investigator.email == "pi@site.test"
    event = _last_event(db_session)
    assert event.action == "user.email_change" and event.new_values == {"email": "pi@site.test"}
