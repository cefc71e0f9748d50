"""The demo study: generated sites and one user per role, loaded once.

Passwords are random per installation and kept in ``instance/demo-logins.txt`` (mode 600)
so that ``make run`` can print them again; nothing here is a real person.
"""

from __future__ import annotations

import functools
import os
import random
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker import clock, demo_ledger
from tracker.audit.services import Actor
from tracker.auth.models import User
from tracker.auth.services import actor_for, create_user
from tracker.db import Database
from tracker.histories import (
    History,
    Team,
    make_eligible,
    protocol_history,
    run_histories,
    screen,
    simple_session,
    starting_at,
)
from tracker.outcome_histories import OutcomePlan, outcome_histories
from tracker.outcomes.models import Assessment
from tracker.participants.models import Participant
from tracker.participants.services import assess_review_item, enrol_participant
from tracker.participants.transitions import apply_transition
from tracker.paths import FIXTURES
from tracker.randomisation.models import RandomisationEntry
from tracker.randomisation.services import generate_for, record_guess
from tracker.safety import services as safety_services
from tracker.sessions.models import TherapySession
from tracker.sites.services import create_site
from tracker.study.services import activate_protocol, definition_of

DEMO_SITES = (("S01", "Demo Site One"), ("S02", "Demo Site Two"))
DEMO_USERS = (
    # username, role, site, printed name
    ("coordinator", "coordinator", "S01", "Demo Coordinator"),
    ("therapist", "therapist", "S01", "Demo Therapist A"),
    ("therapist2", "therapist", "S01", "Demo Therapist B"),
    ("investigator", "investigator", "S01", "Demo Investigator"),
    ("auditor", "auditor", None, "Demo Auditor"),
    ("admin", "admin", None, "Demo Data Manager"),
    ("rater", "rater", "S01", "Demo Blinded Rater"),
    ("statistician", "statistician", None, "Demo Unblinded Statistician"),
    ("pharmacist", "pharmacist", "S01", "Demo Pharmacist"),
)
LOGINS_FILE = "demo-logins.txt"
# Long enough for the outcome cohorts' 12-month follow-up; the first-release cohort starts
# 150 days before the end, as before.
SIMULATED_DAYS = timedelta(days=560)
# The outcome cohorts (SPEC §10): enrolled under the depression protocol and the PTSD
# protocol's version 2 before the first-release cohort, which is enrolled under version 1.
OUTCOME_COHORTS = (
    # protocol file, days before the end the cohort starts, plans
    (
        "mdma-mdd-v1.toml",
        550,
        (
            OutcomePlan("responder"),
            OutcomePlan("relapse"),
            OutcomePlan("partial"),
            OutcomePlan("partial", stage="integration", discontinue=True),
        ),
    ),
    # Randomised to MDMA or an active placebo (SPEC §11), each with blinding guesses.
    (
        "mdma-mdd-v2.toml",
        525,
        (
            OutcomePlan("responder"),
            OutcomePlan("partial"),
            OutcomePlan("responder"),
            OutcomePlan("relapse"),
            OutcomePlan("partial"),
            OutcomePlan("responder"),
        ),
    ),
    ("mdma-at-v2.toml", 500, (OutcomePlan("responder"), OutcomePlan("partial"))),
    # Still under way at the end: in follow-up, and followed up after stopping treatment.
    (
        "mdma-mdd-v1.toml",
        240,
        (OutcomePlan("responder"), OutcomePlan("partial", stage="integration", discontinue=True)),
    ),
    ("mdma-mdd-v1.toml", 175, (OutcomePlan("relapse", stop_before="primary_endpoint"),)),
)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def load_demo(database: Database, instance_path: Path) -> str:
    """Create the demo study unless it exists; return the login table to print."""
    logins = instance_path / LOGINS_FILE
    actor = Actor.system("demo")
    with database.session_scope() as check:
        if check.scalar(sa.select(User.id).where(User.username == "admin")) is not None:
            if logins.exists():
                return "The demo is already loaded.\n" + logins.read_text()
            return "The demo is already loaded (its logins file is gone; reset passwords as admin)."
    # The whole demo lives on a simulated timeline that ends before the real now.
    clock.start_simulation(clock.now() - SIMULATED_DAYS)
    try:
        text = _load(database, actor)
    finally:
        clock.reset()
    _write_private(logins, text)
    return text


