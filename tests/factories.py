"""Factories that build valid objects through the services (so the audit trail is real)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor
from tracker.auth.models import SITELESS_ROLES, User
from tracker.auth.services import create_user
from tracker.sites.models import Site
from tracker.sites.services import create_site

if TYPE_CHECKING:
    from tracker.histories import Team

PASSWORD = "correct-horse-battery"
FACTORY_ACTOR = Actor.system("test-factory")
_counter = itertools.count(1)


def make_site(session: Session, code: str = "S01", name: str | None = None) -> Site:
    existing = session.scalar(sa.select(Site).where(Site.code == code))
    if existing is not None:
        return existing
    return create_site(session, FACTORY_ACTOR, code, name or f"Test site {code}")


def make_user(
    session: Session,
    role: str = "coordinator",
    site: Site | str | None = "S01",
    username: str | None = None,
    password: str = PASSWORD,
) -> User:
    if role in SITELESS_ROLES:
        site_obj = None
    elif isinstance(site, str):
        site_obj = make_site(session, site)
    else:
        site_obj = site
    return create_user(
        session,
        FACTORY_ACTOR,
        username=username or f"{role}{next(_counter)}",
        role=role,
        password=password,
        printed_name=f"Test {role.capitalize()} {next(_counter)}",
        site=site_obj,
        temporary=False,
    )


def make_team(
    session: Session,
    site: Site | str = "S01",
    *,
    usernames: Sequence[str] | None = None,
) -> Team:
    """A site team: a coordinator, an investigator and two therapists at ``site``, in that order."""
    from tracker.histories import Team

    names: Sequence[str | None] = (None,) * 4 if usernames is None else usernames
    if len(names) != 4:
        raise ValueError(f"a team has four usernames, not {len(names)}: {names!r}")
    return Team(
        coordinator=make_user(session, "coordinator", site, username=names[0]),
        investigator=make_user(session, "investigator", site, username=names[1]),
        therapists=[make_user(session, "therapist", site, username=name) for name in names[2:]],
        investigator_password=PASSWORD,
    )


def actor(user: User) -> Actor:
    from tracker.auth.services import actor_for

    return actor_for(user)


ALL_ITEMS = (
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


def all_no(**yes: str) -> dict[str, tuple[str, str | None]]:
    """Every item answered no, except those given as ``code="note"`` (answered yes)."""
    return {code: ("yes", yes[code]) if code in yes else ("no", None) for code in ALL_ITEMS}


def make_participant(session: Session, coordinator: User, **kwargs):  # type: ignore[no-untyped-def]
    from tracker.participants.services import enrol_participant

    return enrol_participant(
        session,
        actor(coordinator),
        site=coordinator.site,
        sex=kwargs.pop("sex", "female"),
        year_of_birth=kwargs.pop("year_of_birth", 1985),
        **kwargs,
    )


def make_eligible(session: Session, coordinator: User, investigator: User, participant) -> None:  # type: ignore[no-untyped-def]
    """Checklist all no, signed by the investigator, consent recorded."""
    from datetime import UTC, datetime

    from tracker.participants.services import (
        record_checklist_answers,
        record_consent,
        sign_checklist,
    )

    record_checklist_answers(session, actor(coordinator), participant, all_no())
    sign_checklist(
        session, investigator, actor(investigator), participant, PASSWORD, "I confirm eligibility"
    )
    record_consent(session, actor(coordinator), participant, "ICF v2.1", datetime.now(UTC).date())


def without_pregnancy_tests(participant) -> None:  # type: ignore[no-untyped-def]
    """Set up a participant who needs no pregnancy test (male, or recorded as not of
    childbearing potential); a test's shortcut, the services record it with an audit event."""
    participant.childbearing_potential = None if participant.sex == "male" else False


def with_pregnancy_tests(participant) -> None:  # type: ignore[no-untyped-def]
    """Set up a participant of childbearing potential (a test's shortcut)."""
    if participant.sex == "male":
        participant.sex = "female"
    participant.childbearing_potential = True


def item_codes(instrument: str, protocol: str = "mdma-mdd-v1.toml") -> list[str]:
    """The item codes of an instrument in a shipped protocol, in its order."""
    from tracker.paths import FIXTURES
    from tracker.protocol import load_protocol_file

    scale = load_protocol_file(FIXTURES / "protocols" / protocol).instrument(instrument)
    return [item.code for item in scale.items]


def keep_ledger(session: Session, team, units: int = 5000):  # type: ignore[no-untyped-def]
    """The team's site keeps its drug ledger here (SPEC §12): a pharmacist, the DEA
    registration and an open-label lot of 20 mg units with ``units`` received. Returns the
    team with its pharmacist, so the histories dispense for every dosing session; and the
    lot's receipt entry."""
    import dataclasses
    from datetime import date

    from tracker import clock
    from tracker.pharmacy import services as pharmacy

    pharmacist = make_user(session, "pharmacist", team.site)
    pharmacy.register_site(
        session,
        actor(pharmacist),
        team.site.code,
        number="RT1234563",
        registrant="Test pharmacy",
        expires_on=date(2100, 1, 1),
    )
    lot = pharmacy.create_lot(
        session,
        actor(pharmacist),
        pharmacist,
        site=team.site.code,
        product="MDMA 20 mg",
        lot=f"T-{next(_counter)}",
        strength_mg=20,
        expires_on=date(2100, 1, 1),
    )
    receipt = pharmacy.record_entry(
        session,
        actor(pharmacist),
        pharmacist,
        lot,
        kind="receipt",
        units=units,
        occurred_at=clock.now(),
        dea_form_222="221000000",
        witness=team.coordinator.username,
    )
    return dataclasses.replace(team, pharmacist=pharmacist), receipt


def randomised_depression_study(session: Session):  # type: ignore[no-untyped-def]
    """The depression protocol (mdma-mdd-v2, randomised) active, a statistician who made its
    list (8 per stratum, seed 5) and a rater at S01: returns (version, statistician, rater)."""
    from tracker.paths import FIXTURES
    from tracker.randomisation.services import generate_for
    from tracker.study.services import activate_protocol

    version = activate_protocol(
        session,
        Actor.system(),
        (FIXTURES / "protocols" / "mdma-mdd-v2.toml").read_text(encoding="utf-8"),
    )
    statistician = make_user(session, "statistician", None)
    rater = make_user(session, "rater", "S01")
    generate_for(session, actor(statistician), version, per_stratum=8, seed=5)
    return version, statistician, rater
