"""My exports in the browser and the API: a compliance PDF above the browser's cap becomes
"Prepare the PDF" (a POST with its CSRF token), the job is listed with its state and, once a
worker made it, a download that only its requester gets; a blinded investigator's file holds
no arm."""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, login
from tests.factories import (
    FACTORY_ACTOR,
    keep_ledger,
    make_user,
    randomised_depression_study,
)
from tracker.audit.models import AuditEvent
from tracker.auth.services import create_api_token
from tracker.db import get_database
from tracker.histories import protocol_history, run_histories
from tracker.jobs import worker
from tracker.jobs.models import ExportJob
from tracker.outcome_histories import OutcomePlan, outcome_history
from tracker.randomisation.models import RandomisationEntry


def _study(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    team, _ = keep_ledger(db_session, team)
    rng = random.Random(21)
    run_histories(
        [
            protocol_history(db_session, team, rng, "completed"),
            protocol_history(db_session, team, rng, "preparation"),
            protocol_history(db_session, team, rng, "preparation"),
        ]
    )
    db_session.commit()


def _work(app: Flask) -> str:
    with app.app_context():
        outcome = worker.run_next(
            get_database(app), worker.exports_folder(), worker.kept_for(), "test-worker"
        )
    assert outcome is not None
    return outcome.state


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker.reports import views

    monkeypatch.setattr(views, "WEB_PDF_MAX_PARTICIPANTS", 2)


def test_prepare_the_pdf_then_download_it_from_my_exports(
    app: Flask, client: FlaskClient, db_session: Session, team, signed_in, small_cap
) -> None:  # type: ignore[no-untyped-def]
    _study(db_session, team)
    auditor = signed_in("auditor")
    page = client.get("/reports/compliance?failures=1").get_data(as_text=True)
    assert "Prepare the PDF" in page and "Download PDF" not in page
    assert 'action="/exports/jobs/compliance-pdf"' in page
    assert 'name="failures" value="1"' in page
    # The same size in the request is refused, naming the way round.
    refused = client.get("/reports/compliance.pdf")
    assert refused.status_code == 422 and "Prepare the PDF" in refused.get_data(as_text=True)
    # Without its CSRF token the form does nothing.
    assert client.post("/exports/jobs/compliance-pdf", data={}).status_code == 400
    assert db_session.scalar(sa.select(sa.func.count()).select_from(ExportJob)) == 0

    queued = client.post(
        "/exports/jobs/compliance-pdf",
        data={"csrf_token": csrf_token(client, "/reports/compliance"), "state": "completed"},
    )
    assert queued.status_code == 302 and queued.headers["Location"].endswith("/exports/jobs/")
    listing = client.get("/exports/jobs/").get_data(as_text=True)
    assert "waiting" in listing and "state completed" in listing
    assert 'http-equiv="refresh"' in listing  # follows the job without a script
    job = db_session.scalars(sa.select(ExportJob)).one()
    assert job.requested_by_id == auditor.id and job.parameters == {"state": "completed"}

    assert _work(app) == "done"
    listing = client.get("/exports/jobs/").get_data(as_text=True)
    link = f"/exports/jobs/{job.id}/file"
    assert "ready" in listing and link in listing and 'http-equiv="refresh"' not in listing
    response = client.get(link)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(response.data)).pages)
    assert "S01-0001" in text
    downloads = db_session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "export_job.download")
    ).all()
    assert [(e.actor, e.entity_id) for e in downloads] == [(auditor.username, str(job.id))]


def test_only_the_requester_gets_the_file(
    app: Flask, client: FlaskClient, db_session: Session, team, signed_in
) -> None:  # type: ignore[no-untyped-def]
    _study(db_session, team)
    signed_in("auditor")
    client.post(
        "/exports/jobs/compliance-pdf",
        data={"csrf_token": csrf_token(client, "/reports/compliance")},
    )
    job = db_session.scalars(sa.select(ExportJob)).one()
    assert _work(app) == "done"
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    # Another auditor (who could export the same report) neither sees nor fetches it.
    other = make_user(db_session, "auditor", None)
    db_session.commit()
    assert login(client, other.username).status_code == 302
    assert f"/exports/jobs/{job.id}/file" not in client.get("/exports/jobs/").get_data(as_text=True)
    assert client.get(f"/exports/jobs/{job.id}/file").status_code == 404
    token = create_api_token(db_session, FACTORY_ACTOR, other)
    db_session.commit()
    api = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/v1/exports/jobs/{job.id}", headers=api).status_code == 404
    assert client.get(f"/api/v1/exports/jobs/{job.id}/file", headers=api).status_code == 404
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    # A coordinator may neither ask for one nor open the page.
    coordinator = make_user(db_session, "coordinator", "S01")
    db_session.commit()
    assert login(client, coordinator.username).status_code == 302
    token_field = csrf_token(client, "/")
    assert (
        client.post("/exports/jobs/compliance-pdf", data={"csrf_token": token_field}).status_code
        == 403
    )
    assert client.get("/exports/jobs/").status_code == 403
    downloads = sa.select(sa.func.count()).where(AuditEvent.action == "export_job.download")
    assert db_session.scalar(downloads) == 0


