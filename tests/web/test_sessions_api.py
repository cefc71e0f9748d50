from __future__ import annotations

import random
from datetime import timedelta

import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.factories import FACTORY_ACTOR, make_user
from tracker import clock
from tracker.auth.services import create_api_token
from tracker.histories import protocol_history, run_histories
from tracker.participants.models import Participant
from tracker.sessions.models import TherapySession


def test_session_routes_check_input_access_and_roles(
    client: FlaskClient, db_session: Session, team
) -> None:  # type: ignore[no-untyped-def]
    run_histories([protocol_history(db_session, team, random.Random(5), "dosing_in_progress")])
    participant = db_session.scalar(sa.select(Participant))
    dosing = db_session.scalar(sa.select(TherapySession).where(TherapySession.kind == "dosing"))
    tokens = {
        "therapist": create_api_token(db_session, FACTORY_ACTOR, team.therapists[0]),
        "auditor": create_api_token(
            db_session, FACTORY_ACTOR, make_user(db_session, "auditor", None)
        ),
        "stranger": create_api_token(
            db_session, FACTORY_ACTOR, make_user(db_session, "therapist", "S02")
        ),
    }
    db_session.commit()

    def call(who: str, method: str, path: str, body: object | None = None):  # type: ignore[no-untyped-def]
        return client.open(
            f"/api/v1{path}",
            method=method,
            json=body,
            headers={"Authorization": f"Bearer {tokens[who]}"},
        )

    detail = call("therapist", "GET", f"/sessions/{dosing.id}").get_json()
    assert (
        detail["kind"] == "dosing" and detail["vitals"] and detail["doses"][0]["kind"] == "initial"
    )
    reading = {
        "measured_at": clock.now().replace(tzinfo=None).isoformat(),
        "systolic": 120,
        "diastolic": 80,
        "heart_rate": 70,
        "temperature_c": 36.6,
    }
    naive = call("therapist", "POST", f"/sessions/{dosing.id}/vitals", reading)
    assert (
        naive.status_code == 400
        and naive.get_json()["error"]["details"][0]["field"] == "measured_at"
    )
    reading["measured_at"] = (clock.now() - timedelta(minutes=1)).isoformat()
    assert call("auditor", "POST", f"/sessions/{dosing.id}/vitals", reading).status_code == 403
    assert call("stranger", "POST", f"/sessions/{dosing.id}/vitals", reading).status_code == 404
    assert call("stranger", "GET", f"/participants/{participant.id}/sessions").status_code == 404
    created = call("therapist", "POST", f"/sessions/{dosing.id}/vitals", reading)
    assert created.status_code == 201, created.get_json()
    implausible = call(
        "therapist", "POST", f"/sessions/{dosing.id}/vitals", {**reading, "systolic": 20}
    )
    assert (
        implausible.status_code == 400 and "plausible" in implausible.get_json()["error"]["message"]
    )
    wrong_kind = call(
        "therapist",
        "POST",
        f"/participants/{participant.id}/sessions",
        {"kind": "integration", "scheduled_at": clock.now().isoformat()},
    )
    assert (
        wrong_kind.status_code == 422
        and "only dosing sessions" in wrong_kind.get_json()["error"]["details"][0]
    )
    note = call(
        "therapist", "POST", f"/sessions/{dosing.id}/notes", {"text": "<script>x</script> calm"}
    )
    assert note.status_code == 201 and note.get_json()["text"] == "<script>x</script> calm"
    amended = call(
        "therapist",
        "POST",
        f"/notes/{note.get_json()['id']}/amendments",
        {"text": "calm", "reason": "removed pasted markup"},
    )
    assert amended.get_json()["version"] == 2
    notes = call("auditor", "GET", f"/participants/{participant.id}/notes").get_json()["notes"]
    assert [n["version"] for n in notes if n["session_id"] == dosing.id] == [1, 2]
