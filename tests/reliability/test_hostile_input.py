"""Hostile input to the API and the pages (SPEC §7, §9): oversized bodies, broken JSON, wrong
types, unknown fields, NUL characters, path tricks and huge ids each get a clear 4xx and change
nothing; script typed into every text field is stored as typed and rendered escaped; CSV cells
that would be formulas are neutralised. Runs on SQLite and PostgreSQL (the shared fixtures)."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import login
from tests.factories import FACTORY_ACTOR, make_user
from tracker import clock
from tracker.auth.services import create_api_token
from tracker.db import Base
from tracker.histories import Team, protocol_history, run_histories
from tracker.participants.models import Participant
from tracker.participants.services import set_therapists
from tracker.sessions.models import TherapySession


@dataclass
class Study:
    participant: Participant
    dosing_session: TherapySession
    team: Team
    tokens: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def study(client: FlaskClient, db_session: Session, team: Team) -> Iterator[Study]:
    """A participant with a dosing session under way, both therapists assigned, tokens."""
    real_now = clock.now()
    clock.start_simulation(real_now - timedelta(days=60))
    try:
        run_histories(
            [protocol_history(db_session, team, random.Random(5), "dosing_in_progress")],
            until=real_now - timedelta(minutes=10),
        )
    finally:
        clock.reset()
    participant = db_session.scalars(sa.select(Participant).order_by(Participant.id.desc())).first()
    assert participant is not None and participant.state == "dosing"
    set_therapists(
        db_session, team.as_coordinator, participant, [t.username for t in team.therapists]
    )
    dosing = db_session.scalars(
        sa.select(TherapySession).where(
            TherapySession.participant_id == participant.id, TherapySession.ended_at.is_(None)
        )
    ).one()
    auditor = make_user(db_session, "auditor")
    tokens = {
        "coordinator": create_api_token(db_session, FACTORY_ACTOR, team.coordinator),
        "investigator": create_api_token(db_session, FACTORY_ACTOR, team.investigator),
        "therapist": create_api_token(db_session, FACTORY_ACTOR, team.therapists[0]),
        "auditor": create_api_token(db_session, FACTORY_ACTOR, auditor),
    }
    db_session.commit()
    yield Study(participant, dosing, team, tokens)


def row_counts(session: Session) -> dict[str, int]:
    session.expire_all()
    return {
        table.name: int(session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
        for table in Base.metadata.sorted_tables
    }


def assert_clear_refusal(response, status: int, api: bool = True) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    if api:
        body = response.get_json()
        assert body is not None and set(body) == {"error"}, response.get_data(as_text=True)
        assert body["error"]["code"] and body["error"]["message"]


def test_hostile_bodies_get_a_clear_4xx_and_change_nothing(
    client: FlaskClient, db_session: Session, study: Study
) -> None:
    pid = study.participant.id
    notes = f"/api/v1/participants/{pid}/notes"
    transitions = f"/api/v1/participants/{pid}/transitions"
    vitals = f"/api/v1/sessions/{study.dosing_session.id}/vitals"
    json_type = {"Content-Type": "application/json"}
    now = datetime.now(UTC).isoformat()
    cases: list[tuple[str, str, dict, int]] = [
        # label, path, request kwargs, expected status
        ("oversized body", notes, {"data": b'{"text": "' + b"x" * (2 << 20) + b'"}'}, 413),
        ("broken JSON", notes, {"data": b'{"text": "unterminated'}, 400),
        ("JSON null", notes, {"data": b"null"}, 400),
        ("JSON list", notes, {"data": b'["text"]'}, 400),
        ("JSON string", notes, {"data": b'"text"'}, 400),
        ("not JSON", notes, {"data": b"text=hello", "content_type": "text/plain"}, 400),
        ("number for text", notes, {"json": {"text": 5}}, 400),
        ("list for text", notes, {"json": {"text": ["a"]}}, 400),
        ("empty text", notes, {"json": {"text": ""}}, 400),
        ("too long text", notes, {"json": {"text": "x" * 5001}}, 400),
        ("NUL in text", notes, {"json": {"text": "before\x00after"}}, 400),
        ("NUL in a key", notes, {"json": {"te\x00xt": "x"}}, 400),
        ("unknown field", notes, {"json": {"text": "x", "author": "admin"}}, 400),
        (
            "string version",
            transitions,
            {"json": {"transition": "place_on_hold", "expected_version": "one", "reason": "r"}},
            400,
        ),
        (
            "huge version",
            transitions,
            {"json": {"transition": "place_on_hold", "expected_version": 10**30, "reason": "r"}},
            400,
        ),
        (
            "unknown transition field",
            transitions,
            {
                "json": {
                    "transition": "place_on_hold",
                    "expected_version": study.participant.version,
                    "reason": "r",
                    "version": 99,
                }
            },
            400,
        ),
        (
            "string vital sign",
            vitals,
            {
                "json": {
                    "measured_at": now,
                    "systolic": "high",
                    "diastolic": 80,
                    "heart_rate": 70,
                    "temperature_c": 37,
                }
            },
            400,
        ),
        (
            "naive time",
            vitals,
            {
                "json": {
                    "measured_at": "2026-01-01T10:00:00",
                    "systolic": 120,
                    "diastolic": 80,
                    "heart_rate": 70,
                    "temperature_c": 37,
                }
            },
            400,
        ),
        (
            "NaN temperature",
            vitals,
            {
                "data": (
                    f'{{"measured_at": "{now}", "systolic": 120, "diastolic": 80, '
                    '"heart_rate": 70, "temperature_c": NaN}'
                ).encode()
            },
            400,
        ),
    ]
    before = row_counts(db_session)
    for label, path, kwargs, status in cases:
        if "data" in kwargs and "content_type" not in kwargs:
            kwargs = {**kwargs, "headers": json_type}
        response = client.post(
            path, headers={**study.headers("therapist"), **kwargs.pop("headers", {})}, **kwargs
        )
        try:
            assert_clear_refusal(response, status)
        except AssertionError as error:
            raise AssertionError(f"{label}: {error}") from None
    assert row_counts(db_session) == before


PATH_TRICKS = [
    "/api/v1/participants/..%2F1",
    "/api/v1/participants/1%2F..%2F2",
    "/api/v1/participants/%2e%2e/1",
    "/api/v1/participants/-1",
    "/api/v1/participants/0x1",
    "/api/v1/participants/1.0",
    "/api/v1/participants/%00",
    "/api/v1/participants/1%00",
    "/api/v1/participants/2147483648",
    "/api/v1/participants/99999999999999999999999999",
    "/api/v1/sessions/9223372036854775808",
    "/api/v1/notes/99999999999999999999/amendments",
    "/api/v1/participants/0",
]


@pytest.mark.parametrize("path", PATH_TRICKS)
def test_path_tricks_and_huge_ids_are_404(
    client: FlaskClient, db_session: Session, study: Study, path: str
) -> None:
    before = row_counts(db_session)
    for method in ("GET", "POST"):
        response = client.open(
            path, method=method, headers=study.headers("investigator"), json={"text": "x"}
        )
        assert response.status_code in (404, 405), (method, response.status_code)
        assert_clear_refusal(response, response.status_code)
    assert row_counts(db_session) == before


@pytest.mark.parametrize(
    "path", ["/participants/99999999999999999999", "/participants/..%2F1", "/sessions/2147483648"]
)
def test_path_tricks_on_pages_are_404(client: FlaskClient, study: Study, path: str) -> None:
    assert login(client, study.team.investigator.username).status_code == 302
    response = client.get(path)
    assert response.status_code == 404
    assert "text/html" in response.content_type


def test_huge_numbers_in_query_and_body_are_refused(
    client: FlaskClient, db_session: Session, study: Study
) -> None:
    before = row_counts(db_session)
    for path in (
        "/api/v1/audit?after=99999999999999999999",
        "/api/v1/participants?page=99999999999999999999",
        "/api/v1/participants?per_page=100000",
        "/api/v1/participants?state=%00",
    ):
        role = "auditor" if "audit" in path else "investigator"
        assert_clear_refusal(client.get(path, headers=study.headers(role)), 400)
    response = client.post(
        f"/api/v1/participants/{study.participant.id}/side-effects",
        headers=study.headers("therapist"),
        json={
            "term": "Headache",
            "severity": "mild",
            "onset_at": datetime.now(UTC).isoformat(),
            "session_id": 10**20,
        },
    )
    assert_clear_refusal(response, 400)
    assert row_counts(db_session) == before


SCRIPT = "<script>alert({n})</script><img src=x onerror=alert({n})>"


def script(n: int) -> str:
    return SCRIPT.format(n=n)


def escaped(n: int) -> str:
    return f"&lt;script&gt;alert({n})&lt;/script&gt;&lt;img src=x onerror=alert({n})&gt;"


def test_script_in_every_text_field_is_stored_as_typed_and_rendered_escaped(
    client: FlaskClient, db_session: Session, study: Study
) -> None:
    pid = study.participant.id
    sid = study.dosing_session.id
    now = datetime.now(UTC)
    therapist = study.headers("therapist")
    investigator = study.headers("investigator")

    def post(path: str, headers: dict[str, str], body: dict, method: str = "POST") -> dict:
        response = client.open(path, method=method, headers=headers, json=body)
        assert response.status_code in (200, 201), (path, response.get_data(as_text=True))
        return response.get_json()

    typed: dict[str, tuple[str, str]] = {}  # field -> (what was sent, what the API answered)
    note = post(f"/api/v1/participants/{pid}/notes", therapist, {"text": script(1)})
    typed["participant note"] = (script(1), note["text"])
    session_note = post(f"/api/v1/sessions/{sid}/notes", therapist, {"text": script(2)})
    typed["session note"] = (script(2), session_note["text"])
    amended = post(
        f"/api/v1/notes/{note['id']}/amendments",
        therapist,
        {"text": script(3), "reason": script(4)},
    )
    typed["amended note"] = (script(3), amended["text"])
    typed["amendment reason"] = (script(4), amended["amendment_reason"])
    reading = post(
        f"/api/v1/sessions/{sid}/vitals",
        therapist,
        {
            "measured_at": (now - timedelta(seconds=5)).isoformat(),
            "systolic": 175,
            "diastolic": 95,
            "heart_rate": 80,
            "temperature_c": 37.0,
            # The study's session began weeks before this reading (a generated history).
            "confirm_time": True,
        },
    )
    assert reading["alerts"], "a reading over the threshold raises an alert"
    alert = post(
        f"/api/v1/alerts/{reading['alerts'][0]['id']}/acknowledgement",
        therapist,
        {"note": script(5)},
    )
    typed["alert acknowledgement"] = (script(5), alert["acknowledgement"])
    side = post(
        f"/api/v1/participants/{pid}/side-effects",
        therapist,
        {"term": script(6), "severity": "mild", "onset_at": (now - timedelta(hours=1)).isoformat()},
    )
    typed["side effect term"] = (script(6), side["term"])
    event = post(
        f"/api/v1/participants/{pid}/adverse-events",
        therapist,
        {
            "term": script(7),
            "onset_at": (now - timedelta(hours=2)).isoformat(),
            "grade": 1,
            "serious": False,
            "description": script(8),
        },
    )["adverse_event"]
    typed["adverse event term"] = (script(7), event["term"])
    typed["adverse event description"] = (script(8), event["description"])
    assessed = post(
        f"/api/v1/adverse-events/{event['id']}/assessment",
        investigator,
        {"relatedness": "possible", "expected": True, "note": script(9)},
    )
    assert assessed["id"] == event["id"]
    version = client.get(f"/api/v1/participants/{pid}", headers=investigator).get_json()["version"]
    held = post(
        f"/api/v1/participants/{pid}/transitions",
        investigator,
        {"transition": "place_on_hold", "expected_version": version, "reason": script(10)},
    )
    typed["transition reason"] = (script(10), held["transition"]["reason"])

    for field, (sent, answered) in typed.items():
        assert answered == sent, f"{field} was not stored as typed: {answered!r}"

    assert login(client, study.team.investigator.username).status_code == 302
    pages = {
        path: client.get(path)
        for path in (
            f"/participants/{pid}",
            f"/sessions/{sid}",
            f"/adverse-events/{event['id']}",
            "/",
        )
    }
    html = ""
    for path, page in pages.items():
        assert page.status_code == 200, path
        text = page.get_data(as_text=True)
        assert "<script>alert(" not in text and "<img src=x" not in text, path
        html += text
    shown = [n for n in range(1, 11) if escaped(n) in html]
    # Every field that a page shows is escaped there; the main ones must be shown.
    for n, field in ((1, "note"), (3, "amended note"), (7, "AE term"), (10, "reason")):
        assert n in shown, f"the {field} is not shown escaped on the pages"
    print(f"\nescaped on the pages: fields {shown} of 1..10")


FORMULAS = ["=1+2", "+1+2", "-1+2", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("http://x","y")']


def test_csv_formula_cells_are_neutralised_in_the_exports(
    client: FlaskClient, db_session: Session, study: Study
) -> None:
    pid = study.participant.id
    investigator = study.headers("investigator")
    for formula in FORMULAS:
        # Each transition reason becomes the audit event's reason cell, as typed.
        version = client.get(f"/api/v1/participants/{pid}", headers=investigator).get_json()[
            "version"
        ]
        state = client.get(f"/api/v1/participants/{pid}", headers=investigator).get_json()["state"]
        transition = "release_hold" if state == "on_hold" else "place_on_hold"
        response = client.post(
            f"/api/v1/participants/{pid}/transitions",
            headers=investigator,
            json={"transition": transition, "expected_version": version, "reason": formula},
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        assert response.get_json()["transition"]["reason"] == formula.strip()

    auditor = make_user(db_session, "auditor")
    db_session.commit()
    assert login(client, auditor.username).status_code == 302
    export = client.get("/audit/export.csv")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(export.get_data(as_text=True))))
    cells = [cell for row in rows[1:] for cell in row]
    for cell in cells:
        assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
        if cell.startswith("-"):
            float(cell)  # only a number may begin with a minus sign
    reasons = {formula.strip() for formula in FORMULAS}
    for reason in reasons:
        assert "'" + reason in cells, f"{reason!r} was lost instead of neutralised"

    api_csv = client.get("/api/v1/reports/compliance?format=csv", headers=study.headers("auditor"))
    assert api_csv.status_code == 200
    for row in csv.reader(io.StringIO(api_csv.get_data(as_text=True))):
        for cell in row:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
