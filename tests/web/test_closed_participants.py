"""A closed participant takes no new record, through every interface (the rule is in the
protocol core, enforced by the services): the API refused none of them before, the pages
only hid the forms. Adverse events are the exception: safety reporting goes on after a
withdrawal (21 CFR 312.32)."""

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
    "session": (
        "/participants/{pid}/sessions",
        {"kind": "integration", "scheduled_at": "2026-11-30T10:00:00+00:00"},
    ),
}


@pytest.fixture
def withdrawn(db_session: Session, team):  # type: ignore[no-untyped-def]
    run_histories([protocol_history(db_session, team, random.Random(21), "integration")])
    participant = db_session.scalars(sa.select(Participant).order_by(Participant.id.desc())).first()
    assert participant is not None
    apply_transition(
        db_session,
        actor_for(team.investigator),
        participant,
        "withdraw",
        expected_version=participant.version,
        reason="moved abroad",
        withdrawal_category="participant_decision",
    )
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


def test_an_adverse_event_is_still_recorded_after_withdrawal(
    client: FlaskClient, withdrawn
) -> None:
    participant, _therapist, token = withdrawn
    response = client.post(
        f"/api/v1/participants/{participant.id}/adverse-events",
        json={
            "term": "Insomnia",
            "onset_at": "2026-11-30T10:00:00+00:00",
            "grade": 1,
            "serious": False,
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.get_json()


def test_the_page_offers_only_the_adverse_event_form(client: FlaskClient, withdrawn) -> None:
    participant, therapist, _token = withdrawn
    assert login(client, therapist.username).status_code == 302
    page = client.get(f"/participants/{participant.id}").get_data(as_text=True)
    assert f'action="/participants/{participant.id}/adverse-events"' in page
    for action in ("side-effects", "notes", "suicidality-screens", "pregnancy-tests"):
        assert f'action="/participants/{participant.id}/{action}"' not in page, action
