"""A closed participant takes no new record, through every interface (SPEC §4; the rule is in
the protocol core, enforced by the services): the API refused none of them before, the pages
only hid the forms. The follow-up of an adverse event already open goes on."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import login
from tests.factories import FACTORY_ACTOR
from tracker.auth.services import actor_for, create_api_token
from tracker.histories import protocol_history, run_histories
from tracker.participants.models import Participant
from tracker.participants.transitions import apply_transition
from tracker.safety.services import record_adverse_event
from tracker.sessions.models import TherapySession

RECORDS = {
    "note": ("/participants/{pid}/notes", {"text": "Called the participant."}),
    "side effect": (
        "/participants/{pid}/side-effects",
        {"term": "Jaw clenching", "severity": "mild", "onset_at": "2026-11-30T10:00:00+00:00"},
    ),
    "pregnancy test": (
        "/participants/{pid}/pregnancy-tests",
        {"tested_at": "2026-11-30T10:00:00+00:00", "result": "negative"},
    ),
    "suicidality screen": (
        "/participants/{pid}/suicidality-screens",
        {"ideation": False, "intent": False, "plan": False, "behaviour": False},
    ),
    "adverse event": (
        "/participants/{pid}/adverse-events",
        {"term": "Insomnia", "onset_at": "2026-11-30T10:00:00+00:00", "grade": 1, "serious": False},
    ),
    "session": (
        "/participants/{pid}/sessions",
        {"kind": "integration", "scheduled_at": "2026-11-30T10:00:00+00:00"},
    ),
}


def _withdraw(session: Session, team, participant: Participant) -> None:  # type: ignore[no-untyped-def]
    apply_transition(
        session,
        actor_for(team.investigator),
        participant,
        "withdraw",
        expected_version=participant.version,
        reason="moved abroad",
        withdrawal_category="participant_decision",
    )


@pytest.fixture
def withdrawn(db_session: Session, team):  # type: ignore[no-untyped-def]
    run_histories([protocol_history(db_session, team, random.Random(21), "integration")])
    participant = db_session.scalars(sa.select(Participant).order_by(Participant.id.desc())).first()
    assert participant is not None
    _withdraw(db_session, team, participant)
    therapist = (
        db_session.scalars(
            sa.select(TherapySession).where(TherapySession.participant_id == participant.id)
        )
        .first()
        .therapists[0]
    )  # type: ignore[union-attr]
    token = create_api_token(db_session, FACTORY_ACTOR, therapist)
    db_session.commit()
    return participant, therapist, token


@pytest.mark.parametrize("kind", sorted(RECORDS))
def test_the_api_refuses_new_records_for_a_withdrawn_participant(
    client: FlaskClient, withdrawn, kind: str
) -> None:
    participant, _therapist, token = withdrawn
    path, body = RECORDS[kind]
    response = client.post(
        "/api/v1" + path.format(pid=participant.id),
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 422, response.get_json()
    message = response.get_json()["error"]["message"]
    assert f"is withdrawn: a closed participant takes no new {kind}" in message


def test_an_open_adverse_event_is_still_followed_up_after_withdrawal(
    client: FlaskClient, db_session: Session, team
) -> None:
    run_histories([protocol_history(db_session, team, random.Random(22), "integration")])
    participant = db_session.scalars(sa.select(Participant).order_by(Participant.id.desc())).first()
    assert participant is not None
    event = record_adverse_event(
        db_session,
        actor_for(team.coordinator),
        participant,
        term="Insomnia",
        onset_at=participant.enrolled_at,
        grade=1,
        serious=False,
    )
    _withdraw(db_session, team, participant)
    token = create_api_token(db_session, FACTORY_ACTOR, team.investigator)
    db_session.commit()
    response = client.post(
        f"/api/v1/adverse-events/{event.id}/assessment",
        json={"relatedness": "unlikely", "expected": True},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code in (200, 201), response.get_json()


def test_the_page_offers_no_form_for_a_new_record(client: FlaskClient, withdrawn) -> None:
    participant, therapist, _token = withdrawn
    assert login(client, therapist.username).status_code == 302
    page = client.get(f"/participants/{participant.id}").get_data(as_text=True)
    assert f"{participant.study_id}" in page
    for action in (
        "adverse-events",
        "side-effects",
        "notes",
        "suicidality-screens",
        "pregnancy-tests",
    ):
        assert f'action="/participants/{participant.id}/{action}"' not in page, action
