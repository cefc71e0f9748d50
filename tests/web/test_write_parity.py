"""Every clinical write answers the same through the pages and the API.

Each case runs the same input twice, on twin participants built from the same seeded history:
once as a form on the page, once as JSON through the API, as the same user. Both must accept
or both refuse with the same status, change the same number of rows, and a rule's refusal must
show on the page in the words the API gives. The expected outcome is asserted too, so a rule
missing from both interfaces fails as well.
"""

from __future__ import annotations

import html
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, login
from tests.factories import FACTORY_ACTOR, item_codes
from tracker import clock
from tracker.audit.services import Actor
from tracker.auth.models import User
from tracker.auth.services import actor_for, create_api_token
from tracker.db import Base
from tracker.dosing.models import DoseAdministration, SessionEffects, VitalSignReading
from tracker.histories import Team, protocol_history, run_histories
from tracker.notes.models import Note
from tracker.notes.services import add_note
from tracker.outcomes.models import Assessment, MissedTimepoint
from tracker.participants.models import Consent, Participant, TransitionEvent
from tracker.paths import FIXTURES
from tracker.safety.models import AdverseEvent, PregnancyTest, SideEffect, SuicidalityScreen
from tracker.safety.services import record_adverse_event
from tracker.sessions.models import TherapySession
from tracker.study.services import activate_protocol

PAGE_TIME = "%Y-%m-%dT%H:%M"


@dataclass
class Twin:
    """One of the two participants a case writes to, and the records it writes on."""

    participant: Participant
    dosing_session: TherapySession | None = None
    adverse_event: AdverseEvent | None = None
    note: Note | None = None

    def target(self, kind: str) -> int:
        record = {
            "participant": self.participant,
            "session": self.dosing_session,
            "adverse_event": self.adverse_event,
            "note": self.note,
        }[kind]
        assert record is not None, kind
        return record.id


@dataclass(frozen=True)
class Write:
    name: str
    actor: str  # coordinator, investigator or therapist
    stage: str  # how far the twins' history goes
    target: str  # participant, session, adverse_event or note
    page: str  # the form's path, {id} the target
    api_method: str
    api: str  # the route, {id} the target
    rows: type[Base]  # whose rows count the outcome
    form: Callable[[datetime], dict[str, Any]]
    json: Callable[[datetime], dict[str, Any]]
    prefix: str | None  # the form's prefix on its page; "{id}" stands for the target's id
    accepted: bool = True
    label: str = "valid"
    extra: dict[str, Any] = field(default_factory=dict)


def _t(moment: datetime) -> str:
    return moment.strftime(PAGE_TIME)