def test_the_api_queues_follows_and_fetches(
    app: Flask, client: FlaskClient, db_session: Session, team
) -> None:  # type: ignore[no-untyped-def]
    _study(db_session, team)
    investigator = team.investigator
    token = create_api_token(db_session, FACTORY_ACTOR, investigator)
    db_session.commit()
    api = {"Authorization": f"Bearer {token}"}
    refused = client.post(
        "/api/v1/exports/jobs",
        json={"kind": "compliance_pdf", "parameters": {"check": "C99"}},
        headers=api,
    )
    assert refused.status_code == 400
    unknown = client.post("/api/v1/exports/jobs", json={"kind": "casebook"}, headers=api)
    assert unknown.status_code == 400
    # A data-exchange export takes a site and nothing of the report's filter.
    mixed = client.post(
        "/api/v1/exports/jobs",
        json={"kind": "odm", "parameters": {"state": "completed"}},
        headers=api,
    )
    assert mixed.status_code == 400 and "state" in mixed.get_json()["error"]["message"]
    made = client.post(
        "/api/v1/exports/jobs",
        json={"kind": "compliance_pdf", "parameters": {"site": "s01", "failures_only": True}},
        headers=api,
    )
    assert made.status_code == 202, made.get_json()
    job = made.get_json()
    assert job["state"] == "queued" and job["download"] is None
    assert job["parameters"] == {"site": "S01", "failures_only": True}
    early = client.get(f"/api/v1/exports/jobs/{job['id']}/file", headers=api)
    assert early.status_code == 409
    assert _work(app) == "done"
    status = client.get(f"/api/v1/exports/jobs/{job['id']}", headers=api).get_json()
    assert status["state"] == "done" and status["download"].endswith(f"/{job['id']}/file")
    assert len(status["sha256"]) == 64 and status["size"] > 1000
    listed = client.get("/api/v1/exports/jobs", headers=api).get_json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]
    pdf = client.get(status["download"], headers=api)
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    # Expired: the file is gone, the job stays.
    from datetime import timedelta

    from tracker import clock

    clock.travel(timedelta(hours=73))
    with app.app_context():
        assert worker.expire(get_database(app), worker.exports_folder()) == 1
    gone = client.get(status["download"], headers=api)
    assert gone.status_code == 410 and gone.get_json()["error"]["code"] == "gone"
    after = client.get(f"/api/v1/exports/jobs/{job['id']}", headers=api).get_json()
    assert after["expired"] is True and after["download"] is None
    document = client.get("/api/v1/openapi.json").get_json()
    assert {"/api/v1/exports/jobs", "/api/v1/exports/jobs/{job_id}/file"} <= set(document["paths"])


ARMS = ("midomafetamine", "active_placebo")
LABELS = ("Midomafetamine (MDMA) 120 mg + 60 mg", "Active placebo (methylphenidate 20 mg)")
CONCEALED = re.compile("|".join(re.escape(t) for t in (*ARMS, *LABELS)), re.IGNORECASE)


def test_a_blinded_investigators_file_holds_no_arm(
    app: Flask, client: FlaskClient, db_session: Session, team, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    *_, rater = randomised_depression_study(db_session)
    run_histories(
        [
            outcome_history(
                db_session, team, rater, random.Random(seed), OutcomePlan(trajectory, "completed")
            )
            for seed, trajectory in ((4, "responder"), (5, "partial"))
        ]
    )
    db_session.commit()
    allocated = db_session.scalar(
        sa.select(sa.func.count())
        .select_from(RandomisationEntry)
        .where(RandomisationEntry.participant_id.is_not(None))
    )
    assert allocated == 2
    token = create_api_token(db_session, FACTORY_ACTOR, team.investigator)
    db_session.commit()
    api = {"Authorization": f"Bearer {token}"}
    made = client.post("/api/v1/exports/jobs", json={"kind": "compliance_pdf"}, headers=api)
    assert made.status_code == 202
    assert _work(app) == "done"
    pdf = client.get(f"/api/v1/exports/jobs/{made.get_json()['id']}/file", headers=api)
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "S01-0001" in text and "Blinding" in text
    assert CONCEALED.search(text) is None


def test_past_the_download_cap_the_data_exchange_page_prepares_each_export(
    app: Flask,
    client: FlaskClient,
    db_session: Session,
    team,
    signed_in,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    from tracker.exchange import downloads

    _study(db_session, team)
    monkeypatch.setattr(downloads, "WEB_EXPORT_MAX_PARTICIPANTS", 2)
    signed_in("auditor")
    page = client.get("/exports/").get_data(as_text=True)
    assert "Download ODM (XML)" not in page
    for label in ("Prepare ODM (XML)", "Prepare SAS XPORT v5", "Prepare the study bundle"):
        assert label in page
    assert "My exports" in page
    token = csrf_token(client, "/exports/")
    queued = client.post(
        "/exports/jobs/exchange", data={"kind": "sdtm_xpt", "site": "S01", "csrf_token": token}
    )
    assert queued.status_code == 302 and queued.headers["Location"].endswith("/exports/jobs/")
    assert "SDTM, SAS XPORT (ZIP)" in client.get("/exports/jobs/").get_data(as_text=True)
    assert _work(app) == "done"
    refused = client.post(
        "/exports/jobs/exchange", data={"kind": "compliance_pdf", "csrf_token": token}
    )
    assert refused.status_code == 400
