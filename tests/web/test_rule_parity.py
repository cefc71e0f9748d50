"""Rules that lived in one interface only now live in the services, so the pages and the API
give the same answer."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, login
from tests.factories import FACTORY_ACTOR, make_site, make_user
from tracker import clock
from tracker.auth.services import actor_for, create_api_token
from tracker.dosing.models import DoseAdministration
from tracker.errors import PermissionDenied
from tracker.histories import protocol_history, run_histories
from tracker.participants.services import enrol_participant
from tracker.sessions.models import TherapySession

ONLY_INVESTIGATORS = "Only an investigator can document why a supplemental dose is safe"


def test_the_service_enrols_only_at_the_users_own_site(db_session: Session) -> None:
    coordinator = make_user(db_session, "coordinator", "S01")
    elsewhere = make_site(db_session, "S02")
    with pytest.raises(PermissionDenied, match=r"only at your site \(S01\)"):
        enrol_participant(
            db_session,
            actor_for(coordinator),
            site=elsewhere,
            sex="female",
            year_of_birth=1980,
        )


@pytest.fixture
def dosing_now(db_session: Session, team):  # type: ignore[no-untyped-def]
    run_histories([protocol_history(db_session, team, random.Random(8), "dosing_in_progress")])
    row = db_session.scalars(
        sa.select(TherapySession)
        .where(TherapySession.kind == "dosing", TherapySession.status == "scheduled")
        .order_by(TherapySession.id.desc())
    ).first()
    assert row is not None and row.started_at is not None
    therapist = row.therapists[0]
    token = create_api_token(db_session, FACTORY_ACTOR, therapist)
    db_session.commit()
    return row, therapist, token


def _doses(session: Session, row: TherapySession) -> int:
    session.expire_all()
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(DoseAdministration)
            .where(DoseAdministration.session_id == row.id)
        )
        or 0
    )


def test_a_therapists_breach_justification_is_refused_by_the_page_and_the_api_alike(
    client: FlaskClient, db_session: Session, dosing_now
) -> None:
    row, therapist, token = dosing_now
    before = _doses(db_session, row)
    moment = clock.now().replace(microsecond=0)
    api = client.post(
        f"/api/v1/sessions/{row.id}/doses",
        json={
            "administered_at": moment.isoformat(),
            "amount_mg": 60,
            "kind": "supplemental",
            "breach_justification": "looks fine to me",
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 400 and ONLY_INVESTIGATORS in api.get_json()["error"]["message"]

    assert login(client, therapist.username).status_code == 302
    page_path = f"/sessions/{row.id}"
    page = client.post(
        f"{page_path}/doses",
        data={
            "dose-csrf_token": csrf_token(client, page_path),
            "dose-administered_at": moment.strftime("%Y-%m-%dT%H:%M"),
            "dose-amount_mg": "60",
            "dose-kind": "supplemental",
            "dose-breach_justification": "looks fine to me",
        },
    )
    assert page.status_code == 400
    assert ONLY_INVESTIGATORS in page.get_data(as_text=True)
    assert _doses(db_session, row) == before


def test_an_unknown_report_filter_is_refused_by_page_api_job_and_command_alike(
    app, client: FlaskClient, user_factory, db_session: Session, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """One rule (``ReportFilter.checked``): an unknown state is a 400 naming it, never a
    report filtered down to nothing. The command line refused nothing before."""
    from tracker.errors import InvalidInput
    from tracker.jobs import services as jobs

    auditor = user_factory("auditor")
    token = create_api_token(db_session, FACTORY_ACTOR, auditor)
    db_session.commit()
    login(client, auditor.username)

    page = client.get("/reports/compliance?state=dreaming")
    assert page.status_code == 400
    assert "Unknown state &#39;dreaming&#39;." in page.get_data(as_text=True)

    api = client.get(
        "/api/v1/reports/compliance?check=no_such_check",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 400
    assert api.get_json()["error"]["message"] == "Unknown check 'no_such_check'."

    with pytest.raises(InvalidInput, match="Unknown state 'dreaming'"):
        jobs.request_job(
            db_session, actor_for(auditor), auditor, "compliance_pdf", {"state": "dreaming"}
        )

    output = tmp_path / "report.csv"
    result = app.test_cli_runner().invoke(
        args=["report", "compliance", "--format", "csv", "-o", str(output), "--state", "dreaming"]
    )
    assert result.exit_code == 1
    assert "Unknown state 'dreaming'." in result.output
    assert not output.exists()
