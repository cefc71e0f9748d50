"""The audit trail browser as an auditor uses it: each filter (participant, user, action,
entity, time), the old and new values and the reason, paging, the filtered export and the
verify page. Runs on SQLite and on PostgreSQL (the ``app`` fixture is per backend)."""

from __future__ import annotations

import csv
import html
import io
import random
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import csrf_token
from tracker import clock
from tracker.audit.models import AuditEvent
from tracker.audit.services import verify
from tracker.histories import Team, protocol_history, run_histories
from tracker.notes import services as notes_services
from tracker.notes.models import Note
from tracker.participants.models import Participant
from tracker.safety import services as safety_services
from tracker.safety.models import AdverseEvent
from tracker.sessions.models import TherapySession

ROW = re.compile(r'<tr id="event-(\d+)">')
OLDER = re.compile(r'<a href="([^"]+)">Older events')
AMENDED = "Preparation: intentions, music and the safety plan; sleep discussed."
AMEND_REASON = "Added the sleep discussion the participant asked to be noted."


@dataclass(frozen=True)
class Study:
    first: Participant
    second: Participant


def _study(db_session: Session, team: Team) -> Study:
    """Two participants in preparation; the first also has an adverse event assessed by the
    investigator and a note corrected with a reason (events whose entity is the adverse
    event or the note, not the participant)."""
    rng = random.Random(5)
    run_histories(
        [
            protocol_history(db_session, team, rng, "preparation"),
            protocol_history(db_session, team, rng, "preparation"),
        ]
    )
    first, second = db_session.scalars(sa.select(Participant).order_by(Participant.id)).all()
    event = safety_services.record_adverse_event(
        db_session,
        team.as_therapist(),
        first,
        term="Headache",
        grade=1,
        serious=False,
        onset_at=clock.now() - timedelta(hours=2),
    )
    safety_services.assess_adverse_event(
        db_session, team.as_investigator, event, relatedness="possible", expected=True
    )
    note = notes_services.add_note(
        db_session, team.as_therapist(), first, "Preparation: intentions."
    )
    notes_services.amend_note(db_session, team.as_therapist(), note, AMENDED, AMEND_REASON)
    db_session.commit()
    return Study(first, second)


def _seqs(client: FlaskClient, url: str) -> list[int]:
    """The sequence numbers shown, following "Older events" through every page."""
    seqs: list[int] = []
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        body = response.get_data(as_text=True)
        seqs += [int(s) for s in ROW.findall(body)]
        older = OLDER.search(body)
        if older is None:
            return seqs
        url = html.unescape(older.group(1))


def _all_events(db_session: Session) -> list[AuditEvent]:
    return list(db_session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq.desc())))


def _about(db_session: Session, participant: Participant) -> set[int]:
    """The events about ``participant``, worked out in Python from the stored rows."""
    sid = participant.study_id

    def ids(model: type) -> set[str]:
        return {
            str(i)
            for i in db_session.scalars(
                sa.select(model.id).where(model.participant_id == participant.id)  # type: ignore[attr-defined]
            )
        }

    owned = {
        "participant": {sid},
        "session": ids(TherapySession),
        "adverse_event": ids(AdverseEvent),
        "note": ids(Note),
    }
    return {
        e.seq
        for e in _all_events(db_session)
        if e.entity_id in owned.get(e.entity_type, set())
        or (e.new_values or {}).get("participant") == sid
        or (e.old_values or {}).get("participant") == sid
    }


def test_participant_filter_finds_every_event_about_the_participant(
    client: FlaskClient, db_session: Session, team: Team, signed_in
) -> None:  # type: ignore[no-untyped-def]
    study = _study(db_session, team)
    signed_in("auditor")
    expected = _about(db_session, study.first)
    shown = _seqs(client, f"/audit/?participant={study.first.study_id}")
    assert shown == sorted(expected, reverse=True)
    # Every kind of link to the participant is there, and nothing of the other participant.
    events = {e.seq: e for e in _all_events(db_session)}
    actions = {events[s].action for s in shown}
    assert {
        "participant.enrol",  # the participant itself
        "session.schedule",  # "participant": "<study id>" in the new values
        "session.update",  # one of its sessions
        "adverse_event.assess",  # one of its adverse events
        "note.amend",  # one of its notes
    } <= actions
    assert not expected & _about(db_session, study.second)
    # Case and spaces do not matter; a study id that matches nothing shows nothing.
    assert _seqs(client, f"/audit/?participant=+{study.first.study_id.lower()}+") == shown
    assert _seqs(client, "/audit/?participant=S99-0001") == []


@pytest.mark.parametrize("pattern", ["%", "S01-%", "S01-000_", "' OR '1'='1", '"participant"'])
def test_participant_filter_is_not_a_pattern(
    client: FlaskClient, db_session: Session, team: Team, signed_in, pattern: str
) -> None:  # type: ignore[no-untyped-def]
    _study(db_session, team)
    signed_in("auditor")
    assert _seqs(client, "/audit/?" + _query(participant=pattern)) == []


