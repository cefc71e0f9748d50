"""The drug ledger in the API and on the pages (SPEC §12): the pharmacist's registration, lot
and entries through the API with the spec's fields and status codes; a refusal is a 4xx with
the figures that changes nothing; the pages and the accountability log (a PDF a real reader
opens) for the pharmacist; a blinded coordinator reads an arm-bound lot without its product,
lot number or dispensings."""

from __future__ import annotations

import io
from datetime import timedelta

from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, login
from tests.factories import FACTORY_ACTOR, make_user
from tracker import clock
from tracker.audit.services import Actor
from tracker.auth.services import create_api_token
from tracker.histories import Team
from tracker.paths import FIXTURES
from tracker.study.services import activate_protocol


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_ledger_through_the_api_and_the_pages(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    activate_protocol(
        db_session,
        Actor.system(),
        (FIXTURES / "protocols" / "mdma-mdd-v2.toml").read_text(encoding="utf-8"),
    )
    pharmacist = make_user(db_session, "pharmacist", "S01", username="pharm")
    token = create_api_token(db_session, FACTORY_ACTOR, pharmacist)
    coordinator = create_api_token(db_session, FACTORY_ACTOR, team.coordinator)
    db_session.commit()
    api = _headers(token)
    when = (clock.now() - timedelta(hours=1)).isoformat()

    lot = {
        "site": "S01",
        "product": "Placebo capsules matched to 20 mg",
        "lot": "PLC-77",
        "strength_mg": 20,
        "expires_on": "2030-06-30",
        "arm": "active_placebo",
    }
    refused = client.post("/api/v1/inventory/lots", json=lot, headers=api)
    assert refused.status_code == 400
    assert "no DEA registration" in refused.get_json()["error"]["message"]
    registered = client.post(
        "/api/v1/inventory/sites/S01/registration",
        json={"number": "RS1234563", "registrant": "S01 pharmacy", "expires_on": "2030-01-01"},
        headers=api,
    )
    assert registered.status_code == 201
    created = client.post("/api/v1/inventory/lots", json=lot, headers=api)
    assert created.status_code == 201, created.get_json()
    lot_id = created.get_json()["id"]
    assert created.get_json()["arm"] == "active_placebo"

    entries = f"/api/v1/inventory/lots/{lot_id}/entries"
    receipt = client.post(
        entries,
        json={
            "kind": "receipt",
            "units": 12,
            "occurred_at": when,
            "dea_form_222": "221000777",
            "witness": team.coordinator.username,
        },
        headers=api,
    )
    assert receipt.status_code == 201 and receipt.get_json()["balance"] == 12
    loss = client.post(
        entries,
        json={"kind": "loss", "units": 13, "occurred_at": when, "description": "dropped"},
        headers=api,
    )
    assert loss.status_code == 422
    assert "balance is 12 units" in loss.get_json()["error"]["message"]
    count = client.post(
        entries, json={"kind": "count", "counted_units": 11, "occurred_at": when}, headers=api
    )
    assert count.status_code == 201
    not_a_pharmacist = client.post(
        entries,
        json={"kind": "count", "counted_units": 11, "occurred_at": when},
        headers=_headers(coordinator),
    )
    assert not_a_pharmacist.status_code == 403

    ledger = client.get(f"/api/v1/inventory/lots/{lot_id}", headers=api).get_json()
    assert ledger["balance"] == 12
    assert [e["kind"] for e in ledger["entries"]] == ["receipt", "count"]
    assert ledger["entries"][1]["discrepancy"] == -1 and ledger["open_discrepancies"]

    blinded = client.get(f"/api/v1/inventory/lots/{lot_id}", headers=_headers(coordinator))
    text = blinded.get_data(as_text=True)
    assert blinded.status_code == 200
    assert "Placebo" not in text and "PLC-77" not in text and "active_placebo" not in text

    login(client, "pharm")
    for path in (
        "/inventory/",
        f"/inventory/lots/{lot_id}",
        f"/inventory/lots/{lot_id}/log",
        "/inventory/reconciliation",
    ):
        page = client.get(path)
        assert page.status_code == 200, path
    assert "PLC-77" in client.get(f"/inventory/lots/{lot_id}/log").get_data(as_text=True)
    pdf = client.get(f"/inventory/lots/{lot_id}/log?format=pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    reader = PdfReader(io.BytesIO(pdf.data))
    first = reader.pages[0].extract_text()
    assert "accountability log" in first and "PLC-77" in first and "221000777" in first

    # A refused entry on the page keeps the form open with the figures, and writes nothing.
    form = f"/inventory/lots/{lot_id}/entries/loss"
    answer = client.post(
        form,
        data={
            "csrf_token": csrf_token(client, f"/inventory/lots/{lot_id}"),
            "loss-occurred_at": clock.now().strftime("%Y-%m-%dT%H:%M"),
            "loss-units": "50",
            "loss-description": "dropped",
        },
    )
    assert answer.status_code == 422
    assert "balance is 12 units" in answer.get_data(as_text=True)
    after = client.get(f"/api/v1/inventory/lots/{lot_id}", headers=api).get_json()
    assert len(after["entries"]) == 2
