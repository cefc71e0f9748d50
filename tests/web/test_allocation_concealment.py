"""Randomisation through the API and allocation concealment (SPEC §11).

200 participants at two sites, with a moderate or a severe baseline MADRS (four strata), are
randomised through ``POST /api/v1/participants/<id>/randomisation``. The test checks the
balance in every stratum, that the audit trail records each allocation without its arm, and
that no response a blinded role can get (every GET route of the app, the compliance CSV, JSON
and PDF, the audit CSV, the refusals) names an arm's code or label; the unblinded roles do
see the arms."""

from __future__ import annotations

import io
import random
import re
from collections import Counter, defaultdict

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy.orm import Session

from tests.conftest import login
from tests.factories import FACTORY_ACTOR, actor, make_team, make_user
from tests.web.test_route_permissions import PATH_PARAMETER, routes
from tracker import clock
from tracker.audit.models import AuditEvent
from tracker.audit.services import Actor
from tracker.auth.services import create_api_token
from tracker.histories import Team, protocol_history, run_histories
from tracker.outcome_histories import spread
from tracker.outcomes.services import record_assessment, set_raters
from tracker.participants.models import Participant
from tracker.paths import FIXTURES
from tracker.randomisation import services
from tracker.sessions.models import TherapySession
from tracker.study.services import activate_protocol, definition_of

ARMS = ("midomafetamine", "active_placebo")
LABELS = ("Midomafetamine (MDMA) 120 mg + 60 mg", "Active placebo (methylphenidate 20 mg)")
# "Midomafetamine" would be found inside the first label's code: search both, any case.
CONCEALED = re.compile("|".join(re.escape(t) for t in (*ARMS, *LABELS)), re.IGNORECASE)
# The protocol document lists the arms (SPEC §10: the active version with its arms' codes), and
# the guess form offers them as answers; neither names an allocation.
PROTOCOL_DOCUMENTS = {
    "/api/v1/protocol",
    "/admin/protocols",
    "/participants/<int:participant_id>/blinding-guesses",
}
PER_SITE = 100
BLINDED = ("coordinator", "therapist", "investigator", "rater", "auditor", "admin")


@pytest.fixture
def randomised(client: FlaskClient, db_session: Session):  # type: ignore[no-untyped-def]
    version = activate_protocol(
        db_session,
        Actor.system(),
        (FIXTURES / "protocols" / "mdma-mdd-v2.toml").read_text(encoding="utf-8"),
    )
    teams = {site: make_team(db_session, site) for site in ("S01", "S02")}
    raters = {site: make_user(db_session, "rater", site) for site in teams}
    statistician = make_user(db_session, "statistician", None)
    services.generate_for(db_session, actor(statistician), version, per_stratum=60, seed=7)
    protocol = definition_of(version)
    madrs = protocol.instrument("madrs")
    rng = random.Random(3)
    histories = [
        protocol_history(db_session, team, random.Random(i), "preparation", notes=False)
        for team in teams.values()
        for i in range(PER_SITE)
    ]
    run_histories(histories)
    participants = list(db_session.scalars(sa.select(Participant).order_by(Participant.id)))
    assert len(participants) == 2 * PER_SITE
    for index, participant in enumerate(participants):
        site = participant.site.code
        set_raters(db_session, teams[site].as_coordinator, participant, [raters[site].username])
        total = 26 if index % 2 else 41  # moderate (20-34) or severe (35-60)
        record_assessment(
            db_session,
            actor(raters[site]),
            participant,
            timepoint="baseline",
            instrument="madrs",
            administered_at=clock.now(),
            items=spread(madrs, total, rng),
        )
    tokens = {
        site: create_api_token(db_session, FACTORY_ACTOR, t.coordinator)
        for site, t in teams.items()
    }
    db_session.commit()

    numbers: dict[int, dict[str, str]] = {}
    for participant in participants:
        headers = {"Authorization": f"Bearer {tokens[participant.site.code]}"}
        current = client.get(f"/api/v1/participants/{participant.id}", headers=headers).get_json()
        assert "arm" not in current
        response = client.post(
            f"/api/v1/participants/{participant.id}/randomisation",
            json={"expected_version": current["version"]},
            headers=headers,
        )
        assert response.status_code == 201, response.get_json()
        numbers[participant.id] = response.get_json()
        assert set(numbers[participant.id]) == {"randomisation_number", "stratum", "randomised_at"}
        # Randomising twice is refused, and the refusal names no arm.
        again = client.post(
            f"/api/v1/participants/{participant.id}/randomisation",
            json={"expected_version": current["version"] + 1},
            headers=headers,
        )
        assert again.status_code == 409 and not CONCEALED.search(again.get_data(as_text=True))
    return teams, raters, statistician, participants, numbers


def test_two_hundred_randomised_through_the_api(
    app: Flask, db_session: Session, randomised
) -> None:  # type: ignore[no-untyped-def]
    """One study (it takes a while to build) for both halves: balance and audit, then
    concealment."""
    _balanced_and_audited(db_session, randomised)
    _concealed(app, db_session, randomised)