def _query(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def test_user_filter(client: FlaskClient, db_session: Session, team: Team, signed_in) -> None:  # type: ignore[no-untyped-def]
    _study(db_session, team)
    signed_in("auditor")
    username = team.investigator.username
    expected = [e.seq for e in _all_events(db_session) if e.actor == username]
    assert expected
    assert _seqs(client, f"/audit/?actor={username.upper()}") == expected


def test_action_filter(client: FlaskClient, db_session: Session, team: Team, signed_in) -> None:  # type: ignore[no-untyped-def]
    _study(db_session, team)
    signed_in("auditor")
    expected = [e.seq for e in _all_events(db_session) if e.action == "session.schedule"]
    assert len(expected) == 6  # three preparation sessions each
    page = client.get("/audit/?action=session.schedule").get_data(as_text=True)
    assert '<option value="session.schedule" selected>' in page
    assert _seqs(client, "/audit/?action=session.schedule") == expected


def test_entity_filter(client: FlaskClient, db_session: Session, team: Team, signed_in) -> None:  # type: ignore[no-untyped-def]
    study = _study(db_session, team)
    signed_in("auditor")
    session_id = db_session.scalar(
        sa.select(TherapySession.id).where(TherapySession.participant_id == study.first.id)
    )
    events = _all_events(db_session)
    by_type = [e.seq for e in events if e.entity_type == "session"]
    one = [e.seq for e in events if e.entity_type == "session" and e.entity_id == str(session_id)]
    assert len(one) >= 2  # scheduled, then updated
    assert _seqs(client, "/audit/?entity_type=session") == by_type
    assert _seqs(client, f"/audit/?entity_type=session&entity_id={session_id}") == one


def test_time_filter(client: FlaskClient, db_session: Session, team: Team, signed_in) -> None:  # type: ignore[no-untyped-def]
    _study(db_session, team)
    signed_in("auditor")
    events = _all_events(db_session)
    days = sorted({e.occurred_at.date() for e in events})
    assert len(days) >= 5  # the histories spread over weeks
    since, until = days[1], days[-2]
    expected = [e.seq for e in events if since <= e.occurred_at.date() <= until]
    assert 0 < len(expected) < len(events)
    # "Until" takes in the whole of its day.
    assert any(e.occurred_at.date() == until for e in events if e.seq in expected)
    assert _seqs(client, f"/audit/?since={since}&until={until}") == expected
    assert _seqs(client, f"/audit/?since={days[-1] + timedelta(days=1)}") == []
    assert client.get("/audit/?since=yesterday").status_code == 400


def test_filters_combine(client: FlaskClient, db_session: Session, team: Team, signed_in) -> None:  # type: ignore[no-untyped-def]
    study = _study(db_session, team)
    signed_in("auditor")
    about = _about(db_session, study.first)
    expected = [
        e.seq
        for e in _all_events(db_session)
        if e.seq in about
        and e.action == "session.update"
        and e.actor == team.therapists[0].username
    ]
    assert expected
    url = "/audit/?" + _query(
        participant=study.first.study_id, action="session.update", actor=team.therapists[0].username
    )
    assert _seqs(client, url) == expected


def test_old_and_new_values_and_the_reason_are_shown(
    client: FlaskClient, db_session: Session, team: Team, signed_in
) -> None:  # type: ignore[no-untyped-def]
    study = _study(db_session, team)
    signed_in("auditor")
    body = client.get(
        "/audit/?" + _query(participant=study.first.study_id, action="note.amend")
    ).get_data(as_text=True)
    (row,) = re.findall(r'<tr id="event-\d+">.*?</tr>', body, re.S)
    assert "Preparation: intentions." in row  # old text
    assert html.escape(AMENDED) in row  # new text
    assert html.escape(AMEND_REASON) in row
    assert '<span class="old">' in row and '<span class="new">' in row
    assessed = client.get("/audit/?action=adverse_event.assess").get_data(as_text=True)
    assert "possible" in assessed and "<dt>relatedness</dt>" in assessed


def test_paging_shows_every_event_once(
    client: FlaskClient, db_session: Session, team: Team, signed_in
) -> None:  # type: ignore[no-untyped-def]
    _study(db_session, team)
    signed_in("auditor")
    first = client.get("/audit/").get_data(as_text=True)
    assert (
        len(ROW.findall(first)) == 50 and "Older events" in first and "Newest events" not in first
    )
    second_url = html.unescape(OLDER.search(first).group(1))  # type: ignore[union-attr]
    assert "before=" in second_url and "Newest events" in client.get(second_url).get_data(
        as_text=True
    )
    expected = [e.seq for e in _all_events(db_session)]
    assert _seqs(client, "/audit/") == expected
    # Paging keeps the filters.
    username = team.coordinator.username
    mine = [e.seq for e in _all_events(db_session) if e.actor == username]
    assert len(mine) > 50
    assert _seqs(client, f"/audit/?actor={username}") == mine


def test_export_keeps_the_participant_filter(
    client: FlaskClient, db_session: Session, team: Team, signed_in
) -> None:  # type: ignore[no-untyped-def]
    study = _study(db_session, team)
    signed_in("auditor")
    page = client.get(f"/audit/?participant={study.first.study_id}").get_data(as_text=True)
    assert f'href="/audit/export.csv?participant={study.first.study_id}"' in page
    expected = _about(db_session, study.first)
    body = client.get(f"/audit/export.csv?participant={study.first.study_id}").get_data(
        as_text=True
    )
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    assert {int(r["seq"]) for r in rows} == expected
    export = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "audit.export"))
    assert export is not None
    assert export.new_values["filter"] == {"participant": study.first.study_id}


def test_verify_shows_the_head_hash_and_the_event_count(
    client: FlaskClient, db_session: Session, team: Team, signed_in
) -> None:  # type: ignore[no-untyped-def]
    _study(db_session, team)
    signed_in("auditor")
    token = csrf_token(client, "/audit/")
    response = client.post("/audit/verify", data={"csrf_token": token})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    result = verify(db_session)
    assert result.ok
    assert f'<code class="hash">{result.head}</code>' in body
    assert f"{result.events} events" in body
    assert "The chain verifies" in body
    assert client.post("/audit/verify").status_code == 400  # no CSRF token
