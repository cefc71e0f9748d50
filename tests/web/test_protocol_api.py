"""A participant taken through the whole protocol, three cycles, through the API alone."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.factories import ALL_ITEMS, FACTORY_ACTOR, PASSWORD, make_user
from tracker import clock
from tracker.auth.services import create_api_token


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def test_whole_protocol_through_the_api(client: FlaskClient, db_session: Session) -> None:
    users = {
        "coordinator": make_user(db_session, "coordinator", "S01", username="j-coord"),
        "investigator": make_user(db_session, "investigator", "S01", username="j-inv"),
        "therapist": make_user(db_session, "therapist", "S01", username="j-ther"),
        "therapist2": make_user(db_session, "therapist", "S01", username="j-ther2"),
        "auditor": make_user(db_session, "auditor", None, username="j-aud"),
    }
    tokens = {k: create_api_token(db_session, FACTORY_ACTOR, u) for k, u in users.items()}
    db_session.commit()

    def call(who: str, method: str, path: str, body: object | None = None, expect: int = 200):  # type: ignore[no-untyped-def]
        response = client.open(
            f"/api/v1{path}",
            method=method,
            json=body,
            headers={"Authorization": f"Bearer {tokens[who]}"},
        )
        assert response.status_code == expect, (method, path, response.get_json())
        return response.get_json()

    def transition(name: str, who: str = "coordinator", expect: int = 201, **extra: object):  # type: ignore[no-untyped-def]
        version = call("auditor", "GET", f"/participants/{pid}")["version"]
        return call(
            who,
            "POST",
            f"/participants/{pid}/transitions",
            {"transition": name, "expected_version": version, **extra},
            expect,
        )

    def session(kind: str, hours: float = 1.5) -> int:
        start = clock.now() - timedelta(hours=hours + 0.2)
        row = call(
            "coordinator",
            "POST",
            f"/participants/{pid}/sessions",
            {"kind": kind, "scheduled_at": _iso(start), "therapists": ["j-ther", "j-ther2"]},
            201,
        )
        call(
            "therapist",
            "PATCH",
            f"/sessions/{row['id']}",
            {
                "started_at": _iso(start),
                "ended_at": _iso(start + timedelta(hours=hours)),
                "status": "completed",
            },
        )
        return int(row["id"])

    pid = call(
        "coordinator",
        "POST",
        "/participants",
        {"site": "S01", "sex": "female", "year_of_birth": 1988, "therapists": ["j-ther"]},
        201,
    )["id"]
    call(
        "coordinator",
        "PUT",
        f"/participants/{pid}/checklist",
        {"answers": {code: {"answer": "no"} for code in ALL_ITEMS}},
    )
    call(
        "investigator",
        "POST",
        f"/participants/{pid}/checklist/signature",
        {"password": PASSWORD, "meaning": "I confirm the eligibility assessment"},
        201,
    )
    call(
        "coordinator",
        "POST",
        f"/participants/{pid}/consent",
        {"version": "ICF v2", "signed_on": clock.now().date().isoformat()},
        201,
    )
    transition("confirm_eligibility")
    refused = transition("start_dosing", expect=422)
    assert any("preparation session" in d for d in refused["error"]["details"])
    for _ in range(3):
        clock.travel(timedelta(days=6))
        session("preparation")

    for cycle in (1, 2, 3):
        clock.travel(timedelta(days=2 if cycle == 1 else 9))
        call(
            "coordinator",
            "POST",
            f"/participants/{pid}/pregnancy-tests",
            {"tested_at": _iso(clock.now() - timedelta(hours=2)), "result": "negative"},
            201,
        )
        assert transition("start_dosing")["participant"]["cycle"] == cycle
        clock.travel(timedelta(hours=10))
        start = clock.now() - timedelta(hours=9, minutes=30)
        sid = call(
            "coordinator",
            "POST",
            f"/participants/{pid}/sessions",
            {"kind": "dosing", "scheduled_at": _iso(start), "therapists": ["j-ther", "j-ther2"]},
            201,
        )["id"]
        call("therapist", "PATCH", f"/sessions/{sid}", {"started_at": _iso(start)})
        initial = start + timedelta(minutes=30)
        moment = start + timedelta(minutes=10)
        while moment < start + timedelta(hours=9):
            if moment > initial and moment - timedelta(minutes=45) <= initial:
                call(
                    "therapist",
                    "POST",
                    f"/sessions/{sid}/doses",
                    {"administered_at": _iso(initial), "amount_mg": 120, "kind": "initial"},
                    201,
                )
            high = cycle == 2 and moment == start + timedelta(minutes=100)
            reading = call(
                "therapist",
                "POST",
                f"/sessions/{sid}/vitals",
                {
                    "measured_at": _iso(moment),
                    "systolic": 166 if high else 128,
                    "diastolic": 84,
                    "heart_rate": 80,
                    "temperature_c": 36.9,
                },
                201,
            )
            if high:
                refused = call(
                    "therapist",
                    "POST",
                    f"/sessions/{sid}/doses",
                    {
                        "administered_at": _iso(moment + timedelta(minutes=5)),
                        "amount_mg": 60,
                        "kind": "supplemental",
                    },
                    422,
                )
                assert "breach" in " ".join(refused["error"]["details"])
                call(
                    "therapist2",
                    "POST",
                    f"/alerts/{reading['alerts'][0]['id']}/acknowledgement",
                    {"note": "Rechecked after 10 min: 142/86. Investigator informed."},
                    201,
                )
            moment += timedelta(minutes=45)
        call(
            "therapist",
            "PUT",
            f"/sessions/{sid}/effects",
            {"effects": ["euphoria", "emotional_openness"]},
        )
        call(
            "therapist",
            "POST",
            f"/participants/{pid}/suicidality-screens",
            {
                "ideation": False,
                "intent": False,
                "plan": False,
                "behaviour": False,
                "session_id": sid,
            },
            201,
        )
        done = call(
            "therapist",
            "PATCH",
            f"/sessions/{sid}",
            {
                "ended_at": _iso(start + timedelta(hours=9, minutes=5)),
                "status": "completed",
                "overnight_stay": True,
            },
        )
        assert done["status"] == "completed" and len(done["vitals"]) >= 12
        transition("complete_dosing", who="therapist")
        for gap in (timedelta(hours=14), timedelta(days=6), timedelta(days=7)):
            clock.travel(gap)
            session("integration")

    final = transition("complete_protocol")
    assert final["participant"]["state"] == "completed" and final["participant"]["cycle"] == 3
    history = call("auditor", "GET", f"/participants/{pid}/transitions")["transitions"]
    assert [t["transition"] for t in history] == (
        ["confirm_eligibility"] + ["start_dosing", "complete_dosing"] * 3 + ["complete_protocol"]
    )
    assert call("auditor", "GET", "/audit/verify")["ok"] is True
