"""Safety records: side effects, adverse events (reported, assessed by an investigator,
followed up), suicidality screens and pregnancy tests. A serious adverse event or a positive
screen places the participant on an automatic hold in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, record_event
from tracker.auth.models import User
from tracker.db import utcnow
from tracker.errors import NotFound
from tracker.notifications import services as notifications
from tracker.participants import queries as participant_queries
from tracker.participants.models import Participant
from tracker.participants.recording import (
    MAX_TERM,
    RECORDING_ROLES,
    not_future,
    raise_problems,
    require_open,
    require_role,
    text_field,
)
from tracker.participants.transitions import place_on_automatic_hold
from tracker.protocol import RecordKind, Role
from tracker.protocol.dosing import (
    AdverseEventOutcome,
    Relatedness,
    SeriousCriterion,
    Severity,
    serious_report_due,
    suicidality_positive,
)
from tracker.safety.models import AdverseEvent, PregnancyTest, SideEffect, SuicidalityScreen
from tracker.sessions.services import check_session_of_participant


def record_side_effect(
    db: Session,
    actor: Actor,
    participant: Participant,
    *,
    term: str,
    severity: str,
    onset_at: datetime,
    resolved_at: datetime | None = None,
    session_id: int | None = None,
) -> SideEffect:
    require_role(actor, *RECORDING_ROLES)
    require_open(participant, RecordKind.SIDE_EFFECT)
    problems: list[str] = []
    term_text = text_field(term, "The term", problems, limit=MAX_TERM)
    if severity not in {s.value for s in Severity}:
        problems.append("severity must be mild, moderate or severe.")
    not_future(onset_at, "The onset", problems)
    not_future(resolved_at, "The resolution", problems)
    if resolved_at is not None and resolved_at < onset_at:
        problems.append("The resolution cannot be before the onset.")
    raise_problems(problems, "The side effect was not recorded")
    check_session_of_participant(db, participant, session_id)
    row = SideEffect(
        participant_id=participant.id,
        session_id=session_id,
        term=term_text or "",
        severity=severity,
        onset_at=onset_at,
        resolved_at=resolved_at,
        recorded_by_id=actor.user_id,
    )
    db.add(row)
    db.flush()
    record_event(
        db,
        actor,
        "side_effect.record",
        "participant",
        participant.study_id,
        new={
            "id": row.id,
            "term": row.term,
            "severity": severity,
            "onset_at": onset_at,
            "resolved_at": resolved_at,
        },
    )
    return row


def record_adverse_event(
    db: Session,
    actor: Actor,
    participant: Participant,
    *,
    term: str,
    onset_at: datetime,
    grade: int,
    serious: bool,
    serious_criteria: Sequence[str] = (),
    description: str | None = None,
    aware_at: datetime | None = None,
    session_id: int | None = None,
) -> AdverseEvent:
    """An adverse event. A serious one places the participant on hold in this transaction and
    is due for report 24 h after the site became aware of it."""
    require_role(actor, *RECORDING_ROLES)
    require_open(participant, RecordKind.ADVERSE_EVENT)
    problems: list[str] = []
    term_text = text_field(term, "The term", problems, limit=MAX_TERM)
    text = text_field(description, "The description", problems, required=False)
    aware = aware_at or utcnow()
    not_future(onset_at, "The onset", problems)
    not_future(aware, "The time the site became aware", problems)
    if aware < onset_at:
        problems.append("The site cannot have become aware before the onset.")
    if not isinstance(grade, int) or not 1 <= grade <= 5:
        problems.append("grade must be a CTCAE grade from 1 to 5.")
    known = {c.value for c in SeriousCriterion}
    unknown = [c for c in serious_criteria if c not in known]
    if unknown:
        problems.append(
            f"Unknown seriousness criteria: {', '.join(unknown)}; use {', '.join(sorted(known))}."
        )
    if serious and not serious_criteria:
        problems.append("A serious adverse event needs at least one seriousness criterion.")
    if not serious and serious_criteria:
        problems.append("Seriousness criteria apply only to a serious adverse event.")
    if grade == 5 and "death" not in serious_criteria:
        problems.append("A grade 5 event is fatal: mark it serious with the criterion 'death'.")
    raise_problems(problems, "The adverse event was not recorded")
    check_session_of_participant(db, participant, session_id)
    row = AdverseEvent(
        participant_id=participant.id,
        session_id=session_id,
        term=term_text or "",
        description=text,
        onset_at=onset_at,
        aware_at=aware,
        grade=grade,
        serious=serious,
        serious_criteria=sorted(set(serious_criteria)),
        outcome=AdverseEventOutcome.ONGOING.value,
        report_due_at=serious_report_due(aware) if serious else None,
        recorded_by_id=actor.user_id,
    )
    db.add(row)
    db.flush()
    record_event(
        db,
        actor,
        "adverse_event.record",
        "participant",
        participant.study_id,
        new={
            "id": row.id,
            "term": row.term,
            "grade": grade,
            "serious": serious,
            "serious_criteria": row.serious_criteria,
            "onset_at": onset_at,
            "report_due_at": row.report_due_at,
        },
    )
    if serious:
        held = place_on_automatic_hold(
            db,
            actor,
            participant,
            f"serious adverse event #{row.id} ({row.term}, grade {grade})",
        )
        assert row.report_due_at is not None
        notifications.queue(
            db,
            actor,
            site_id=participant.site_id,
            kind="serious_adverse_event",
            key=f"adverse_event:{row.id}",
            participant_id=participant.id,
            subject=f"[tracker] Serious adverse event: {participant.study_id}",
            body=(
                f"A serious adverse event (#{row.id}, grade {grade}) was recorded for "
                f"participant {participant.study_id} at {utc(row.recorded_at)}."
                + (" The participant is on an automatic safety hold." if held else "")
                + f"\nThe report is due by {utc(row.report_due_at)}; an investigator "
                "assesses the event."
            ),
        )
    return row


def get_adverse_event(db: Session, user: User, event_id: int) -> AdverseEvent:
    row = db.get(AdverseEvent, event_id)
    if row is None:
        raise NotFound(f"No adverse event {event_id}.")
    participant_queries.get_participant(db, user, row.participant_id)
    return row


def assess_adverse_event(
    db: Session,
    actor: Actor,
    event: AdverseEvent,
    *,
    relatedness: str,
    expected: bool,
    note: str | None = None,
) -> AdverseEvent:
    """The investigator's assessment of relatedness and expectedness."""
    require_role(actor, Role.INVESTIGATOR)
    problems: list[str] = []
    if relatedness not in {r.value for r in Relatedness}:
        problems.append(
            "relatedness must be one of " + ", ".join(r.value for r in Relatedness) + "."
        )
    text = text_field(note, "The note", problems, required=False)
    raise_problems(problems, "The assessment was not recorded")
    old = {"relatedness": event.relatedness, "expected": event.expected}
    event.relatedness, event.expected, event.assessment_note = relatedness, expected, text
    event.assessed_by_id, event.assessed_at = actor.user_id, utcnow()
    db.flush()
    record_event(
        db,
        actor,
        "adverse_event.assess",
        "adverse_event",
        event.id,
        old=old,
        new={"relatedness": relatedness, "expected": expected, "note": text},
    )
    return event


