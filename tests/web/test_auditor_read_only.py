"""Read-only means read-only: the auditor changes nothing anywhere (SPEC §1, issue 5).

The test walks ``app.url_map`` and sends every write method (POST, PUT, PATCH, DELETE) to every
route, with the URL arguments filled by ids of real rows and a body a clinician's form or API
call would send, twice: as an auditor signed in in the browser (CSRF token included, so only
the permission can refuse) and with an auditor's API token. Every write is refused with 403
(405, or 404, where the route has no such method), and afterwards every table but
``audit_events`` and ``login_sessions`` holds exactly the rows it held before: same count,
same content.

A new route is covered the day it is added. The last test runs the same walk as a coordinator
to show it does catch writes that get through.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Rule

from tests.conftest import csrf_token
from tests.factories import FACTORY_ACTOR, PASSWORD, keep_ledger, make_user
from tracker import clock
from tracker.auth.services import create_api_token
from tracker.dosing.models import VitalSignAlert
from tracker.histories import Team, protocol_history, run_histories
from tracker.notes.models import Note
from tracker.participants.models import Participant
from tracker.safety.models import AdverseEvent
from tracker.sessions.models import TherapySession

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# Tables a read may add to: the trail (a login, an export), the browser sessions and the
# background exports (an export the auditor asks for, made from what they read).
UNWATCHED_TABLES = {"audit_events", "login_sessions", "alembic_version", "export_jobs"}
# Columns a read may touch: when a token was last used.
UNWATCHED_COLUMNS = {("api_tokens", "last_used_at")}
# Write routes the auditor may use: signing in and out, their own password (sent here without
# one, so nothing may change), re-computing the chain (reads only) and asking for a report's
# file made in the background (an export, as a download is). Not study data.
OWN_ACCOUNT = {"auth.login", "auth.logout", "auth.change_password"}
BACKGROUND_EXPORTS = {
    "jobs.prepare_compliance_pdf",
    "jobs.prepare_exchange",
    "api.request_export_job",
}
AUDITOR_MAY = OWN_ACCOUNT | {"audit.verify_trail"} | BACKGROUND_EXPORTS
SKIPPED = {"auth.logout"}  # would end the session the walk runs in; sent last, on its own
NOT_THIS_METHOD = {404, 405}


# --- the rows the URLs name -----------------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    participant_id: int
    session_id: int
    alert_id: int
    event_id: int
    note_id: int
    user_id: int
    therapist: str
    version: int
    lot_id: int
    entry_id: int
    study_id: str = ""

    def url_values(self, rule: Rule) -> dict[str, object]:
        values: dict[str, object] = {
            "participant_id": self.participant_id,
            "study_id": self.study_id,
            "session_id": self.session_id,
            "alert_id": self.alert_id,
            "event_id": self.event_id,
            "note_id": self.note_id,
            "user_id": self.user_id,
            "code": "controlled_hypertension",
            "name": "withdraw",
            "fmt": "csv",
            "filename": "tracker.css",
            "timepoint": "baseline",
            "instrument": "madrs",
            "lot_id": self.lot_id,
            "entry_id": self.entry_id,
            "kind": "count",
            "job_id": 1,
        }
        missing = rule.arguments - values.keys()
        assert not missing, f"{rule.rule}: no real row for {sorted(missing)}; add one to Rows"
        return {k: values[k] for k in rule.arguments}


def _study(db_session: Session, team: Team) -> Rows:
    """A completed participant (alerts acknowledged, notes amended) and one with a serious
    adverse event: a row behind every id a URL can take."""
    rng = random.Random(8)
    run_histories(
        [
            protocol_history(db_session, team, rng, "completed"),
            protocol_history(db_session, team, rng, "completed", serious_event_in_cycle=1),
        ]
    )
    _, receipt = keep_ledger(db_session, team)
    db_session.commit()

    def first(model: type) -> int:
        value = db_session.scalar(sa.select(model.id).order_by(model.id))  # type: ignore[attr-defined]
        assert value is not None, f"the study has no {model.__name__}"
        return int(value)

    participant = db_session.scalars(sa.select(Participant).order_by(Participant.id)).first()
    assert participant is not None
    return Rows(
        participant_id=participant.id,
        study_id=participant.study_id,
        session_id=first(TherapySession),
        alert_id=first(VitalSignAlert),
        event_id=first(AdverseEvent),
        note_id=first(Note),
        user_id=team.coordinator.id,
        therapist=team.therapists[0].username,
        version=participant.version,
        lot_id=receipt.lot_id,
        entry_id=receipt.id,
    )


# --- what a clinician would send ------------------------------------------------------------


def _form(rows: Rows) -> dict[str, object]:
    """Every field of every write form, filled as a clinician would (unknown ones are ignored),
    so a route without its permission check would write, not just fail validation."""
    when = (clock.now() - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    today = clock.now().date().isoformat()
    form: dict[str, object] = {
        # participants
        "site": "S01",
        "sex": "female",
        "year_of_birth": "1985",
        "therapists": rows.therapist,
        "therapists-therapists": rows.therapist,
        "document_version": "ICF v9 (written by the read-only test)",
        "signed_on": today,
        "controlled_hypertension-acceptable": "yes",
        "controlled_hypertension-rationale": "Written by the read-only test.",
        "signature-password": PASSWORD,
        "signature-meaning": "I confirm that I have reviewed this checklist",
        "withdraw-expected_version": str(rows.version),
        "withdraw-reason": "Written by the read-only test.",
        "withdraw-withdrawal_category": "participant_decision",
        # sessions and safety
        "schedule-kind": "integration",
        "schedule-scheduled_at": when,
        "schedule-therapists": rows.therapist,
        "record-status": "cancelled",
        "record-started_at": when,
        "vitals-measured_at": when,
        "vitals-systolic": "120",
        "vitals-diastolic": "80",
        "vitals-heart_rate": "70",
        "vitals-temperature_c": "36.8",
        "dose-kind": "supplemental",
        "dose-amount_mg": "40",
        "dose-administered_at": when,
        "effects-none_observed": "y",
        "effects-note": "Written by the read-only test.",
        "side-term": "Nausea",
        "side-severity": "mild",
        "side-onset_at": when,
        "ae-term": "Headache",
        "ae-grade": "1",
        "ae-onset_at": when,
        "ae-description": "Written by the read-only test.",
        "screen-ideation": "no",
        "screen-intent": "no",
        "screen-plan": "no",
        "screen-behaviour": "no",
        "pregnancy-tested_at": when,
        "pregnancy-result": "negative",
        "assess-relatedness": "possible",
        "assess-expected": "yes",
        "assess-note": "Written by the read-only test.",
        "follow-outcome": "recovered",
        "note-text": "Written by the read-only test.",
        f"note-{rows.note_id}-text": "Corrected by the read-only test.",
        f"note-{rows.note_id}-reason": "Written by the read-only test.",
        f"alert-{rows.alert_id}-note": "Written by the read-only test.",
        "text": "Written by the read-only test.",
        "reason": "Written by the read-only test.",
        # administration
        "username": "made-by-the-auditor",
        "printed_name": "Made By The Auditor",
        "role": "coordinator",
        "code": "S77",
        "name": "Made by the auditor",
        "new_password": "another-correct-horse-battery",
        "confirm_password": "another-correct-horse-battery",
    }
    return form


def _json(rows: Rows) -> dict[str, object]:
    when = (clock.now() - timedelta(minutes=30)).isoformat()
    return {
        "site": "S01",
        "sex": "female",
        "year_of_birth": 1985,
        "therapists": [rows.therapist],
        "answers": {"bipolar_i": {"answer": "no"}},
        "item": "controlled_hypertension",
        "acceptable": True,
        "rationale": "Written by the read-only test.",
        "password": PASSWORD,
        "meaning": "I confirm that I have reviewed this checklist",
        "version": "ICF v9",
        "signed_on": clock.now().date().isoformat(),
        "transition": "withdraw",
        "expected_version": rows.version,
        "reason": "Written by the read-only test.",
        "withdrawal_category": "participant_decision",
        "override": False,
        "kind": "integration",
        "scheduled_at": when,
        "status": "cancelled",
        "measured_at": when,
        "systolic": 120,
        "diastolic": 80,
        "heart_rate": 70,
        "temperature_c": 36.8,
        "administered_at": when,
        "amount_mg": 40,
        "effects": [],
        "none_observed": True,
        "term": "Headache",
        "onset_at": when,
        "grade": 1,
        "serious": False,
        "severity": "mild",
        "relatedness": "possible",
        "expected": True,
        "outcome": "recovered",
        "ideation": False,
        "intent": False,
        "plan": False,
        "behaviour": False,
        "tested_at": when,
        "result": "negative",
        "note": "Written by the read-only test.",
        "text": "Written by the read-only test.",
    }


# --- what the database holds ----------------------------------------------------------------


def snapshot(db_session: Session) -> dict[str, tuple[int, str]]:
    """Every watched table of the database (as the migrations made it, not as the models say):
    its row count and a digest of its content."""
    connection = db_session.connection()
    state = {}
    for table in sorted(sa.inspect(connection).get_table_names()):
        if table in UNWATCHED_TABLES:
            continue
        result = connection.execute(sa.text(f'SELECT * FROM "{table}"'))  # names from the catalogue
        keep = [i for i, name in enumerate(result.keys()) if (table, name) not in UNWATCHED_COLUMNS]
        rows = sorted(repr(tuple(row[i] for i in keep)) for row in result)
        state[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return state


def changed_tables(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> str:
    return ", ".join(
        f"{t} ({before.get(t, (0, ''))[0]} → {after.get(t, (0, ''))[0]} rows)"
        for t in sorted(before.keys() | after.keys())
        if before.get(t) != after.get(t)
    )


# --- the walk -------------------------------------------------------------------------------


@dataclass
class Walk:
    requests: int = 0
    writes_tried: int = 0
    problems: list[str] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)


def walk(
    app: Flask,
    db_session: Session,
    rows: Rows,
    send: Callable[[str, str, bool], tuple[int, str]],
    refused: Callable[[Rule, int, str], bool],
) -> Walk:
    """Send every write method to every route; report the ones not refused and any change.

    ``send(method, path, is_api)`` returns (status, Location); ``refused(rule, status,
    location)`` says whether the answer is a refusal for this kind of client."""
    result = Walk()
    adapter = app.url_map.bind("localhost")
    paths = sorted(
        {
            (rule.build(rows.url_values(rule), append_unknown=False)[1], rule.rule)  # type: ignore[index]
            for rule in app.url_map.iter_rules()
        }
    )
    for path, pattern in paths:
        is_api = pattern.startswith("/api/")
        for method in WRITE_METHODS:
            # The route that answers this method at this path (several rules share a path).
            try:
                rule, _ = adapter.match(path, method=method, return_rule=True)
            except (MethodNotAllowed, NotFound):
                rule = None
            if rule is not None and rule.endpoint in SKIPPED:
                continue
            before = snapshot(db_session) if rule is not None else None
            status, location = send(method, path, is_api)
            result.requests += 1
            if rule is None:
                if status not in NOT_THIS_METHOD:
                    result.problems.append(f"{method} {path}: {status}, expected 405")
                continue
            result.writes_tried += 1
            if status >= 500:
                result.problems.append(f"{method} {path} ({rule.endpoint}): server error {status}")
            elif rule.endpoint not in AUDITOR_MAY and not refused(rule, status, location):
                result.problems.append(
                    f"{method} {path} ({rule.endpoint}): let through with {status}"
                    + (f" → {location}" if location else "")
                )
            assert before is not None
            after = snapshot(db_session)
            if after != before:
                tables = changed_tables(before, after)
                result.changed |= {t for t in after if after.get(t) != before.get(t)}
                result.problems.append(f"{method} {path} ({rule.endpoint}) changed {tables}")
    return result


def _json_for(app: Flask, rows: Rows) -> Callable[[str, str], dict[str, object]]:
    """The body an API call would send: the fields of the route's request model (the models
    refuse unknown fields), taken from ``_json``."""
    from tracker.api.openapi import OPERATIONS

    everything = _json(rows)
    models = {op.endpoint: op.body for op in OPERATIONS}
    adapter = app.url_map.bind("localhost")

    def body(method: str, path: str) -> dict[str, object]:
        try:
            rule, _ = adapter.match(path, method=method, return_rule=True)
        except (MethodNotAllowed, NotFound):
            return everything
        model = models.get(rule.endpoint)
        if model is None:
            return everything
        return {k: v for k, v in everything.items() if k in model.model_fields}

    return body


def _browser_sender(
    app: Flask, client: FlaskClient, rows: Rows
) -> Callable[[str, str, bool], tuple[int, str]]:
    token = csrf_token(client, "/")
    form = {**_form(rows), "csrf_token": token}
    body = _json_for(app, rows)

    def send(method: str, path: str, is_api: bool) -> tuple[int, str]:
        if is_api:
            response = client.open(
                path, method=method, json=body(method, path), headers={"X-CSRFToken": token}
            )
        else:
            response = client.open(path, method=method, data=form)
        return response.status_code, response.headers.get("Location", "")

    return send


def _forbidden(rule: Rule, status: int, location: str) -> bool:
    return status == 403


@pytest.fixture
def study(db_session: Session, team: Team) -> Rows:
    return _study(db_session, team)


def test_signed_in_auditor_can_write_nothing(
    app: Flask, client: FlaskClient, db_session: Session, signed_in, study: Rows
) -> None:  # type: ignore[no-untyped-def]
    auditor = signed_in("auditor")
    # The walk is only meaningful if the auditor is really signed in and reads everything.
    assert client.get(f"/participants/{study.participant_id}").status_code == 200
    start = snapshot(db_session)

    result = walk(app, db_session, study, _browser_sender(app, client, study), _forbidden)

    assert result.problems == []
    assert result.writes_tried >= 50, result.writes_tried  # the walk did reach the write routes
    assert snapshot(db_session) == start
    # Still the auditor, still signed in: no answer above came from a lost session.
    assert client.get("/audit/").status_code == 200
    # Signing out ends the browser session and changes no data either.
    token = csrf_token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert snapshot(db_session) == start
    assert auditor.role == "auditor"


def test_auditor_api_token_can_write_nothing(app: Flask, db_session: Session, study: Rows) -> None:
    auditor = make_user(db_session, "auditor", None)
    token = create_api_token(db_session, FACTORY_ACTOR, auditor)
    db_session.commit()
    client = app.test_client()  # no cookie: the token is the only credential
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/audit/verify", headers=headers).status_code == 200
    form, body = _form(study), _json_for(app, study)

    def send(method: str, path: str, is_api: bool) -> tuple[int, str]:
        if is_api:
            response = client.open(path, method=method, json=body(method, path), headers=headers)
        else:
            response = client.open(path, method=method, data=form, headers=headers)
        return response.status_code, response.headers.get("Location", "")

    def refused(rule: Rule, status: int, location: str) -> bool:
        if rule.rule.startswith("/api/"):
            return status == 403
        # A token is not a browser session: the pages refuse it (no CSRF token, or sign in).
        return status in (400, 401, 403) or (status == 302 and location.startswith("/login"))

    start = snapshot(db_session)
    result = walk(app, db_session, study, send, refused)

    assert result.problems == []
    assert result.writes_tried >= 50, result.writes_tried
    assert snapshot(db_session) == start


def test_the_walk_catches_writes_that_get_through(
    app: Flask, client: FlaskClient, db_session: Session, signed_in, study: Rows
) -> None:  # type: ignore[no-untyped-def]
    """The same walk as a coordinator, who may write: it must report the writes, both by the
    answers and by the changed tables (or the tests above would prove nothing)."""
    signed_in("coordinator", site="S01")
    result = walk(app, db_session, study, _browser_sender(app, client, study), _forbidden)

    let_through = [p for p in result.problems if "let through" in p]
    assert any("(notes.participant_note)" in p for p in let_through), let_through
    assert any("(api.participant_note)" in p for p in let_through), let_through
    assert {"notes", "participants"} <= result.changed, result.changed


def test_what_the_auditor_reads_changes_nothing(
    app: Flask, client: FlaskClient, db_session: Session, signed_in, study: Rows
) -> None:  # type: ignore[no-untyped-def]
    """Every page, export and API read the auditor opens adds at most audit events (an
    export is one) and nothing else."""
    signed_in("auditor")
    start = snapshot(db_session)
    answers = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in (rule.methods or set()) or rule.endpoint in OWN_ACCOUNT:
            continue
        values = study.url_values(rule)
        for fmt in ("csv", "json", "pdf") if "fmt" in values else (None,):
            if fmt:
                values["fmt"] = fmt
            path = rule.build(values, append_unknown=False)[1]  # type: ignore[index]
            response = client.get(path)
            answers[path] = response.status_code
            response.close()
            assert snapshot(db_session) == start, f"GET {path} changed data"
    assert all(status < 500 for status in answers.values()), answers
    assert answers["/reports/compliance.pdf"] == 200 and answers["/audit/export.csv"] == 200
    assert answers["/admin/users"] == 403  # the auditor reads the study, not user admin
