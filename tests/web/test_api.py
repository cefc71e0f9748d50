from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.factories import FACTORY_ACTOR
from tracker.api.openapi import API_PREFIX
from tracker.auth.services import create_api_token, revoke_api_tokens, set_active


def _token(db_session: Session, user) -> str:  # type: ignore[no-untyped-def]
    raw = create_api_token(db_session, FACTORY_ACTOR, user)
    db_session.commit()
    return raw


def test_health_checks_the_database(client: FlaskClient) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_openapi_documents_every_api_route(app: Flask, client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (path, method.lower()) in documented, (path, method)
    audit = document["paths"][f"{API_PREFIX}/audit"]["get"]
    assert {p["name"] for p in audit["parameters"]} == {"after", "limit"}
    assert audit["x-permission"] == "audit.view"
    assert "Error" in document["components"]["schemas"]


def test_bearer_token_authenticates(client: FlaskClient, user_factory, db_session: Session) -> None:
    auditor = user_factory("auditor")
    raw = _token(db_session, auditor)
    response = client.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["ok"] is True and body["events"] >= 1 and len(body["head"]) == 64


def test_token_is_stored_hashed(user_factory, db_session: Session) -> None:
    from tracker.auth.models import ApiToken

    raw = _token(db_session, user_factory("auditor"))
    stored = db_session.query(ApiToken).order_by(ApiToken.id.desc()).first()
    assert stored is not None and raw not in (stored.token_hash, stored.prefix)


def test_wrong_revoked_or_disabled_tokens_get_401_json(
    client: FlaskClient, user_factory, db_session: Session
) -> None:
    auditor = user_factory("auditor")
    raw = _token(db_session, auditor)
    for header in ("Bearer trk_not-a-token", "Basic abc", "Bearer "):
        response = client.get("/api/v1/audit", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    revoke_api_tokens(db_session, FACTORY_ACTOR, auditor)
    db_session.commit()
    assert (
        client.get("/api/v1/audit", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
    )
    raw2 = _token(db_session, auditor)
    set_active(db_session, FACTORY_ACTOR, auditor, False, "left the study")
    db_session.commit()
    assert (
        client.get("/api/v1/audit", headers={"Authorization": f"Bearer {raw2}"}).status_code == 401
    )


def test_role_without_permission_gets_403_json(
    client: FlaskClient, user_factory, db_session: Session
) -> None:
    raw = _token(db_session, user_factory("coordinator"))
    response = client.get("/api/v1/audit", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_bad_query_is_a_400_naming_the_field(
    client: FlaskClient, user_factory, db_session: Session
) -> None:
    raw = _token(db_session, user_factory("auditor"))
    headers = {"Authorization": f"Bearer {raw}"}
    for query in ("limit=0", "limit=abc", "after=-1", "surprise=1"):
        response = client.get(f"/api/v1/audit?{query}", headers=headers)
        assert response.status_code == 400, query
        error = response.get_json()["error"]
        assert error["code"] == "invalid_input"
        assert error["details"][0]["field"] == query.split("=")[0]


def test_audit_read_pages_in_chain_order(
    client: FlaskClient, user_factory, db_session: Session
) -> None:
    raw = _token(db_session, user_factory("auditor"))
    headers = {"Authorization": f"Bearer {raw}"}
    first = client.get("/api/v1/audit?limit=1", headers=headers).get_json()
    assert [e["seq"] for e in first["events"]] == [1]
    assert first["next_after"] == 1
    second = client.get(
        f"/api/v1/audit?after={first['next_after']}&limit=1", headers=headers
    ).get_json()
    assert second["events"][0]["seq"] == 2
    assert second["events"][0]["prev_hash"] == first["events"][0]["hash"]


def test_unknown_api_route_and_method_are_json(client: FlaskClient) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    wrong = client.post("/api/v1/health")
    assert wrong.status_code == 405 and wrong.get_json()["error"]["code"] == "method_not_allowed"


def test_browser_session_changes_need_the_csrf_header(client: FlaskClient, signed_in) -> None:
    """A cookie-authenticated API change is refused without X-CSRFToken and accepted with it."""
    from tests.conftest import csrf_token

    signed_in("coordinator")
    body = {"site": "S01", "sex": "female", "year_of_birth": 1980}
    refused = client.post("/api/v1/participants", json=body)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "csrf_failed"
    token = csrf_token(client, "/")
    accepted = client.post("/api/v1/participants", json=body, headers={"X-CSRFToken": token})
    assert accepted.status_code == 201, accepted.get_json()
