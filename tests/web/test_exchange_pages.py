"""The data-exchange page and its downloads, as the roles that have them see them."""

from __future__ import annotations

import io
import random
import zipfile

import sqlalchemy as sa
import xmlschema
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.integration.test_data_exchange import ODM_XSD
from tracker.audit.models import AuditEvent
from tracker.histories import protocol_history, run_histories
from tracker.participants.models import Participant


def _study(db_session: Session, team) -> Participant:  # type: ignore[no-untyped-def]
    run_histories([protocol_history(db_session, team, random.Random(5), "completed")])
    db_session.commit()
    participant = db_session.scalars(sa.select(Participant)).first()
    assert participant is not None
    return participant


def _exports(db_session: Session) -> list[AuditEvent]:
    return list(db_session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "data.export")))


def test_the_page_offers_every_standard_and_says_what_it_holds(
    client: FlaskClient,
    db_session: Session,
    signed_in,
    team,  # type: ignore[no-untyped-def]
) -> None:
    _study(db_session, team)
    signed_in("auditor")
    page = client.get("/exports/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for label in ("Download ODM (XML)", "SAS XPORT v5", "Dataset-JSON", "CSV", "study bundle"):
        assert label in text
    assert "blinded" in text and "every site" in text
    assert 'name="site"' in text  # a study-wide reader may choose a site


def test_the_downloads_are_the_exports_and_are_on_record(
    client: FlaskClient,
    db_session: Session,
    signed_in,
    team,  # type: ignore[no-untyped-def]
) -> None:
    participant = _study(db_session, team)
    signed_in("investigator", site="S01")
    odm = client.get("/exports/odm.xml")
    assert odm.status_code == 200
    assert list(xmlschema.XMLSchema(str(ODM_XSD)).iter_errors(io.BytesIO(odm.data))) == []
    zipped = client.get("/exports/sdtm-csv.zip")
    assert zipped.status_code == 200
    with zipfile.ZipFile(io.BytesIO(zipped.data)) as archive:
        assert "mdma-at/dm.csv" in archive.namelist()
        assert participant.study_id in archive.read("mdma-at/dm.csv").decode()
    bundle = client.get(f"/exports/fhir/{participant.study_id}.json")
    assert bundle.status_code == 200 and bundle.get_json()["type"] == "collection"
    assert client.get("/exports/sdtm-sas.zip").status_code == 400
    assert [e.entity_type for e in _exports(db_session)] == ["odm", "sdtm", "fhir"]


def test_the_participant_page_links_its_bundle_for_exporters_only(
    client: FlaskClient,
    db_session: Session,
    signed_in,
    team,  # type: ignore[no-untyped-def]
) -> None:
    participant = _study(db_session, team)
    signed_in("coordinator", site="S01")
    page = client.get(f"/participants/{participant.id}").get_data(as_text=True)
    assert "FHIR bundle" not in page
    assert client.get("/exports/").status_code == 403


def test_the_participant_page_links_its_bundle_for_an_investigator(
    client: FlaskClient,
    db_session: Session,
    signed_in,
    team,  # type: ignore[no-untyped-def]
) -> None:
    participant = _study(db_session, team)
    signed_in("investigator", site="S01")
    page = client.get(f"/participants/{participant.id}").get_data(as_text=True)
    assert f"/exports/fhir/{participant.study_id}.json" in page


def test_an_export_too_large_to_download_is_refused_and_not_recorded(
    client: FlaskClient,
    db_session: Session,
    signed_in,
    team,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    from tracker.exchange import downloads

    _study(db_session, team)
    monkeypatch.setattr(downloads, "WEB_EXPORT_MAX_PARTICIPANTS", 0)
    signed_in("auditor")
    response = client.get("/api/v1/exports/odm")
    assert response.status_code == 422
    assert "tracker export" in response.get_json()["error"]["message"]
    assert _exports(db_session) == []