def update_adverse_event(
    db: Session,
    actor: Actor,
    event: AdverseEvent,
    *,
    outcome: str | None = None,
    resolved_at: datetime | None = None,
    reported_at: datetime | None = None,
) -> AdverseEvent:
    """Follow-up: outcome, resolution, and when a serious event was reported."""
    require_role(actor, *RECORDING_ROLES)
    problems: list[str] = []
    if outcome is not None and outcome not in {o.value for o in AdverseEventOutcome}:
        problems.append(
            "outcome must be one of " + ", ".join(o.value for o in AdverseEventOutcome) + "."
        )
    not_future(resolved_at, "The resolution", problems)
    not_future(reported_at, "The report", problems)
    if resolved_at is not None and resolved_at < event.onset_at:
        problems.append("The resolution cannot be before the onset.")
    if reported_at is not None and not event.serious:
        problems.append("Only a serious adverse event has an expedited report.")
    if reported_at is not None and reported_at < event.aware_at:
        problems.append("The report cannot be before the site became aware of the event.")
    raise_problems(problems, "The adverse event was not changed")
    old = {
        "outcome": event.outcome,
        "resolved_at": event.resolved_at,
        "reported_at": event.reported_at,
    }
    if outcome is not None:
        event.outcome = outcome
    if resolved_at is not None:
        event.resolved_at = resolved_at
    if reported_at is not None:
        event.reported_at = reported_at
    db.flush()
    new = {
        "outcome": event.outcome,
        "resolved_at": event.resolved_at,
        "reported_at": event.reported_at,
    }
    changed = [k for k in new if new[k] != old[k]]
    if changed:
        record_event(
            db,
            actor,
            "adverse_event.update",
            "adverse_event",
            event.id,
            old={k: old[k] for k in changed},
            new={k: new[k] for k in changed},
        )
    return event


