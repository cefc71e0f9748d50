"""Deny by default: every endpoint names its permission; roles get what the table says."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.factories import make_user
from tracker.auth.models import User
from tracker.auth.services import actor_for
from tracker.participants.services import enrol_participant
from tracker.safety.services import record_adverse_event
from tracker.security import PUBLIC, ROLE_PERMISSIONS, Permission, permission_of
from tracker.sessions.models import TherapySession

# Flask's own static files are the one endpoint the app does not define.
FRAMEWORK_ENDPOINTS = {"static"}


def test_every_endpoint_declares_a_permission(app: Flask) -> None:
    missing = [
        endpoint
        for endpoint, view in app.view_functions.items()
        if endpoint not in FRAMEWORK_ENDPOINTS and permission_of(view) is None
    ]
    assert missing == []


# That this check catches an undeclared endpoint is tested by registering one:
# tests/web/test_route_permissions.py::test_an_endpoint_without_a_permission_is_caught.


def test_public_endpoints_are_the_expected_few(app: Flask) -> None:
    public = sorted(e for e, v in app.view_functions.items() if permission_of(v) == PUBLIC)
    assert public == ["api.health", "api.openapi", "auth.login"]


def test_every_permission_has_a_role() -> None:
    assert set(ROLE_PERMISSIONS) == set(Permission)
    assert all(ROLE_PERMISSIONS[p] for p in Permission)


ROLES = ["coordinator", "therapist", "investigator", "auditor", "admin"]
CLINICAL = {"coordinator", "therapist", "investigator", "auditor"}
SITE_STAFF = {"coordinator", "investigator"}
# (method, path, the roles allowed); everyone else gets 403.
MATRIX = [
    ("GET", "/", set(ROLES)),
    ("GET", "/account/password", set(ROLES)),
    ("GET", "/admin/users", {"admin"}),
    ("GET", "/admin/users/new", {"admin"}),
    ("GET", "/admin/sites", {"admin"}),
    ("GET", "/audit/", {"auditor"}),
    ("GET", "/audit/export.csv", {"auditor"}),
    ("GET", "/api/v1/audit", {"auditor"}),
    ("GET", "/api/v1/audit/verify", {"auditor"}),
    ("GET", "/participants/", CLINICAL),
    ("GET", "/participants/new", SITE_STAFF),
    ("GET", "/participants/{pid}", CLINICAL),
    ("GET", "/participants/{pid}/checklist", SITE_STAFF),
    ("GET", "/participants/{pid}/review", {"investigator"}),
    ("GET", "/participants/{pid}/consent", SITE_STAFF),
    ("GET", "/sessions/{sid}", CLINICAL),
    ("GET", "/adverse-events/{aeid}", CLINICAL),
]


def _participant_visible_to(session: Session, user: User) -> dict[str, int]:
    """A participant at the user's site (S01 for the study-wide roles), assigned to them when
    they are a therapist, so the pages can answer 200 where the role permits; with a session
    and an adverse event of theirs."""
    coordinator = make_user(session, "coordinator", site="S01")
    participant = enrol_participant(
        session,
        actor_for(coordinator),
        site=coordinator.site,
        sex="unknown",
        year_of_birth=1990,
        therapists=[user.username] if user.role == "therapist" else [],
    )
    # A session row made directly: in screening no session can be scheduled through the service.
    row = TherapySession(
        participant_id=participant.id,
        kind="preparation",
        cycle=0,
        scheduled_at=participant.enrolled_at,
        status="scheduled",
    )
    session.add(row)
    event = record_adverse_event(
        session,
        actor_for(coordinator),
        participant,
        term="Headache",
        onset_at=participant.enrolled_at,
        grade=1,
        serious=False,
    )
    session.commit()
    return {"pid": participant.id, "sid": row.id, "aeid": event.id}


@pytest.mark.parametrize("role", ROLES)
def test_role_route_matrix(client: FlaskClient, signed_in, db_session: Session, role: str) -> None:
    user = signed_in(role)
    ids = _participant_visible_to(db_session, user)
    for method, path, allowed in MATRIX:
        response = client.open(path.format(**ids), method=method)
        expected = 200 if role in allowed else 403
        assert response.status_code == expected, (role, method, path, response.status_code)


@pytest.mark.parametrize("method,path,_", MATRIX)
def test_signed_out_is_sent_to_login_or_gets_401(
    client: FlaskClient, method: str, path: str, _
) -> None:  # type: ignore[no-untyped-def]
    response = client.open(path.format(pid=1, sid=1, aeid=1), method=method)
    if path.startswith("/api/"):
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
    else:
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")
