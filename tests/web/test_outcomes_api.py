"""Outcome assessments through the API (SPEC §10): the blind of clinician-rated instruments,
every item checked, figures derived by the core, windows, missed timepoints, and a rater who
sees the timepoints and assessments of their participants and nothing else."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.factories import FACTORY_ACTOR, item_codes, make_user
from tracker import clock
from tracker.audit.services import Actor
from tracker.auth.models import User
from tracker.auth.services import create_api_token
from tracker.histories import Team, protocol_history, run_histories
from tracker.participants.models import Participant, RaterAssignment
from tracker.paths import FIXTURES
from tracker.sessions.models import TherapySession
from tracker.study.services import activate_protocol

MDD = FIXTURES / "protocols" / "mdma-mdd-v1.toml"
MADRS_CODES = item_codes("madrs")
PHQ9_CODES = item_codes("phq9")


def madrs(*values: int) -> dict[str, int]:
    return dict(zip(MADRS_CODES, values, strict=True))


class Api:
    def __init__(self, client: FlaskClient, db: Session) -> None:
        self.client = client
        self.db = db
        self.tokens: dict[str, str] = {}

    def token_for(self, user: User) -> str:
        if user.username not in self.tokens:
            self.tokens[user.username] = create_api_token(self.db, FACTORY_ACTOR, user)
            self.db.commit()
        return self.tokens[user.username]

    def __call__(self, user: User, method: str, path: str, json: object | None = None) -> Any:
        return self.client.open(
            f"/api/v1{path}",
            method=method,
            json=json,
            headers={"Authorization": f"Bearer {self.token_for(user)}"},
        )


@pytest.fixture
def study(client: FlaskClient, db_session: Session, team: Team):  # type: ignore[no-untyped-def]
    """A participant under the depression protocol after dosing cycle 1, and two raters."""
    activate_protocol(db_session, Actor.system(), MDD.read_text(encoding="utf-8"))
    run_histories([protocol_history(db_session, team, random.Random(5), "integration")])
    participant = db_session.scalars(sa.select(Participant).order_by(Participant.id.desc())).one()
    assert participant.protocol_version.code == "mdma-mdd"
    raters = [make_user(db_session, "rater", "S01") for _ in range(2)]
    db_session.commit()
    return participant, raters, Api(client, db_session)


def _dosing_start(db: Session, participant: Participant) -> datetime:
    dosing = db.scalars(
        sa.select(TherapySession).where(
            TherapySession.participant_id == participant.id, TherapySession.kind == "dosing"
        )
    ).first()
    assert dosing is not None and dosing.started_at is not None
    return dosing.started_at


def _baseline_at(db: Session, participant: Participant) -> str:
    """A moment inside the baseline window: the day before the first dosing."""
    return (_dosing_start(db, participant) - timedelta(days=1)).isoformat()


def test_a_blinded_rater_records_the_madrs_and_the_core_derives_the_figures(
    study, db_session: Session, team: Team
) -> None:  # type: ignore[no-untyped-def]
    participant, (rater, other), api = study
    path = f"/participants/{participant.id}"
    assigned = api(team.coordinator, "PUT", f"{path}/raters", {"raters": [rater.username]})
    assert assigned.status_code == 200, assigned.get_json()
    assert assigned.get_json() == {"raters": [rater.username]}

    at = _baseline_at(db_session, participant)
    baseline = {"timepoint": "baseline", "instrument": "madrs", "administered_at": at}
    # Hand-worked: 4+4+3+4+2+3+3+4+4+3 = 34, moderate (20-34).
    first = api(
        rater,
        "POST",
        f"{path}/assessments",
        baseline | {"items": madrs(4, 4, 3, 4, 2, 3, 3, 4, 4, 3)},
    )
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert (body["total"], body["band"], body["in_window"]) == (34, "moderate", True)
    assert body["change_from_baseline"] is None and body["response"] is None

    # Nobody else records a clinician-rated scale: a coordinator, or an unassigned rater.
    for who, reason in (
        (team.coordinator, "only a blinded rater assigned to the participant records it"),
        (other, "you are not a rater assigned to this participant"),
    ):
        refused = api(who, "POST", f"{path}/assessments", baseline | {"items": madrs(*[1] * 10)})
        assert refused.status_code in (404, 422), refused.get_json()
        if refused.status_code == 422:
            assert reason in refused.get_json()["error"]["message"]
    # A second baseline MADRS is a conflict; nothing was added by the refusals.
    again = api(rater, "POST", f"{path}/assessments", baseline | {"items": madrs(*[1] * 10)})
    assert again.status_code == 409

    # Cycle 1, 21 days after the dosing: 1+1+1+2+0+1+1+1+1+0 = 9: change -25, a response
    # (25 >= 17) and a remission (9 <= 10).
    target = _dosing_start(db_session, participant) + timedelta(days=21)
    if clock.now() < target:
        clock.advance_to(target + timedelta(hours=1))
    cycle_1 = {
        "timepoint": "cycle_1",
        "instrument": "madrs",
        "administered_at": target.isoformat(),
        "items": madrs(1, 1, 1, 2, 0, 1, 1, 1, 1, 0),
    }
    later = api(rater, "POST", f"{path}/assessments", cycle_1)
    assert later.status_code == 201, later.get_json()
    figures = later.get_json()
    assert (
        figures["total"],
        figures["baseline_total"],
        figures["change_from_baseline"],
        figures["response"],
        figures["remission"],
        figures["in_window"],
    ) == (9, 34, -25, True, True, True)

    # The outcomes report pools the same figures; a rater does not read reports.
    report = api(team.investigator, "GET", "/reports/outcomes")
    assert report.status_code == 200
    rows = {(r["instrument"], r["timepoint"]): r for r in report.get_json()["rows"]}
    assert report.get_json()["blinded"] is True
    assert rows[("madrs", "cycle_1")]["mean_change"] == -25.0
    assert rows[("madrs", "cycle_1")]["response_rate"] == 1.0
    assert api(rater, "GET", "/reports/outcomes").status_code == 403


def test_every_missing_or_out_of_range_item_is_listed_and_nothing_is_stored(
    study, db_session: Session, team: Team
) -> None:  # type: ignore[no-untyped-def]
    participant, (rater, _), api = study
    path = f"/participants/{participant.id}"
    api(team.investigator, "PUT", f"{path}/raters", {"raters": [rater.username]})
    items: dict[str, object] = madrs(*[2] * 10)
    del items["lassitude"]
    items["reduced_sleep"] = 9
    response = api(
        rater,
        "POST",
        f"{path}/assessments",
        {
            "timepoint": "baseline",
            "instrument": "madrs",
            "administered_at": _baseline_at(db_session, participant),
            "items": items,
        },
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == [
        "madrs item reduced_sleep (Reduced sleep) must be from 0 to 6; 9 was entered.",
        "madrs item lassitude (Lassitude) is missing.",
    ]
    listed = api(rater, "GET", f"{path}/assessments").get_json()
    assert listed["assessments"] == []


def test_self_report_by_the_team_windows_and_a_missed_timepoint(
    study, db_session: Session, team: Team
) -> None:  # type: ignore[no-untyped-def]
    participant, _, api = study
    path = f"/participants/{participant.id}"
    phq9 = dict(zip(PHQ9_CODES, [2, 2, 1, 3, 0, 1, 2, 0, 0], strict=True))
    # Ten days after the dosing is before cycle 1's window (21 days, 3 before and 7 after):
    # refused without a reason, recorded with one, and kept as outside its window.
    start = _dosing_start(db_session, participant)
    body = {
        "timepoint": "cycle_1",
        "instrument": "phq9",
        "administered_at": (start + timedelta(days=10)).isoformat(),
        "items": phq9,
    }
    refused = api(team.coordinator, "POST", f"{path}/assessments", body)
    assert refused.status_code == 422, refused.get_json()
    assert refused.get_json()["error"]["details"] == [
        f"After dosing cycle 1 is due from {start + timedelta(days=18):%Y-%m-%d} to "
        f"{start + timedelta(days=28):%Y-%m-%d}; an assessment on "
        f"{start + timedelta(days=10):%Y-%m-%d} is outside its window and needs a reason (it "
        "is recorded as a deviation)."
    ]
    body["reason"] = "Participant travelling during the window."
    recorded = api(team.coordinator, "POST", f"{path}/assessments", body)
    assert recorded.status_code == 201, recorded.get_json()
    # Hand-worked: 2+2+1+3+0+1+2+0+0 = 11, moderate (10-14).
    figures = recorded.get_json()
    assert (figures["total"], figures["band"], figures["in_window"]) == (11, "moderate", False)
    assert figures["reason"] == "Participant travelling during the window."

    # A timepoint whose anchor has not happened cannot be assessed yet.
    not_yet = api(
        team.coordinator,
        "POST",
        f"{path}/assessments",
        body | {"timepoint": "cycle_2", "administered_at": clock.now().isoformat()},
    )
    assert not_yet.status_code == 422
    assert "cannot be assessed yet" in not_yet.get_json()["error"]["message"]

    missed = api(
        team.coordinator,
        "POST",
        f"{path}/missed-timepoints",
        {"timepoint": "cycle_3", "reason": "Participant moved abroad."},
    )
    assert missed.status_code == 201, missed.get_json()
    assert missed.get_json()["status"] == "missed"
    record = api(team.coordinator, "GET", f"{path}/assessments").get_json()
    statuses = {t["code"]: t["status"] for t in record["timepoints"]}
    # Nothing was recorded at baseline, whose window closed at the first dosing; cycle 1 has
    # its PHQ-9 but not its MADRS or C-SSRS.
    assert statuses["baseline"] == "overdue"
    assert statuses["cycle_1"] == "not_yet"  # its window opens 18 days after the dosing
    assert statuses["cycle_3"] == "missed"


def test_a_rater_who_attended_a_session_is_not_blind(
    study, db_session: Session, team: Team
) -> None:  # type: ignore[no-untyped-def]
    participant, _, api = study
    therapist = (
        db_session.scalars(
            sa.select(TherapySession).where(TherapySession.participant_id == participant.id)
        )
        .first()
        .therapists[0]
    )  # type: ignore[union-attr]
    # The therapist becomes a rater (an admin's role change): they saw the sessions.
    therapist.role = "rater"
    db_session.commit()
    path = f"/participants/{participant.id}"
    refused = api(team.coordinator, "PUT", f"{path}/raters", {"raters": [therapist.username]})
    assert refused.status_code == 400
    assert "cannot rate them blind" in refused.get_json()["error"]["message"]
    # Assigned anyway (as a direct row), the service still refuses their MADRS.
    db_session.add(RaterAssignment(participant_id=participant.id, user_id=therapist.id))
    db_session.commit()
    response = api(
        therapist,
        "POST",
        f"{path}/assessments",
        {
            "timepoint": "baseline",
            "instrument": "madrs",
            "administered_at": _baseline_at(db_session, participant),
            "items": madrs(*[2] * 10),
        },
    )
    assert response.status_code == 422
    assert "you are not blind to their treatment" in response.get_json()["error"]["message"]


def test_a_rater_sees_the_timepoints_and_nothing_that_could_unblind_them(study, team: Team) -> None:  # type: ignore[no-untyped-def]
    participant, (rater, other), api = study
    path = f"/participants/{participant.id}"
    api(team.coordinator, "PUT", f"{path}/raters", {"raters": [rater.username]})
    record = api(rater, "GET", f"{path}/assessments")
    assert record.status_code == 200
    assert record.get_json()["participant"] == participant.study_id
    assert [t["code"] for t in record.get_json()["timepoints"]][:2] == ["baseline", "cycle_1"]
    for blocked in (
        f"{path}",
        f"{path}/sessions",
        f"{path}/adverse-events",
        f"{path}/notes",
        "/participants",
    ):
        assert api(rater, "GET", blocked).status_code in (403, 405), blocked
    # A rater not assigned to the participant does not see that it exists.
    assert api(other, "GET", f"{path}/assessments").status_code == 404


def _items(instrument: str, value: int) -> dict[str, int]:
    from tracker.protocol import load_protocol_file

    scale = load_protocol_file(MDD).instrument(instrument)
    return {item.code: min(value, item.maximum) for item in scale.items}


def test_who_stops_treatment_after_cycle_1_is_followed_up_to_12_months(
    study, db_session: Session, team: Team
) -> None:  # type: ignore[no-untyped-def]
    participant, (rater, _), api = study
    path = f"/participants/{participant.id}"
    api(team.coordinator, "PUT", f"{path}/raters", {"raters": [rater.username]})

    def move(name: str, **extra: object) -> Any:
        db_session.expire_all()
        version = db_session.get(Participant, participant.id).version  # type: ignore[union-attr]
        return api(
            team.investigator,
            "POST",
            f"{path}/transitions",
            {"transition": name, "expected_version": version, **extra},
        )

    # Stopping treatment needs a reason; with one, the participant is followed up.
    assert move("discontinue_treatment").status_code == 422
    stopped = move("discontinue_treatment", reason="Chose to stop the dosing sessions.")
    assert stopped.status_code == 201, stopped.get_json()
    assert stopped.get_json()["participant"]["state"] == "follow_up"

    # Not yet: the primary endpoint and the durability timepoints are open.
    early = move("complete_follow_up")
    assert early.status_code == 422
    assert "still open: Primary endpoint" in early.get_json()["error"]["message"]

    dosed = _dosing_start(db_session, participant)
    for code, days in (("primary_endpoint", 56), ("month_6", 182), ("month_12", 365)):
        moment = dosed + timedelta(days=days)
        clock.advance_to(moment + timedelta(hours=2))
        api.tokens.clear()  # tokens last 90 days: the team's are renewed meanwhile
        instruments = {"primary_endpoint": ["madrs", "phq9", "cssrs", "gad7"]}.get(
            code, ["madrs", "phq9", "cssrs"]
        )
        for instrument in instruments:
            who = rater if instrument in ("madrs", "cssrs") else team.coordinator
            recorded = api(
                who,
                "POST",
                f"{path}/assessments",
                {
                    "timepoint": code,
                    "instrument": instrument,
                    "administered_at": moment.isoformat(),
                    "items": _items(instrument, 1),
                },
            )
            assert recorded.status_code == 201, (code, instrument, recorded.get_json())
            assert recorded.get_json()["in_window"] is True
    record = api(rater, "GET", f"{path}/assessments").get_json()
    statuses = {t["code"]: t["status"] for t in record["timepoints"]}
    assert [statuses[c] for c in ("primary_endpoint", "month_6", "month_12")] == ["done"] * 3
    # cycle 2 and 3 never came: their timepoints do not apply, and do not hold follow-up open.
    assert statuses["cycle_2"] == statuses["cycle_3"] == "not_applicable"

    done = move("complete_follow_up")
    assert done.status_code == 201, done.get_json()
    assert done.get_json()["participant"]["state"] == "completed"