def _load(database: Database, actor: Actor) -> str:
    passwords: dict[str, str] = {}
    with database.session_scope() as db:
        sites = {code: create_site(db, actor, code, name) for code, name in DEMO_SITES}
        lines = ["Demo logins (generated for this installation):", ""]
        for username, role, site_code, printed_name in DEMO_USERS:
            password = passwords[username] = "-".join(secrets.token_hex(3) for _ in range(3))
            create_user(
                db,
                actor,
                username=username,
                role=role,
                password=password,
                printed_name=printed_name,
                site=sites[site_code] if site_code else None,
                # A demonstration's logins are printed for whoever installed it to try.
                temporary=False,
                # Safety notifications queue for the investigator (the .invalid domain
                # never delivers: a demo sends nothing anywhere).
                email=f"{username}@{site_code.lower()}.demo.invalid"
                if role == "investigator" and site_code
                else None,
            )
            lines.append(
                f"  {username:<14} {password:<22} {role}{' at ' + site_code if site_code else ''}"
            )
        text = "\n".join(lines) + "\n"
        _demo_participants(db, {u.username: u for u in db.scalars(sa.select(User))}, passwords)
    return text


def _demo_participants(db: Session, users: dict[str, User], passwords: dict[str, str]) -> None:
    """Participants in every state, with histories made by the same services the pages use,
    interleaved on one simulated timeline that ends before the real now."""
    team = Team(
        coordinator=users["coordinator"],
        investigator=users["investigator"],
        therapists=[users["therapist"], users["therapist2"]],
        investigator_password=passwords["investigator"],
        pharmacist=users["pharmacist"],
    )
    rng = random.Random(20261121)  # noqa: S311 (demo data, not security)
    end = clock.now() + SIMULATED_DAYS
    histories = []
    plan = [  # stage, days before the end that the history starts
        ("completed", 150),
        ("completed", 135),
        ("cycle_2", 90),
        ("integration", 55),
        ("dosing_in_progress", 38),
        ("preparation", 30),
        ("ready_to_confirm", 9),
        ("awaiting_assessment", 6),
        ("checklist_partial", 5),
        ("enrolled", 2),
    ]
    for stage, days in plan:
        histories.append(
            starting_at(
                end - timedelta(days=days),
                functools.partial(protocol_history, db, team, rng, stage),
            )
        )
    histories.append(
        starting_at(
            end - timedelta(days=70),
            lambda: protocol_history(db, team, rng, "completed", serious_event_in_cycle=1),
        )
    )
    histories.append(starting_at(end - timedelta(days=40), lambda: _screen_failures(db, team, rng)))
    pharmacist, coordinator = users["pharmacist"], users["coordinator"]
    histories.append(
        starting_at(
            end - timedelta(days=556), lambda: demo_ledger.open_stock(db, pharmacist, coordinator)
        )
    )
    witnesses = (
        (users["investigator"], passwords["investigator"]),
        (coordinator, passwords["coordinator"]),
    )
    histories.append(
        starting_at(
            end - timedelta(days=300),
            lambda: demo_ledger.ledger_events(db, pharmacist, witnesses, end),
        )
    )
    histories += _outcome_cohorts(
        db, team, users["rater"], end, users["statistician"], users["pharmacist"], coordinator
    )
    histories.append(starting_at(end - timedelta(days=60), lambda: _withdrawal(db, team, rng)))
    run_histories(histories, until=end - timedelta(hours=1))
    _blinding_guesses(db, team, users["rater"])


def _screen_failures(db: Session, team: Team, rng: random.Random) -> Iterator[datetime]:
    excluded = _enrol(db, team, rng)
    screen(db, team, excluded, rng, yes={"bipolar_i": "Bipolar I disorder diagnosed 2016"})
    yield clock.now() + timedelta(days=2)
    apply_transition(
        db,
        team.as_coordinator,
        excluded,
        "fail_screening",
        expected_version=excluded.version,
        reason="Exclusion: bipolar I disorder",
    )
    yield clock.now() + timedelta(days=3)
    risky = _enrol(db, team, rng)
    screen(
        db,
        team,
        risky,
        rng,
        yes={"cardiovascular_risk_factors": "Type 2 diabetes, smoker, father MI at 52"},
    )
    yield clock.now() + timedelta(days=1)
    assess_review_item(
        db,
        team.as_investigator,
        risky,
        "cardiovascular_risk_factors",
        False,
        "Combined risk factors too high for the cardiovascular load of dosing.",
    )
    apply_transition(
        db,
        team.as_investigator,
        risky,
        "fail_screening",
        expected_version=risky.version,
        reason="Cardiovascular risk assessed not acceptable",
    )


def _withdrawal(db: Session, team: Team, rng: random.Random) -> Iterator[datetime]:
    participant = _enrol(db, team, rng)
    make_eligible(db, team, participant, rng)
    yield clock.now() + timedelta(days=3)
    apply_transition(
        db,
        team.as_coordinator,
        participant,
        "confirm_eligibility",
        expected_version=participant.version,
    )
    yield clock.now() + timedelta(days=6)
    simple_session(db, team, participant, "preparation")
    safety_services.record_side_effect(
        db,
        team.as_therapist(),
        participant,
        term="Insomnia",
        severity="mild",
        onset_at=clock.now() - timedelta(days=2),
        resolved_at=clock.now() - timedelta(hours=20),
    )
    yield clock.now() + timedelta(days=10)
    apply_transition(
        db,
        team.as_investigator,
        participant,
        "withdraw",
        expected_version=participant.version,
        reason="Relocated out of the study area",
        withdrawal_category="participant_decision",
    )


