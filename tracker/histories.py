"""Realistic participant histories, made by the same services the pages and the API use.

Each history is a generator: it acts at the clock's current time, then yields the moment it
wants to act next. ``run_histories`` interleaves many of them on one timeline (moving the
clock forward), so the audit trail of a whole study reads in time order. The demo uses this;
tests use it to take participants through the protocol.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tracker import clock
from tracker.audit.services import Actor
from tracker.auth.models import User
from tracker.auth.services import actor_for
from tracker.dosing import services as dosing_services
from tracker.notes import services as notes_services
from tracker.participants.models import Participant
from tracker.participants.queries import consents_of
from tracker.participants.services import (
    assess_review_item,
    enrol_participant,
    record_checklist_answers,
    record_consent,
    sign_checklist,
)
from tracker.participants.transitions import apply_transition
from tracker.pharmacy import queries as pharmacy_queries
from tracker.pharmacy import services as pharmacy_services
from tracker.protocol import pregnancy_test_required
from tracker.protocol.accountability import balance
from tracker.protocol.dosing import EFFECT_CODES
from tracker.randomisation.queries import arm_of
from tracker.randomisation.services import randomise
from tracker.safety import services as safety_services
from tracker.sessions import services as session_services
from tracker.sessions.models import TherapySession
from tracker.sites.models import Site
from tracker.study.services import definition_of

SIGNATURE_MEANING = "I confirm that I have reviewed this contraindication checklist and its outcome"
History = Iterator[datetime]

# How far a history goes: each stage includes the ones before it.
STAGES = (
    "enrolled",
    "checklist_partial",
    "awaiting_assessment",
    "ready_to_confirm",
    "preparation",
    "dosing_in_progress",
    "integration",
    "cycle_2",
    "completed",
)


@dataclass
class Team:
    coordinator: User
    investigator: User
    therapists: list[User]
    investigator_password: str
    # The site's pharmacist: at a site that keeps its drug ledger here, every dosing session's
    # product is dispensed by them and its unused units returned (SPEC §12).
    pharmacist: User | None = None

    @property
    def site(self) -> Site:
        """The team's site (its coordinator's: site staff always have one)."""
        site = self.coordinator.site
        if site is None:
            raise ValueError(f"{self.coordinator.username} has no site")
        return site

    @property
    def as_coordinator(self) -> Actor:
        return actor_for(self.coordinator)

    @property
    def as_investigator(self) -> Actor:
        return actor_for(self.investigator)

    def as_therapist(self, index: int = 0) -> Actor:
        return actor_for(self.therapists[index % len(self.therapists)])


def _move(db: Session, who: Actor, participant: Participant, name: str, **kwargs: Any) -> None:
    apply_transition(db, who, participant, name, expected_version=participant.version, **kwargs)


def screen(
    db: Session,
    team: Team,
    participant: Participant,
    rng: random.Random,
    *,
    yes: dict[str, str] | None = None,
    answered: int | None = None,
) -> None:
    """Consent first (before any study procedure), then the checklist answers."""
    if not consents_of(db, participant.id):
        record_consent(db, team.as_coordinator, participant, "ICF v2.1", clock.now().date())
    items = [i.code for i in definition_of(participant.protocol_version).checklist]
    answers: dict[str, tuple[str | bool | None, str | None]] = {
        code: ("no", None) for code in items
    }
    for code, note in (yes or {}).items():
        answers[code] = ("yes", note)
    if answered is not None:
        answers = dict(list(answers.items())[:answered])
    record_checklist_answers(db, team.as_coordinator, participant, answers)


def make_eligible(db: Session, team: Team, participant: Participant, rng: random.Random) -> None:
    """Consent, the checklist (with a review item acceptable), the signature."""
    screen(
        db,
        team,
        participant,
        rng,
        yes={"controlled_hypertension": "Amlodipine 5 mg; 128/82 mmHg at screening"},
    )
    assess_review_item(
        db,
        team.as_investigator,
        participant,
        "controlled_hypertension",
        True,
        "Controlled for 3 years; watch blood pressure closely during dosing.",
    )
    sign_checklist(
        db,
        team.investigator,
        team.as_investigator,
        participant,
        team.investigator_password,
        SIGNATURE_MEANING,
    )
    safety_services.record_suicidality_screen(
        db,
        team.as_coordinator,
        participant,
        ideation=False,
        intent=False,
        plan=False,
        behaviour=False,
    )


def simple_session(
    db: Session,
    team: Team,
    participant: Participant,
    kind: str,
    *,
    hours: float = 1.5,
    note: str | None = None,
) -> TherapySession:
    """A preparation or integration session that took place just now."""
    now = clock.now()
    start = now - timedelta(hours=hours, minutes=10)
    therapist = team.as_therapist()
    row = session_services.schedule_session(
        db,
        team.as_coordinator,
        participant,
        kind=kind,
        scheduled_at=start,
        therapists=[t.username for t in team.therapists],
    )
    session_services.update_session(
        db,
        therapist,
        row,
        started_at=start,
        ended_at=start + timedelta(hours=hours),
        status="completed",
    )
    if kind == "integration":
        safety_services.record_suicidality_screen(
            db,
            therapist,
            participant,
            ideation=False,
            intent=False,
            plan=False,
            behaviour=False,
            session_id=row.id,
        )
    if note:
        notes_services.add_note(db, therapist, participant, note, session_id=row.id)
    return row


def dosing_session(
    db: Session,
    team: Team,
    participant: Participant,
    rng: random.Random,
    *,
    hours: float = 9.0,
    finish: bool = True,
    breach: bool = False,
    supplemental: bool = True,
) -> TherapySession:
    """A dosing session that began ``hours`` ago: baseline vitals, the initial dose, readings
    every 30 to 60 minutes, perhaps a breach and its acknowledgement, the supplemental dose,
    effects, a suicidality screen; completed with an overnight stay when ``finish``."""
    now = clock.now()
    start = now - timedelta(hours=hours)
    therapist = team.as_therapist()
    row = session_services.schedule_session(
        db,
        team.as_coordinator,
        participant,
        kind="dosing",
        scheduled_at=start,
        therapists=[t.username for t in team.therapists[:2]],
    )
    protocol = definition_of(participant.protocol_version)
    initial_mg = rng.choice(protocol.dosing.initial_doses_mg)
    most = initial_mg + int(protocol.dosing.supplemental_dose_mg(initial_mg))
    dispensed = _dispense(db, team, participant, row, most, start - timedelta(minutes=20))
    session_services.update_session(db, therapist, row, started_at=start)
    initial_at = start + timedelta(minutes=30)
    moment = start + timedelta(minutes=10)
    end = start + timedelta(hours=8, minutes=45) if finish else now
    reading_times = []
    while moment <= end - timedelta(minutes=5):
        reading_times.append(moment)
        moment += timedelta(minutes=rng.randint(30, 58))
    if finish and end - reading_times[-1] > timedelta(minutes=3):
        reading_times.append(end - timedelta(minutes=3))
    # A breach after the supplemental dose, so the dose is not held back by it.
    breach_at = reading_times[6] if breach and len(reading_times) > 7 else None
    dosed = False
    supplemental_at = initial_at + timedelta(minutes=rng.randint(95, 140))
    supplemental_done = not supplemental
    for when in reading_times:
        if not dosed and when > initial_at:
            dosing_services.record_dose(
                db,
                therapist,
                row,
                administered_at=initial_at,
                amount_mg=initial_mg,
                kind="initial",
            )
            dosed = True
        if not supplemental_done and when > supplemental_at:
            dosing_services.record_dose(
                db,
                therapist,
                row,
                administered_at=supplemental_at,
                amount_mg=int(protocol.dosing.supplemental_dose_mg(initial_mg)),
                kind="supplemental",
            )
            supplemental_done = True
        high = when == breach_at
        reading = dosing_services.record_vital_signs(
            db,
            therapist,
            row,
            measured_at=when,
            systolic=rng.randint(161, 168) if high else rng.randint(118, 148),
            diastolic=rng.randint(78, 96),
            heart_rate=rng.randint(68, 104),
            temperature_c=round(rng.uniform(36.4, 37.6), 1),
        )
        for alert in reading.alerts:
            dosing_services.acknowledge_alert(
                db,
                team.as_therapist(1),
                alert,
                "Participant calm; rechecked after 10 minutes, trending down. "
                "Investigator informed.",
            )
    if finish:
        chosen = sorted(rng.sample(sorted(EFFECT_CODES), k=rng.randint(1, 4)))
        dosing_services.record_effects(
            db,
            therapist,
            row,
            effects=chosen,
            none_observed=False,
            note="Recorded with the participant at the end of the session.",
        )
        safety_services.record_suicidality_screen(
            db,
            therapist,
            participant,
            ideation=False,
            intent=False,
            plan=False,
            behaviour=False,
            session_id=row.id,
        )
        if dispensed is not None:
            _return_unused(db, team, dispensed, end - timedelta(minutes=1))
        session_services.update_session(
            db, therapist, row, ended_at=end, status="completed", overnight_stay=True
        )
    return row


def _dispense(
    db: Session,
    team: Team,
    participant: Participant,
    row: TherapySession,
    mg: int,
    when: datetime,
) -> int | None:
    """The pharmacist dispenses enough units of a lot of the participant's arm for the most
    the session can give; None at a site that keeps no ledger here."""
    if team.pharmacist is None or not pharmacy_queries.keeps_ledger(db, participant.site_id):
        return None
    arm = arm_of(db, participant.id)
    pharmacist = actor_for(team.pharmacist)
    for lot in db.scalars(pharmacy_queries.lots_query(team.pharmacist)):
        units = -(-mg // int(lot.strength_mg))
        if lot.arm != arm or lot.expires_on < when.date():
            continue
        if balance(pharmacy_queries.lines_of(db, lot.id)) < units:
            continue
        entry = pharmacy_services.record_entry(
            db,
            pharmacist,
            team.pharmacist,
            lot,
            kind="dispensing",
            units=units,
            occurred_at=when,
            session_id=row.id,
        )
        return entry.id
    raise ValueError(f"No lot at {team.site.code} has {mg} mg for {participant.study_id}")


def _return_unused(db: Session, team: Team, dispensing_id: int, when: datetime) -> None:
    assert team.pharmacist is not None
    dispensed = pharmacy_queries.dispensing(db, dispensing_id)
    assert dispensed is not None
    if dispensed.use.unused_units:
        lot = pharmacy_queries.get_lot(db, team.pharmacist, dispensed.lot_id)
        pharmacy_services.record_entry(
            db,
            actor_for(team.pharmacist),
            team.pharmacist,
            lot,
            kind="return",
            units=dispensed.use.unused_units,
            occurred_at=when,
            dispensing_id=dispensing_id,
        )


def start_cycle(db: Session, team: Team, participant: Participant) -> None:
    if pregnancy_test_required(participant.sex, participant.childbearing_potential):
        safety_services.record_pregnancy_test(
            db,
            team.as_coordinator,
            participant,
            tested_at=clock.now() - timedelta(hours=3),
            result="negative",
        )
    protocol = definition_of(participant.protocol_version)
    if protocol.randomisation is not None and participant.cycle == 0:
        randomise(db, team.as_coordinator, participant, expected_version=participant.version)
    _move(db, team.as_coordinator, participant, "start_dosing")


def protocol_history(
    db: Session,
    team: Team,
    rng: random.Random,
    stage: str,
    *,
    notes: bool = True,
    serious_event_in_cycle: int | None = None,
    enrolled: list[Participant] | None = None,
) -> History:
    """One participant taken from enrolment to ``stage`` (see STAGES); the participant is
    appended to ``enrolled`` when given, for a history that goes on from this one."""
    goal = STAGES.index(stage)
    participant = enrol_participant(
        db,
        team.as_coordinator,
        site=team.site,
        sex=rng.choice(["female", "male"]),
        year_of_birth=rng.randint(1962, 2001),
        therapists=[team.therapists[0].username],
    )
    if enrolled is not None:
        enrolled.append(participant)
    if goal == STAGES.index("enrolled"):
        return
    yield clock.now() + timedelta(days=rng.randint(2, 5))
    if goal == STAGES.index("checklist_partial"):
        screen(db, team, participant, rng, answered=9)
        return
    if goal == STAGES.index("awaiting_assessment"):
        screen(
            db,
            team,
            participant,
            rng,
            yes={"bipolar_ii": "Hypomanic episode 2012, stable since"},
        )
        return
    make_eligible(db, team, participant, rng)
    if goal == STAGES.index("ready_to_confirm"):
        return
    yield clock.now() + timedelta(days=rng.randint(1, 4))
    _move(db, team.as_coordinator, participant, "confirm_eligibility")
    protocol = definition_of(participant.protocol_version)
    for number in range(protocol.schedule.preparation_sessions):
        yield clock.now() + timedelta(days=rng.randint(5, 8))
        simple_session(
            db,
            team,
            participant,
            "preparation",
            note=f"Preparatory session {number + 1}: intentions and safety plan discussed."
            if notes and number == 0
            else None,
        )
    if goal == STAGES.index("preparation"):
        return
    for cycle in range(1, protocol.schedule.dosing_cycles + 1):
        yield clock.now() + timedelta(days=rng.randint(3, 6) if cycle == 1 else 0)
        start_cycle(db, team, participant)
        if goal == STAGES.index("dosing_in_progress"):
            yield clock.now() + timedelta(days=1, hours=4)
            dosing_session(db, team, participant, rng, hours=4, finish=False)
            return
        yield clock.now() + timedelta(days=1, hours=10)
        # Some participants decline the supplemental dose of their first session.
        declined = cycle == 1 and participant.id % 3 == 0
        dosing_session(db, team, participant, rng, breach=cycle == 2, supplemental=not declined)
        _move(db, team.as_therapist(), participant, "complete_dosing")
        if serious_event_in_cycle == cycle:
            yield clock.now() + timedelta(hours=30)
            safety_services.record_adverse_event(
                db,
                team.as_therapist(),
                participant,
                term="Hypertensive urgency",
                grade=3,
                serious=True,
                serious_criteria=["hospitalisation"],
                onset_at=clock.now() - timedelta(hours=6),
                description="Blood pressure 184/112 mmHg the evening after dosing; "
                "observed overnight in hospital.",
            )
            return
        # The first integration session within 24 h of the dosing, then weekly.
        for number, gap in enumerate((timedelta(hours=14), timedelta(days=6), timedelta(days=7))):
            yield clock.now() + gap
            row = simple_session(db, team, participant, "integration")
            if notes and number == 0:
                note = notes_services.add_note(
                    db,
                    team.as_therapist(),
                    participant,
                    "Integration: processed themes of safety and self-compassion.",
                    session_id=row.id,
                )
                if cycle == 1:
                    notes_services.amend_note(
                        db,
                        team.as_therapist(),
                        note,
                        "Integration: processed themes of safety and self-compassion; "
                        "sleep improved.",
                        "Added the sleep report given at the end of the session.",
                    )
        if cycle == 1 and goal == STAGES.index("integration"):
            return
        if cycle == 2 and goal == STAGES.index("cycle_2"):
            return
        if cycle < protocol.schedule.dosing_cycles:
            yield clock.now() + timedelta(days=rng.randint(8, 14))
    _move(db, team.as_coordinator, participant, "complete_protocol")


def run_histories(histories: list[History], until: datetime | None = None) -> None:
    """Interleave histories on one timeline: always resume the one that wants the earliest
    moment, after moving the clock forward to it."""
    queue: list[tuple[datetime, int, History]] = []
    for index, history in enumerate(histories):
        _step(queue, index, history)
    while queue:
        moment, index, history = heapq.heappop(queue)
        if until is not None and moment > until:
            continue  # this history stops here; the others go on
        clock.catch_up(moment)
        _step(queue, index, history)


def _step(queue: list[tuple[datetime, int, History]], index: int, history: History) -> None:
    try:
        moment = next(history)
    except StopIteration:
        return
    heapq.heappush(queue, (moment, index, history))


def starting_at(moment: datetime, history_factory: Callable[[], History]) -> History:
    """A history that begins at ``moment`` on the timeline."""
    yield moment
    yield from history_factory()


def run_one(history: History, on_step: Callable[[], None] | None = None) -> None:
    """Run a single history to its end on the moving clock."""
    for moment in history:
        clock.catch_up(moment)
        if on_step:
            on_step()