def _iso(moment: datetime) -> str:
    return moment.replace(second=0, microsecond=0).isoformat()


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _screen(now: datetime, positive: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    answers = {"ideation": positive, "intent": False, "plan": False, "behaviour": False}
    form = {"screened_at": _t(now), **{k: _yes(v) for k, v in answers.items()}}
    return form, {"screened_at": _iso(now), **answers}


def _vitals(now: datetime, systolic: int) -> tuple[dict[str, Any], dict[str, Any]]:
    values = {"systolic": systolic, "diastolic": 80, "heart_rate": 84, "temperature_c": 36.9}
    return {"measured_at": _t(now), **values}, {"measured_at": _iso(now), **values}


def _cases() -> list[Write]:
    cases = []

    def pair(
        name: str,
        builder: Callable[[datetime], tuple[dict[str, Any], dict[str, Any]]],
        **kwargs: Any,
    ) -> None:
        cases.append(
            Write(
                name=name,
                form=lambda now: builder(now)[0],
                json=lambda now: builder(now)[1],
                **kwargs,
            )
        )

    participant = {"target": "participant", "api_method": "POST"}
    coordinator_in_preparation = {"actor": "coordinator", "stage": "preparation", **participant}
    pair(
        "participant note",
        lambda now: ({"text": "Arrived early."}, {"text": "Arrived early."}),
        page="/participants/{id}/notes",
        prefix="note",
        api="/api/v1/participants/{id}/notes",
        rows=Note,
        **coordinator_in_preparation,
    )
    pair(
        "participant note",
        lambda now: ({"text": "   "}, {"text": "   "}),
        page="/participants/{id}/notes",
        prefix="note",
        api="/api/v1/participants/{id}/notes",
        rows=Note,
        accepted=False,
        label="blank",
        **coordinator_in_preparation,
    )
    for label, term, accepted in (("valid", "Headache", True), ("blank term", "  ", False)):
        pair(
            "side effect",
            lambda now, term=term: (
                {"term": term, "severity": "mild", "onset_at": _t(now - timedelta(hours=2))},
                {"term": term, "severity": "mild", "onset_at": _iso(now - timedelta(hours=2))},
            ),
            page="/participants/{id}/side-effects",
            prefix="side",
            api="/api/v1/participants/{id}/side-effects",
            rows=SideEffect,
            accepted=accepted,
            label=label,
            **coordinator_in_preparation,
        )
    pair(
        "side effect",
        lambda now: (
            {"term": "Nausea", "severity": "mild", "onset_at": _t(now + timedelta(days=2))},
            {"term": "Nausea", "severity": "mild", "onset_at": _iso(now + timedelta(days=2))},
        ),
        page="/participants/{id}/side-effects",
        prefix="side",
        api="/api/v1/participants/{id}/side-effects",
        rows=SideEffect,
        accepted=False,
        label="onset in the future",
        **coordinator_in_preparation,
    )
    for label, grade, serious, accepted in (
        ("valid", 2, False, True),
        ("serious without a criterion", 3, True, False),
    ):
        pair(
            "adverse event",
            lambda now, grade=grade, serious=serious: (
                {
                    "term": "Insomnia",
                    "grade": str(grade),
                    "onset_at": _t(now - timedelta(hours=5)),
                    "aware_at": _t(now - timedelta(hours=1)),
                    **({"serious": "y"} if serious else {}),
                },
                {
                    "term": "Insomnia",
                    "grade": grade,
                    "serious": serious,
                    "onset_at": _iso(now - timedelta(hours=5)),
                    "aware_at": _iso(now - timedelta(hours=1)),
                },
            ),
            page="/participants/{id}/adverse-events",
            prefix="ae",
            api="/api/v1/participants/{id}/adverse-events",
            rows=AdverseEvent,
            accepted=accepted,
            label=label,
            **coordinator_in_preparation,
        )
    pair(
        "suicidality screen",
        lambda now: _screen(now),
        page="/participants/{id}/suicidality-screens",
        prefix="screen",
        api="/api/v1/participants/{id}/suicidality-screens",
        rows=SuicidalityScreen,
        **coordinator_in_preparation,
    )
    pair(
        "suicidality screen",
        lambda now: _screen(now + timedelta(days=3)),
        page="/participants/{id}/suicidality-screens",
        prefix="screen",
        api="/api/v1/participants/{id}/suicidality-screens",
        rows=SuicidalityScreen,
        accepted=False,
        label="in the future",
        **coordinator_in_preparation,
    )
    for label, moment, accepted in (
        ("valid", timedelta(hours=-1), True),
        ("future", timedelta(days=4), False),
    ):
        pair(
            "pregnancy test",
            lambda now, moment=moment: (
                {"tested_at": _t(now + moment), "result": "negative"},
                {"tested_at": _iso(now + moment), "result": "negative"},
            ),
            page="/participants/{id}/pregnancy-tests",
            prefix="pregnancy",
            api="/api/v1/participants/{id}/pregnancy-tests",
            rows=PregnancyTest,
            accepted=accepted,
            label=label,
            **coordinator_in_preparation,
        )
    for label, signed_on, accepted in (("valid", -1, True), ("signed in the future", 5, False)):
        pair(
            "consent",
            lambda now, signed_on=signed_on: (
                {
                    "document_version": "v2.0",
                    "signed_on": (now + timedelta(days=signed_on)).date().isoformat(),
                },
                {
                    "version": "v2.0",
                    "signed_on": (now + timedelta(days=signed_on)).date().isoformat(),
                },
            ),
            page="/participants/{id}/consent",
            prefix=None,
            api="/api/v1/participants/{id}/consent",
            rows=Consent,
            accepted=accepted,
            label=label,
            **coordinator_in_preparation,
        )
    for label, kind, accepted in (
        ("valid", "preparation", True),
        ("dosing in preparation", "dosing", False),
    ):
        pair(
            "schedule a session",
            lambda now, kind=kind: (
                {"kind": kind, "scheduled_at": _t(now + timedelta(days=2))},
                {"kind": kind, "scheduled_at": _iso(now + timedelta(days=2))},
            ),
            page="/participants/{id}/sessions",
            prefix="schedule",
            api="/api/v1/participants/{id}/sessions",
            rows=TherapySession,
            accepted=accepted,
            label=label,
            **coordinator_in_preparation,
        )

    therapist_in_dosing = {
        "actor": "therapist",
        "stage": "dosing_in_progress",
        "target": "session",
        "api_method": "POST",
    }
    for label, systolic, accepted in (("valid", 128, True), ("implausible", 400, False)):
        pair(
            "vital signs",
            lambda now, systolic=systolic: _vitals(now, systolic),
            page="/sessions/{id}/vitals",
            prefix="vitals",
            api="/api/v1/sessions/{id}/vitals",
            rows=VitalSignReading,
            accepted=accepted,
            label=label,
            **therapist_in_dosing,
        )
    pair(
        "vital signs",
        lambda now: _vitals(now - timedelta(days=3), 128),
        page="/sessions/{id}/vitals",
        prefix="vitals",
        api="/api/v1/sessions/{id}/vitals",
        rows=VitalSignReading,
        accepted=False,
        label="before the session started",
        **therapist_in_dosing,
    )
    for label, kind, accepted in (
        ("second initial dose", "initial", False),
        ("far too much", "supplemental", False),
    ):
        pair(
            "dose",
            lambda now, kind=kind: (
                {"administered_at": _t(now), "kind": kind, "amount_mg": "900"},
                {"administered_at": _iso(now), "kind": kind, "amount_mg": 900},
            ),
            page="/sessions/{id}/doses",
            prefix="dose",
            api="/api/v1/sessions/{id}/doses",
            rows=DoseAdministration,
            accepted=accepted,
            label=label,
            **therapist_in_dosing,
        )
    for label, effects, none_observed, accepted in (
        ("valid", ["nausea"], False, True),
        ("effects and none observed", ["nausea"], True, False),
    ):
        pair(
            "effects",
            lambda now, effects=effects, none_observed=none_observed: (
                {"effects": effects, **({"none_observed": "y"} if none_observed else {})},
                {"effects": effects, "none_observed": none_observed},
            ),
            page="/sessions/{id}/effects",
            prefix="effects",
            api="/api/v1/sessions/{id}/effects",
            rows=SessionEffects,
            accepted=accepted,
            label=label,
            **{**therapist_in_dosing, "api_method": "PUT"},
        )
    pair(
        "session note",
        lambda now: ({"text": "Resting."}, {"text": "Resting."}),
        page="/sessions/{id}/notes",
        prefix="note",
        api="/api/v1/sessions/{id}/notes",
        rows=Note,
        **therapist_in_dosing,
    )

    investigator_on_event = {
        "actor": "investigator",
        "stage": "preparation",
        "target": "adverse_event",
    }
    pair(
        "adverse-event assessment",
        lambda now: (
            {"relatedness": "possible", "expected": "no"},
            {"relatedness": "possible", "expected": False},
        ),
        page="/adverse-events/{id}/assessment",
        prefix="assess",
        api_method="POST",
        api="/api/v1/adverse-events/{id}/assessment",
        rows=AdverseEvent,
        **investigator_on_event,
    )
    pair(
        "adverse-event follow-up",
        lambda now: (
            {"outcome": "recovered", "resolved_at": _t(now - timedelta(hours=3))},
            {"outcome": "recovered", "resolved_at": _iso(now - timedelta(hours=3))},
        ),
        page="/adverse-events/{id}/follow-up",
        prefix="follow",
        api_method="PATCH",
        api="/api/v1/adverse-events/{id}",
        rows=AdverseEvent,
        **investigator_on_event,
    )
    pair(
        "adverse-event follow-up",
        lambda now: (
            {"outcome": "recovered", "resolved_at": _t(now - timedelta(days=30))},
            {"outcome": "recovered", "resolved_at": _iso(now - timedelta(days=30))},
        ),
        page="/adverse-events/{id}/follow-up",
        prefix="follow",
        api_method="PATCH",
        api="/api/v1/adverse-events/{id}",
        rows=AdverseEvent,
        accepted=False,
        label="resolved before its onset",
        **investigator_on_event,
    )
    for label, reason, accepted in (
        ("valid", "Wrong time written.", True),
        ("no reason", " ", False),
    ):
        pair(
            "note correction",
            lambda now, reason=reason: (
                {"text": "Arrived on time.", "reason": reason},
                {"text": "Arrived on time.", "reason": reason},
            ),
            actor="coordinator",
            stage="preparation",
            target="note",
            page="/notes/{id}/corrections",
            prefix="amend{id}",
            api_method="POST",
            api="/api/v1/notes/{id}/amendments",
            rows=Note,
            accepted=accepted,
            label=label,
        )
    for label, reason, accepted in (
        ("valid", "Moved away from the site.", True),
        ("no reason or category", None, False),
    ):
        cases.append(
            Write(
                name="transition withdraw",
                actor="coordinator",
                stage="preparation",
                target="participant",
                page="/participants/{id}/transitions/withdraw",
                prefix="withdraw",
                api_method="POST",
                api="/api/v1/participants/{id}/transitions",
                rows=TransitionEvent,
                form=lambda now, reason=reason: (
                    {"reason": reason, "withdrawal_category": "participant_decision"}
                    if reason
                    else {}
                ),
                json=lambda now, reason=reason: {
                    "transition": "withdraw",
                    **(
                        {"reason": reason, "withdrawal_category": "participant_decision"}
                        if reason
                        else {}
                    ),
                },
                accepted=accepted,
                label=label,
                extra={"versioned": True},
            )
        )
    cases.append(
        Write(
            name="transition start_dosing",
            actor="coordinator",
            stage="enrolled",
            target="participant",
            page="/participants/{id}/transitions/start_dosing",
            prefix="start_dosing",
            api_method="POST",
            api="/api/v1/participants/{id}/transitions",
            rows=TransitionEvent,
            form=lambda now: {},
            json=lambda now: {"transition": "start_dosing"},
            accepted=False,
            label="not allowed from screening",
            extra={"versioned": True},
        )
    )
    for label, year, accepted in (
        ("valid", 1984, True),
        ("a minor", 2020, False),
        ("implausible year", 1850, False),
    ):
        pair(
            "enrolment",
            lambda now, year=year: (
                {"site": "S01", "sex": "female", "year_of_birth": str(year)},
                {"site": "S01", "sex": "female", "year_of_birth": year},
            ),
            actor="coordinator",
            stage="enrolled",
            target="participant",
            page="/participants/new",
            prefix=None,
            api_method="POST",
            api="/api/v1/participants",
            rows=Participant,
            accepted=accepted,
            label=label,
        )
    cases += _outcome_cases()
    return cases


PHQ9 = item_codes("phq9")
MADRS = item_codes("madrs")


def _assessment(
    instrument: str, codes: list[str], value: int, *, drop: str | None = None
) -> Callable[[datetime], tuple[dict[str, Any], dict[str, Any]]]:
    def build(now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
        items = {code: value for code in codes if code != drop}
        form = {"administered_at": _t(now), **{f"item_{c}": str(v) for c, v in items.items()}}
        body = {
            "timepoint": "baseline",
            "instrument": instrument,
            "administered_at": _iso(now),
            "items": items,
        }
        return form, body

    return build


def _outcome_cases() -> list[Write]:
    """Outcome writes under the depression protocol (SPEC §10)."""
    common = {
        "actor": "coordinator",
        "stage": "preparation",
        "target": "participant",
        "api_method": "POST",
        "prefix": None,
        "extra": {"protocol": "mdma-mdd-v1.toml"},
    }
    cases = []
    for label, instrument, codes, drop, accepted in (
        ("valid self-report", "phq9", PHQ9, None, True),
        ("an item missing", "phq9", PHQ9, "sleep", False),
        ("clinician-rated by a coordinator", "madrs", MADRS, None, False),
    ):
        builder = _assessment(instrument, codes, 1, drop=drop)
        cases.append(
            Write(
                name="assessment",
                page="/participants/{id}/outcomes/baseline/" + instrument,
                api="/api/v1/participants/{id}/assessments",
                rows=Assessment,
                form=lambda now, b=builder: b(now)[0],
                json=lambda now, b=builder: b(now)[1],
                accepted=accepted,
                label=label,
                **common,  # type: ignore[arg-type]
            )
        )
    for label, reason, accepted in (("valid", "Moved abroad.", True), ("no reason", "", False)):
        cases.append(
            Write(
                name="missed timepoint",
                page="/participants/{id}/outcomes/cycle_3/missed",
                api="/api/v1/participants/{id}/missed-timepoints",
                rows=MissedTimepoint,
                form=lambda now, r=reason: {"reason": r},
                json=lambda now, r=reason: {"timepoint": "cycle_3", "reason": r},
                accepted=accepted,
                label=label,
                **common,  # type: ignore[arg-type]
            )
        )
    return cases


CASES = _cases()


def _twins(
    db: Session, team: Team, stage: str, seed: int, protocol: str | None = None
) -> tuple[Twin, Twin]:
    """Two participants with the same history, and the records a case writes on."""
    if protocol is not None:
        source = (FIXTURES / "protocols" / protocol).read_text(encoding="utf-8")
        activate_protocol(db, Actor.system(), source)
    histories = [protocol_history(db, team, random.Random(seed), stage) for _ in range(2)]
    run_histories(histories)
    participants = db.scalars(sa.select(Participant).order_by(Participant.id.desc()).limit(2)).all()
    twins = []
    for participant in sorted(participants, key=lambda p: p.id):
        twin = Twin(participant)
        twin.dosing_session = db.scalars(
            sa.select(TherapySession).where(
                TherapySession.participant_id == participant.id,
                TherapySession.kind == "dosing",
                TherapySession.status == "scheduled",
            )
        ).first()
        now = clock.now()
        twin.adverse_event = record_adverse_event(
            db,
            actor_for(team.coordinator),
            participant,
            term="Fatigue",
            onset_at=now - timedelta(hours=6),
            grade=1,
            serious=False,
            aware_at=now - timedelta(hours=5),
        )
        twin.note = add_note(db, actor_for(team.coordinator), participant, "Arrived late.")
        twins.append(twin)
    db.commit()
    return twins[0], twins[1]


def _user(team: Team, twin: Twin, actor: str) -> User:
    if actor == "therapist":
        assert twin.dosing_session is not None
        return twin.dosing_session.therapists[0]
    return getattr(team, actor)  # type: ignore[no-any-return]


def _rows(db: Session, rows: type[Base]) -> int:
    db.expire_all()
    return int(db.scalar(sa.select(sa.func.count()).select_from(rows)) or 0)


def _page_text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.mark.parametrize("case", CASES, ids=[f"{c.name}: {c.label}" for c in CASES])
def test_the_page_and_the_api_give_the_same_outcome(
    app: Flask, client: FlaskClient, db_session: Session, team: Team, case: Write
) -> None:
    page_twin, api_twin = _twins(
        db_session, team, case.stage, seed=11, protocol=case.extra.get("protocol")
    )
    now = clock.now().replace(second=0, microsecond=0)
    user = _user(team, page_twin, case.actor)
    assert _user(team, api_twin, case.actor).id == user.id
    token = create_api_token(db_session, FACTORY_ACTOR, user)
    db_session.commit()

    login(client, user.username)
    form = dict(case.form(now))
    body = dict(case.json(now))
    if case.extra.get("versioned"):
        form["expected_version"] = str(page_twin.participant.version)
        body["expected_version"] = api_twin.participant.version
    form["csrf_token"] = csrf_token(client, f"/participants/{page_twin.participant.id}")
    if case.prefix is not None:
        prefix = case.prefix.format(id=page_twin.target(case.target))
        form = {f"{prefix}-{key}": value for key, value in form.items()}

    before = _rows(db_session, case.rows)
    page = client.post(case.page.format(id=page_twin.target(case.target)), data=form)
    after_page = _rows(db_session, case.rows)

    api = app.test_client().open(
        case.api.format(id=api_twin.target(case.target)),
        method=case.api_method,
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    after_api = _rows(db_session, case.rows)

    page_accepted = page.status_code in (302, 303)
    api_accepted = 200 <= api.status_code < 300
    assert (page_accepted, api_accepted) == (case.accepted, case.accepted), (
        page.status_code,
        api.status_code,
        api.get_json(),
    )
    assert after_page - before == after_api - after_page, "both add the same number of rows"
    if not case.accepted:
        assert page.status_code == api.status_code, api.get_json()
        error = api.get_json()["error"]
        if api.status_code != 400:
            # A rule's refusal reads the same on the page (schema errors word field by field).
            text = _page_text(page)
            for reason in error.get("details") or [error["message"]]:
                # The twins differ in their study ids only.
                reason = str(reason).replace(
                    api_twin.participant.study_id, page_twin.participant.study_id
                )
                # The page and the API answer a moment apart: a count of minutes since the
                # initial dose may tick over between them, so figures match as any number.
                pattern = re.sub(r"\d+", r"\\d+", re.escape(reason))
                assert re.search(pattern, text), (reason, case.page)