def _enrol(db: Session, team: Team, rng: random.Random) -> Participant:
    return enrol_participant(
        db,
        team.as_coordinator,
        site=team.site,
        sex=rng.choice(["female", "male"]),
        year_of_birth=rng.randint(1962, 2001),
        therapists=[team.therapists[0].username],
    )


def _activate(
    db: Session,
    name: str,
    statistician: User | None = None,
    pharmacist: User | None = None,
    witness: User | None = None,
) -> Iterator[datetime]:
    version = activate_protocol(
        db, Actor.system("demo"), (FIXTURES / "protocols" / name).read_text(encoding="utf-8")
    )
    design = definition_of(version).randomisation
    if statistician is not None and design is not None:
        generate_for(db, actor_for(statistician), version, per_stratum=12, seed=20261203)
        if pharmacist is not None and witness is not None:
            demo_ledger.blinded_stock(db, pharmacist, witness, tuple(a.code for a in design.arms))
    return
    yield


# How often a respondent guesses the allocated arm, "unsure", or the other arm: MDMA's effects
# unblind most of its participants and therapists (the phase 3 trials' weakness); the rater,
# who attended no session, is near chance.
GUESSING = {
    ("midomafetamine", "participant"): (0.85, 0.1),
    ("midomafetamine", "therapist"): (0.9, 0.05),
    ("active_placebo", "participant"): (0.6, 0.15),
    ("active_placebo", "therapist"): (0.65, 0.15),
    ("midomafetamine", "rater"): (0.55, 0.3),
    ("active_placebo", "rater"): (0.45, 0.3),
}


def _guess(rng: random.Random, arm: str, respondent: str, arms: tuple[str, ...]) -> str:
    right, unsure = GUESSING[(arm, respondent)]
    roll = rng.random()
    if roll < right:
        return arm
    if roll < right + unsure:
        return "unsure"
    return next(a for a in arms if a != arm)


def _blinding_guesses(db: Session, team: Team, rater: User) -> None:
    """After each completed dosing session, the participant's and each therapist's guess; at
    the primary endpoint, the participant's and the rater's (SPEC §11)."""
    rng = random.Random(1103)  # noqa: S311 (demo data, not security)
    for entry in db.scalars(
        sa.select(RandomisationEntry).where(RandomisationEntry.participant_id.is_not(None))
    ):
        participant = db.get_one(Participant, entry.participant_id)
        design = definition_of(participant.protocol_version).randomisation
        assert design is not None
        for session in db.scalars(
            sa.select(TherapySession).where(
                TherapySession.participant_id == participant.id,
                TherapySession.kind == "dosing",
                TherapySession.status == "completed",
            )
        ):
            who = [("participant", team.as_coordinator)] + [
                ("therapist", actor_for(t)) for t in session.therapists
            ]
            for respondent, by in who:
                record_guess(
                    db,
                    by,
                    participant,
                    respondent=respondent,
                    guess=_guess(rng, entry.arm, respondent, design.arm_codes),
                    confidence=rng.randint(2, 5),
                    session_id=session.id,
                )
        endpoint = db.scalar(
            sa.select(Assessment.id).where(
                Assessment.participant_id == participant.id,
                Assessment.timepoint == "primary_endpoint",
            )
        )
        if endpoint is not None:
            for respondent, by in (
                ("participant", team.as_coordinator),
                ("rater", actor_for(rater)),
            ):
                record_guess(
                    db,
                    by,
                    participant,
                    respondent=respondent,
                    guess=_guess(rng, entry.arm, respondent, design.arm_codes),
                    confidence=rng.randint(1, 4),
                    timepoint="primary_endpoint",
                )


def _outcome_cohorts(
    db: Session,
    team: Team,
    rater: User,
    end: datetime,
    statistician: User,
    pharmacist: User,
    witness: User,
) -> list[History]:
    """Each cohort's protocol is activated just before it enrols (one a few days apart from
    the next), and version 1 again before the first-release cohort starts."""
    histories: list[History] = []
    for index, (name, days, plans) in enumerate(OUTCOME_COHORTS):
        start = end - timedelta(days=days)
        histories.append(
            starting_at(
                start - timedelta(hours=1),
                functools.partial(_activate, db, name, statistician, pharmacist, witness),
            )
        )
        for offset, factory in enumerate(
            outcome_histories(db, team, rater, 8100 + index, list(plans))
        ):
            histories.append(starting_at(start + timedelta(days=3 * offset), factory))
    histories.append(
        starting_at(end - timedelta(days=160), lambda: _activate(db, "mdma-at-v1.toml"))
    )
    return histories