def record_suicidality_screen(
    db: Session,
    actor: Actor,
    participant: Participant,
    *,
    ideation: bool,
    intent: bool,
    plan: bool,
    behaviour: bool,
    screened_at: datetime | None = None,
    session_id: int | None = None,
) -> SuicidalityScreen:
    """A C-SSRS style screen; a positive one places the participant on hold at once."""
    require_role(actor, *RECORDING_ROLES)
    require_open(participant, RecordKind.SUICIDALITY_SCREEN)
    problems: list[str] = []
    moment = screened_at or utcnow()
    not_future(moment, "The screen", problems)
    raise_problems(problems, "The screen was not recorded")
    check_session_of_participant(db, participant, session_id)
    positive = suicidality_positive(ideation, intent, plan, behaviour)
    row = SuicidalityScreen(
        participant_id=participant.id,
        session_id=session_id,
        screened_at=moment,
        ideation=ideation,
        intent=intent,
        plan=plan,
        behaviour=behaviour,
        positive=positive,
        recorded_by_id=actor.user_id,
    )
    db.add(row)
    db.flush()
    record_event(
        db,
        actor,
        "suicidality_screen.record",
        "participant",
        participant.study_id,
        new={
            "id": row.id,
            "ideation": ideation,
            "intent": intent,
            "plan": plan,
            "behaviour": behaviour,
            "positive": positive,
        },
    )
    if positive:
        held = place_on_automatic_hold(
            db, actor, participant, f"positive suicidality screen #{row.id}"
        )
        notifications.queue(
            db,
            actor,
            site_id=participant.site_id,
            kind="positive_suicidality_screen",
            key=f"suicidality_screen:{row.id}",
            participant_id=participant.id,
            subject=f"[tracker] Positive suicidality screen: {participant.study_id}",
            body=(
                f"A suicidality screen (#{row.id}) of participant {participant.study_id} was "
                f"positive at {utc(row.recorded_at)}."
                + (" The participant is on an automatic safety hold." if held else "")
                + "\nAn investigator reviews the participant now."
            ),
        )
    return row


def queue_overdue_report_notices(db: Session, actor: Actor) -> int:
    """Each serious adverse event past its report deadline and not reported: its site's
    investigators are told once. Returns how many messages were queued."""
    overdue = db.execute(
        sa.select(AdverseEvent, Participant)
        .join(Participant, Participant.id == AdverseEvent.participant_id)
        .where(
            AdverseEvent.serious.is_(True),
            AdverseEvent.reported_at.is_(None),
            AdverseEvent.report_due_at < utcnow(),
        )
        .order_by(AdverseEvent.id)
    ).all()
    queued = 0
    for event, participant in overdue:
        try:
            # Another worker may announce the same event at the same moment: one wins.
            with db.begin_nested():
                queued += _queue_overdue(db, actor, event, participant)
        except IntegrityError:
            continue
    return queued


def _queue_overdue(db: Session, actor: Actor, event: AdverseEvent, participant: Participant) -> int:
    assert event.report_due_at is not None
    return len(
        notifications.queue(
            db,
            actor,
            site_id=participant.site_id,
            kind="serious_report_overdue",
            key=f"adverse_event_overdue:{event.id}",
            participant_id=participant.id,
            subject=f"[tracker] Serious adverse event report overdue: {participant.study_id}",
            body=(
                f"The report of serious adverse event #{event.id} of participant "
                f"{participant.study_id} was due by {utc(event.report_due_at)} and is not "
                "recorded as sent."
            ),
        )
    )


def utc(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def record_pregnancy_test(
    db: Session,
    actor: Actor,
    participant: Participant,
    *,
    tested_at: datetime,
    result: str,
) -> PregnancyTest:
    require_role(actor, *RECORDING_ROLES)
    require_open(participant, RecordKind.PREGNANCY_TEST)
    problems: list[str] = []
    if result not in ("negative", "positive"):
        problems.append("result must be negative or positive.")
    not_future(tested_at, "The test", problems)
    raise_problems(problems, "The pregnancy test was not recorded")
    row = PregnancyTest(
        participant_id=participant.id,
        tested_at=tested_at,
        result=result,
        recorded_by_id=actor.user_id,
    )
    db.add(row)
    db.flush()
    record_event(
        db,
        actor,
        "pregnancy_test.record",
        "participant",
        participant.study_id,
        new={"tested_at": tested_at, "result": result},
    )
    return row