def _balanced_and_audited(db_session: Session, randomised) -> None:  # type: ignore[no-untyped-def]
    numbers = randomised[-1]
    strata = Counter(n["stratum"] for n in numbers.values())
    assert strata == {
        "S01|moderate": 50,
        "S01|severe": 50,
        "S02|moderate": 50,
        "S02|severe": 50,
    }
    assert len({n["randomisation_number"] for n in numbers.values()}) == 200
    arms: dict[str, list[str]] = defaultdict(list)
    for _study_id, stratum, arm in db_session.execute(
        sa.text(
            "SELECT p.study_id, e.stratum, e.arm FROM randomisation_entries e "
            "JOIN participants p ON p.id = e.participant_id ORDER BY e.allocated_at, e.id"
        )
    ):
        arms[stratum].append(arm)
    for stratum, allocated in arms.items():
        counts = Counter(allocated)
        # Permuted blocks of 4 and 6: never more than 3 apart, in any stratum.
        assert abs(counts[ARMS[0]] - counts[ARMS[1]]) <= 3, (stratum, counts)
    total = Counter(a for allocated in arms.values() for a in allocated)
    assert abs(total[ARMS[0]] - total[ARMS[1]]) <= 12
    events = db_session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "participant.randomise")
    ).all()
    assert len(events) == 200
    assert {e.new_values["randomisation_number"] for e in events} == {
        n["randomisation_number"] for n in numbers.values()
    }
    for event in events:
        assert not CONCEALED.search(str(event.new_values) + str(event.old_values))


def _users(db: Session, teams: dict[str, Team], raters) -> dict[str, object]:  # type: ignore[no-untyped-def]
    team = teams["S01"]
    return {
        "coordinator": team.coordinator,
        "therapist": team.therapists[0],
        "investigator": team.investigator,
        "rater": raters["S01"],
        "auditor": make_user(db, "auditor", None),
        "admin": make_user(db, "admin", None),
    }


def _concealed(app: Flask, db_session: Session, randomised) -> None:  # type: ignore[no-untyped-def]
    teams, raters, statistician, participants, numbers = randomised
    participant = next(p for p in participants if p.site.code == "S01")
    session = db_session.scalars(
        sa.select(TherapySession).where(TherapySession.participant_id == participant.id)
    ).first()
    assert session is not None
    users = _users(db_session, teams, raters)
    tokens = {role: create_api_token(db_session, FACTORY_ACTOR, u) for role, u in users.items()}  # type: ignore[arg-type]
    from tests.factories import keep_ledger

    _, receipt = keep_ledger(db_session, teams["S01"])
    db_session.commit()
    values = {
        "lot_id": receipt.lot_id,
        "entry_id": receipt.id,
        "kind": "count",
        "participant_id": participant.id,
        "study_id": participant.study_id,
        "session_id": session.id,
        "event_id": 1,
        "note_id": 1,
        "alert_id": 1,
        "user_id": teams["S01"].therapists[-1].id,
        "code": "bipolar_ii",
        "name": "place_on_hold",
        "fmt": "csv",
        "timepoint": "baseline",
        "instrument": "madrs",
        "job_id": 1,
    }
    walked: set[str] = set()
    found = []
    for role, user in users.items():
        client = app.test_client()  # a browser of the role's own
        assert login(client, user.username).status_code == 302  # type: ignore[attr-defined]
        paths = [
            (rule, PATH_PARAMETER.sub(lambda m: str(values[m.group(1)]), rule))
            for method, rule, endpoint in routes(app)
            if method == "GET" and endpoint != "auth.logout"
        ]
        # Every format of the compliance export, not only the one the walk substitutes.
        paths += [
            (f"/reports/compliance.{fmt}", f"/reports/compliance.{fmt}") for fmt in ("json", "pdf")
        ]
        paths += [
            ("/api/v1/reports/compliance?format=csv", "/api/v1/reports/compliance?format=csv")
        ]
        for rule, path in paths:
            headers = (
                {"Authorization": f"Bearer {tokens[role]}"} if rule.startswith("/api/") else {}
            )
            response = client.get(path, headers=headers)
            if response.status_code >= 500:
                found.append((role, path, response.status_code))
                continue
            body = response.get_data()
            text = (
                " ".join(p.extract_text() for p in PdfReader(io.BytesIO(body)).pages)
                if response.mimetype == "application/pdf"
                else body.decode("utf-8", "replace")
            )
            walked.add(rule)
            if rule in PROTOCOL_DOCUMENTS:
                # Protocol data, never an allocation.
                assert not any(n["randomisation_number"] in text for n in numbers.values())
                continue
            # The API's own description names the field "arm" (present only for those who may
            # see it); no other response may carry it.
            field = '"arm"' in text and rule != "/api/v1/openapi.json"
            if CONCEALED.search(text) or field:
                found.append((role, path, CONCEALED.search(text)))
    assert found == [], found
    # The walk went everywhere a reader goes, exports included.
    assert {
        "/reports/compliance.<any(csv, json, pdf):fmt>",
        "/api/v1/reports/compliance",
        "/api/v1/audit",
        "/api/v1/participants/<int:participant_id>",
        "/participants/<int:participant_id>",
        "/audit/export.csv",
    } <= walked
    # The same records as the unblinded roles read them.
    for role in ("statistician", "pharmacist"):
        user = (
            statistician if role == "statistician" else make_user(db_session, "pharmacist", "S01")
        )
        token = create_api_token(db_session, FACTORY_ACTOR, user)
        db_session.commit()
        headers = {"Authorization": f"Bearer {token}"}
        listed = client.get("/api/v1/randomisation/allocations", headers=headers).get_json()
        expected = 200 if role == "statistician" else PER_SITE
        assert len(listed["allocations"]) == expected
        assert {a["arm"] for a in listed["allocations"]} == set(ARMS)
