"""A participant taken through the whole protocol, three cycles, through the API alone: under
the first release's PTSD protocol, and under the depression protocol with every outcome
assessment by the blinded rater and the team, then every follow-up timepoint to completion."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.factories import ALL_ITEMS, FACTORY_ACTOR, PASSWORD, make_user
from tracker import clock
from tracker.audit.services import Actor
from tracker.auth.services import create_api_token
from tracker.paths import FIXTURES
from tracker.protocol import load_protocol_file
from tracker.study.services import activate_protocol


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _items(protocol: str, instrument: str, value: int) -> dict[str, int]:
    scale = load_protocol_file(FIXTURES / "protocols" / protocol).instrument(instrument)
    return {item.code: min(value, item.maximum) for item in scale.items}


@pytest.mark.parametrize("protocol", [None, "mdma-mdd-v1.toml"])
def test_whole_protocol_through_the_api(
    client: FlaskClient, db_session: Session, protocol: str | None
) -> None:
    if protocol is not None:
        text = (FIXTURES / "protocols" / protocol).read_text(encoding="utf-8")
        activate_protocol(db_session, Actor.system(), text)
    users = {
        "coordinator": make_user(db_session, "coordinator", "S01", username="j-coord"),
        "investigator": make_user(db_session, "investigator", "S01", username="j-inv"),
        "therapist": make_user(db_session, "therapist", "S01", username="j-ther"),
        "therapist2": make_user(db_session, "therapist", "S01", username="j-ther2"),
        "auditor": make_user(db_session, "auditor", None, username="j-aud"),
        "rater": make_user(db_session, "rater", "S01", username="j-rater"),
    }
    tokens: dict[str, str] = {}

    def renew_tokens() -> None:  # tokens last 90 days; the follow-up lasts a year
        tokens.update({k: create_api_token(db_session, FACTORY_ACTOR, u) for k, u in users.items()})
        db_session.commit()

    renew_tokens()

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
    if protocol is not None:
        call("coordinator", "PUT", f"/participants/{pid}/raters", {"raters": ["j-rater"]})

    def assess(timepoint: str, anchor: datetime) -> None:
        """Every instrument of the timepoint: the rater's scales 3 per item at baseline and 1
        after (MADRS 30, then 10), the self-reports by the coordinator."""
        definition = load_protocol_file(FIXTURES / "protocols" / str(protocol))
        for code in definition.timepoint(timepoint).instruments:
            clinician = definition.instrument(code).kind == "clinician"
            value = 3 if timepoint == "baseline" else 1
            if code == "cssrs":
                value = 0
            body = {
                "timepoint": timepoint,
                "instrument": code,
                "administered_at": _iso(clock.now() - timedelta(hours=1)),
                "items": _items(str(protocol), code, value),
            }
            recorded = call(
                "rater" if clinician else "coordinator",
                "POST",
                f"/participants/{pid}/assessments",
                body,
                201,
            )
            assert recorded["in_window"] is True, (timepoint, code, recorded)

    refused = transition("start_dosing", expect=422)
    assert any("preparation session" in d for d in refused["error"]["details"])
    for _ in range(3):
        clock.travel(timedelta(days=6))
        session("preparation")

    if protocol is not None:
        assess("baseline", clock.now())
    for cycle in (1, 2, 3):
        clock.travel(timedelta(days=2 if cycle == 1 else (1 if protocol else 9)))
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

        if protocol is not None:
            # Inside the cycle's window (21 days after the dosing, 14 after the last one).
            clock.travel(timedelta(days=2 if cycle == 3 else 8))
            assess(f"cycle_{cycle}", start)

    final = transition("complete_protocol")
    if protocol is not None:
        assert final["participant"]["state"] == "follow_up" and final["participant"]["cycle"] == 3
        last_dosing = start
        for code, days in (("primary_endpoint", 56), ("month_6", 182), ("month_12", 365)):
            clock.advance_to(last_dosing + timedelta(days=days, hours=3))
            renew_tokens()
            assess(code, last_dosing)
        record = call("rater", "GET", f"/participants/{pid}/assessments")
        statuses = {t["code"]: t["status"] for t in record["timepoints"]}
        assert set(statuses.values()) == {"done"}, statuses
        madrs = {a["timepoint"]: a for a in record["assessments"] if a["instrument"] == "madrs"}
        assert madrs["primary_endpoint"]["change_from_baseline"] == 10 - 30
        final = transition("complete_follow_up")
    assert final["participant"]["state"] == "completed" and final["participant"]["cycle"] == 3
    history = call("auditor", "GET", f"/participants/{pid}/transitions")["transitions"]
    assert [t["transition"] for t in history] == (
        ["confirm_eligibility"]
        + ["start_dosing", "complete_dosing"] * 3
        + ["complete_protocol"]
        + (["complete_follow_up"] if protocol else [])
    )
    assert call("auditor", "GET", "/audit/verify")["ok"] is True
