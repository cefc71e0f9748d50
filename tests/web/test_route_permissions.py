"""Every route and method of the app, as every role, against the permission table: a role
without the route's permission gets 403, whatever it sends; a role with it gets past the
check (whatever the route then says of the empty input: never 403, never a 5xx). The matrix
is generated from the URL map, so a new route is covered the day it is added."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import login, make_test_app
from tests.factories import FACTORY_ACTOR, make_user
from tracker.auth.services import create_api_token
from tracker.dosing.models import VitalSignAlert
from tracker.histories import protocol_history, run_histories
from tracker.notes.models import Note
from tracker.participants.models import Participant
from tracker.safety.models import AdverseEvent
from tracker.safety.services import record_adverse_event
from tracker.security import PUBLIC, permission_of, role_has
from tracker.sessions.models import TherapySession

ROLES = (
    "coordinator",
    "therapist",
    "investigator",
    "auditor",
    "admin",
    "rater",
    "pharmacist",
    "statistician",
)
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Signing out ends the session the rest of the walk uses: it goes last.
LAST = {"auth.logout"}
PATH_PARAMETER = re.compile(r"<(?:[^:>]+:)?(\w+)>")


def routes(app: Flask) -> list[tuple[str, str, str]]:
    """(method, rule, endpoint) for every route the app defines."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule, rule.endpoint))
    return sorted(found, key=lambda r: (r[2] in LAST, r[1], r[0]))


def undeclared_endpoints(app: Flask) -> list[str]:
    return sorted(
        endpoint
        for endpoint, view in app.view_functions.items()
        if endpoint != "static" and permission_of(view) is None
    )


@pytest.fixture
def study(db_session: Session, team):  # type: ignore[no-untyped-def]
    """Records of every kind a path can name, at S01, with the team assigned."""
    run_histories([protocol_history(db_session, team, random.Random(11), "integration")])
    dosing = db_session.scalars(
        sa.select(TherapySession).where(TherapySession.kind == "dosing").order_by(TherapySession.id)
    ).first()
    assert dosing is not None
    from tracker.auth.services import actor_for

    participant = db_session.get(Participant, dosing.participant_id)
    assert participant is not None
    event = db_session.scalars(sa.select(AdverseEvent)).first() or record_adverse_event(
        db_session,
        actor_for(team.coordinator),
        participant,
        term="Headache",
        onset_at=participant.enrolled_at,
        grade=1,
        serious=False,
    )
    note = db_session.scalars(sa.select(Note)).first()
    alert = db_session.scalars(sa.select(VitalSignAlert)).first()
    users = {
        "coordinator": team.coordinator,
        "investigator": team.investigator,
        "therapist": dosing.therapists[0],
        "auditor": make_user(db_session, "auditor"),
        "admin": make_user(db_session, "admin"),
        "rater": make_user(db_session, "rater", "S01"),
        "pharmacist": make_user(db_session, "pharmacist", "S01"),
        "statistician": make_user(db_session, "statistician", None),
    }
    tokens = {role: create_api_token(db_session, FACTORY_ACTOR, u) for role, u in users.items()}
    from tests.factories import keep_ledger

    _, receipt = keep_ledger(db_session, team)
    db_session.commit()
    values = {
        "lot_id": receipt.lot_id,
        "entry_id": receipt.id,
        "kind": "count",
        "participant_id": participant.id,
        "study_id": participant.study_id,
        "session_id": dosing.id,
        "event_id": event.id,
        "note_id": note.id if note else 1,
        "alert_id": alert.id if alert else 1,
        "user_id": team.therapists[-1].id,
        "code": "bipolar_ii",
        "name": "place_on_hold",
        "fmt": "csv",
        "timepoint": "baseline",
        "instrument": "madrs",
        "job_id": 1,  # none yet: a 404 past the permission check
    }
    return users, tokens, values


@contextmanager
def without_csrf(app: Flask) -> Iterator[None]:
    """The walk sends empty forms: CSRF (tested on its own) would answer before the check."""
    app.config["WTF_CSRF_ENABLED"] = False
    try:
        yield
    finally:
        app.config["WTF_CSRF_ENABLED"] = True


@pytest.mark.parametrize("role", ROLES)
def test_every_route_and_method_as_every_role(
    app: Flask, client: FlaskClient, study, role: str
) -> None:
    users, tokens, values = study
    assert login(client, users[role].username).status_code == 302
    checked = 0
    wrong = []
    with without_csrf(app):
        for method, rule, endpoint in routes(app):
            permission = permission_of(app.view_functions[endpoint])
            path = PATH_PARAMETER.sub(lambda m: str(values[m.group(1)]), rule)
            api = rule.startswith("/api/")
            headers = {"Authorization": f"Bearer {tokens[role]}"} if api else {}
            kwargs = {"json": {}} if api and method in WRITE_METHODS else {}
            response = client.open(path, method=method, headers=headers, **kwargs)
            allowed = permission == PUBLIC or role_has(role, permission)  # type: ignore[arg-type]
            status = response.status_code
            if status >= 500 or (status == 403) == allowed:
                wrong.append((method, rule, permission, status))
            checked += 1
    assert checked == len(routes(app)) >= 88
    assert wrong == [], wrong


def test_an_endpoint_without_a_permission_is_caught(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = make_test_app(f"sqlite:///{tmp_path / 'unused.db'}", str(tmp_path))
    assert undeclared_endpoints(app) == []

    @app.route("/forgotten")
    def forgotten() -> str:
        return "no permission declared"

    assert undeclared_endpoints(app) == ["forgotten"]
