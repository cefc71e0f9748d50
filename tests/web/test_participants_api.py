"""The participant routes of SPEC §7, end to end through the API with bearer tokens."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.factories import FACTORY_ACTOR, PASSWORD, make_user
from tracker.auth.services import create_api_token


@pytest.fixture
def api(client: FlaskClient, db_session: Session):  # type: ignore[no-untyped-def]
    """Tokens for one user of each role at S01 (plus a coordinator at S02)."""
    users = {
        role: make_user(db_session, role, "S01", username=f"api-{role}")
        for role in ("coordinator", "therapist", "investigator", "auditor", "admin")
    }
    users["other-site"] = make_user(db_session, "coordinator", "S02", username="api-other")
    tokens = {
        name: create_api_token(db_session, FACTORY_ACTOR, user) for name, user in users.items()
    }
    db_session.commit()

    def call(who: str, method: str, path: str, json: object | None = None):  # type: ignore[no-untyped-def]
        return client.open(
            f"/api/v1{path}",
            method=method,
            json=json,
            headers={"Authorization": f"Bearer {tokens[who]}"},
        )

    return call


def _enrol(api, therapists: list[str] | None = None) -> dict:  # type: ignore[no-untyped-def]
    response = api(
        "coordinator",
        "POST",
        "/participants",
        {"site": "S01", "sex": "female", "year_of_birth": 1985, "therapists": therapists or []},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


ALL_NO = {
    code: {"answer": "no"}
    for code in (
        "bipolar_i",
        "bipolar_ii",
        "bipolar_relative",
        "psychotic_disorder",
        "psychotic_depression",
        "psychotic_relative",
        "substance_use_disorder",
        "substance_remission",
        "mdma_adverse_reaction",
        "uncontrolled_hypertension",
        "coronary_disease",
        "arrhythmia",
        "qtc_prolongation",
        "structural_heart_disease",
        "controlled_hypertension",
        "cardiovascular_risk_factors",
        "pregnancy_or_breastfeeding",
        "contraindicated_medication",
        "suicidal_ideation",
        "hepatic_impairment",
        "low_body_weight",
    )
}


def test_protocol_is_served(api) -> None:  # type: ignore[no-untyped-def]
    body = api("therapist", "GET", "/protocol").get_json()
    assert body["code"] == "mdma-at" and body["version"] == "1" and len(body["content_hash"]) == 64
    assert body["definition"]


def test_enrol_and_read(api) -> None:  # type: ignore[no-untyped-def]
    created = _enrol(api, ["api-therapist"])
    assert created["study_id"].startswith("S01-") and created["state"] == "screening"
    assert created["phase"] == "screening_preparation" and created["version"] == 1
    assert created["eligibility"] == {
        "outcome": "incomplete",
        "reasons": created["eligibility"]["reasons"],
        "signed": False,
        "signature": None,
        "voided_signatures": [],
    }
    assert len(created["eligibility"]["reasons"]) == 21
    assert created["therapists"] == ["api-therapist"]
    detail = api("therapist", "GET", f"/participants/{created['id']}").get_json()
    assert len(detail["checklist"]) == 21 and detail["checklist"][0]["answer"] is None
    listing = api("auditor", "GET", "/participants?state=screening").get_json()
    assert created["id"] in [p["id"] for p in listing["participants"]]


def test_other_site_is_404_and_enrolling_there_is_403(api) -> None:  # type: ignore[no-untyped-def]
    created = _enrol(api)
    assert api("other-site", "GET", f"/participants/{created['id']}").status_code == 404
    response = api(
        "other-site", "POST", "/participants", {"site": "S01", "sex": "male", "year_of_birth": 1990}
    )
    assert response.status_code == 403


def test_unassigned_therapist_sees_nothing(api) -> None:  # type: ignore[no-untyped-def]
    created = _enrol(api)
    assert api("therapist", "GET", f"/participants/{created['id']}").status_code == 404
    assert api("therapist", "GET", "/participants").get_json()["total"] == 0
    response = api(
        "coordinator",
        "PUT",
        f"/participants/{created['id']}/therapists",
        {"therapists": ["api-therapist"]},
    )
    assert response.get_json() == {"therapists": ["api-therapist"]}
    assert api("therapist", "GET", f"/participants/{created['id']}").status_code == 200


def test_screening_to_preparation_through_the_api(api) -> None:  # type: ignore[no-untyped-def]
    pid = _enrol(api)["id"]
    answers = {**ALL_NO, "bipolar_ii": {"answer": "yes", "note": "hypomania 2012"}}
    body = api(
        "coordinator", "PUT", f"/participants/{pid}/checklist", {"answers": answers}
    ).get_json()
    assert body["eligibility"]["outcome"] == "incomplete"
    assert (
        api(
            "coordinator",
            "POST",
            f"/participants/{pid}/checklist/assessments",
            {"item": "bipolar_ii", "acceptable": True, "rationale": "stable"},
        ).status_code
        == 403
    )
    response = api(
        "investigator",
        "POST",
        f"/participants/{pid}/checklist/assessments",
        {"item": "bipolar_ii", "acceptable": True, "rationale": "stable for 10 years"},
    )
    assert (
        response.status_code == 201 and response.get_json()["eligibility"]["outcome"] == "eligible"
    )
    wrong = api(
        "investigator",
        "POST",
        f"/participants/{pid}/checklist/signature",
        {"password": "not-it", "meaning": "I confirm"},
    )
    assert wrong.status_code == 422
    signed = api(
        "investigator",
        "POST",
        f"/participants/{pid}/checklist/signature",
        {"password": PASSWORD, "meaning": "I confirm eligibility"},
    )
    assert signed.status_code == 201 and signed.get_json()["printed_name"].startswith(
        "Test Investigator "
    )

    options = api("coordinator", "GET", f"/participants/{pid}/allowed-transitions").get_json()
    confirm = next(o for o in options["transitions"] if o["transition"] == "confirm_eligibility")
    assert (
        not confirm["allowed"]
        and len(confirm["reasons"]) == 1
        and "onsent" in confirm["reasons"][0]
    )

    today = datetime.now(UTC).date().isoformat()
    assert (
        api(
            "coordinator",
            "POST",
            f"/participants/{pid}/consent",
            {"version": "ICF v2", "signed_on": today},
        ).status_code
        == 201
    )
    applied = api(
        "coordinator",
        "POST",
        f"/participants/{pid}/transitions",
        {"transition": "confirm_eligibility", "expected_version": 1},
    )
    assert applied.status_code == 201, applied.get_json()
    body = applied.get_json()
    assert body["participant"]["state"] == "preparation" and body["participant"]["version"] == 2
    assert body["transition"]["from_state"] == "screening" and body["deviations"] == []
    history = api("auditor", "GET", f"/participants/{pid}/transitions").get_json()["transitions"]
    assert [t["transition"] for t in history] == ["confirm_eligibility"]


def test_refusal_is_422_with_every_reason_and_stale_version_is_409(api) -> None:  # type: ignore[no-untyped-def]
    pid = _enrol(api)["id"]
    refused = api(
        "coordinator",
        "POST",
        f"/participants/{pid}/transitions",
        {"transition": "confirm_eligibility", "expected_version": 1},
    )
    assert refused.status_code == 422
    error = refused.get_json()["error"]
    assert error["code"] == "rule_violation" and len(error["details"]) == 3
    held = api(
        "coordinator",
        "POST",
        f"/participants/{pid}/transitions",
        {"transition": "place_on_hold", "expected_version": 1, "reason": "pause"},
    )
    assert held.status_code == 201
    stale = api(
        "coordinator",
        "POST",
        f"/participants/{pid}/transitions",
        {
            "transition": "withdraw",
            "expected_version": 1,
            "reason": "x",
            "withdrawal_category": "other",
        },
    )
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "conflict"
    assert api("auditor", "GET", f"/participants/{pid}").get_json()["state"] == "on_hold"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"site": "S01", "sex": "female", "year_of_birth": 1985, "name": "A Person"}, "name"),
        ({"site": "S01", "sex": "robot", "year_of_birth": 1985}, "sex"),
        ({"site": "S01", "sex": "female", "year_of_birth": "old"}, "year_of_birth"),
        ({"sex": "female", "year_of_birth": 1985}, "site"),
    ],
)
def test_malformed_enrolment_is_400_naming_the_field(api, body: dict, field: str) -> None:  # type: ignore[no-untyped-def]
    response = api("coordinator", "POST", "/participants", body)
    assert response.status_code == 400
    assert [d["field"] for d in response.get_json()["error"]["details"]] == [field]


def test_broken_json_and_wrong_content_type_are_400(client: FlaskClient, api) -> None:  # type: ignore[no-untyped-def]
    response = api("coordinator", "POST", "/participants", None)
    assert response.status_code == 400
    assert "JSON" in response.get_json()["error"]["message"]


ROLE_MATRIX = [
    # (method, path template, body, the roles allowed past the permission check)
    ("GET", "/participants", None, {"coordinator", "therapist", "investigator", "auditor"}),
    (
        "POST",
        "/participants",
        {"site": "S01", "sex": "male", "year_of_birth": 1980},
        {"coordinator", "investigator"},
    ),
    (
        "PUT",
        "/participants/{id}/checklist",
        {"answers": {"bipolar_i": {"answer": "no"}}},
        {"coordinator", "investigator"},
    ),
    (
        "POST",
        "/participants/{id}/consent",
        {"version": "v1", "signed_on": "2026-01-01"},
        {"coordinator", "investigator"},
    ),
    ("PUT", "/participants/{id}/therapists", {"therapists": []}, {"coordinator", "investigator"}),
]


@pytest.mark.parametrize("role", ["coordinator", "therapist", "investigator", "auditor", "admin"])
def test_role_matrix_on_participant_routes(api, role: str) -> None:  # type: ignore[no-untyped-def]
    pid = _enrol(api, ["api-therapist"])["id"]
    for method, template, body, allowed in ROLE_MATRIX:
        response = api(role, method, template.format(id=pid), body)
        if role in allowed:
            assert response.status_code < 300, (role, method, template, response.get_json())
        else:
            assert response.status_code == 403, (role, method, template, response.status_code)


@pytest.mark.parametrize(
    ("path", "who"),
    [("/participants?state=nonsense", "coordinator"), ("/reports/compliance?state=x", "auditor")],
)
def test_an_unknown_state_filter_is_400_naming_the_field(api, path: str, who: str) -> None:  # type: ignore[no-untyped-def]
    # The state column is an enumeration: an unknown value must be refused before the query.
    response = api(who, "GET", path)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert [d["field"] for d in response.get_json()["error"]["details"]] == ["state"]
    assert api(who, "GET", path.split("=")[0] + "=screening").status_code == 200
