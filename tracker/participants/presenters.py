"""Read-only views of participants for the pages: labels, the dashboard's phase counts and its
screening work list (a bounded number of queries, whatever the study's size)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.participants.models import (
    ChecklistAnswer,
    ChecklistSignature,
    Consent,
    Participant,
    ReviewAssessment,
)
from tracker.participants.queries import visible_to, without_protocol_text
from tracker.protocol import ChecklistAnswer as CoreAnswer
from tracker.protocol import (
    ChecklistOutcome,
    Phase,
    State,
    checklist_content_for_signature,
    evaluate_checklist,
    phase_of,
)
from tracker.protocol import ReviewAssessment as CoreAssessment
from tracker.study.services import definition_of

WORKLIST_LIMIT = 20

PHASE_TITLES: dict[Phase, str] = {
    Phase.SCREENING_PREPARATION: "Screening and preparation",
    Phase.DOSING: "Dosing",
    Phase.INTEGRATION: "Integration",
    Phase.FOLLOW_UP: "Follow-up",
    Phase.CLOSED: "Closed",
}

# The states each phase column of the dashboard shows, in protocol order.
PHASE_STATES: dict[Phase, tuple[State, ...]] = {
    Phase.SCREENING_PREPARATION: (State.SCREENING, State.PREPARATION),
    Phase.DOSING: (State.DOSING,),
    Phase.INTEGRATION: (State.INTEGRATION,),
    Phase.FOLLOW_UP: (State.FOLLOW_UP,),
    Phase.CLOSED: (State.COMPLETED, State.SCREEN_FAILED, State.WITHDRAWN),
}


def therapist_choices(therapists: list[User]) -> list[tuple[str, str]]:
    """The choices of a therapist field: username, shown with the printed name."""
    return [(t.username, f"{t.printed_name} ({t.username})") for t in therapists]


def state_label(state: str) -> str:
    return state.replace("_", " ")


def phase_label(participant: Participant) -> str:
    held_from = State(participant.held_from) if participant.held_from else None
    return PHASE_TITLES[phase_of(State(participant.state), held_from)]


@dataclass(frozen=True)
class PhaseCounts:
    phase: Phase
    title: str
    states: list[tuple[str, int]]

    @property
    def total(self) -> int:
        return sum(count for _, count in self.states)


def phase_counts(counts: dict[str, int]) -> tuple[list[PhaseCounts], int, int]:
    """Counts per state (``queries.counts_by_state``) grouped by phase, the on-hold count, and
    the total."""
    phases = [
        PhaseCounts(phase, PHASE_TITLES[phase], [(s.value, counts[s.value]) for s in states])
        for phase, states in PHASE_STATES.items()
    ]
    return phases, counts[State.ON_HOLD], sum(counts.values())


@dataclass
class ScreeningItem:
    """A participant in screening and what it is waiting for."""

    participant: Participant
    outcome: ChecklistOutcome
    reasons: tuple[str, ...]
    signed: bool
    consented: bool
    steps: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.outcome is ChecklistOutcome.ELIGIBLE and self.signed and self.consented


@dataclass(frozen=True)
class Worklist:
    screening: list[ScreeningItem]
    screening_total: int
    on_hold: list[Participant]
    on_hold_total: int


def _next_steps(item: ScreeningItem) -> list[str]:
    if item.outcome is ChecklistOutcome.INELIGIBLE:
        return ["Ineligible: record the screen failure"]
    if item.outcome is ChecklistOutcome.INCOMPLETE:
        steps = [f"Checklist incomplete ({len(item.reasons)} open)"]
    elif not item.signed:
        steps = ["Eligible, awaiting the investigator's signature"]
    else:
        steps = []
    if not item.consented:
        steps.append("Consent not recorded")
    return steps or ["Ready to confirm eligibility"]


def worklist(
    db: Session, user: User, counts: dict[str, int], limit: int = WORKLIST_LIMIT
) -> Worklist:
    """What needs action: the longest-waiting participants in screening (at most ``limit``,
    checked with four queries in all, not several per participant) and those on hold."""
    visible = visible_to(user)
    # The consent and the signature ride on each participant's row (correlated lookups on
    # indexed columns) instead of two more queries over the work list.
    consented = sa.exists().where(Consent.participant_id == Participant.id)
    signed_hash = (
        sa.select(ChecklistSignature.content_hash)
        .where(
            ChecklistSignature.participant_id == Participant.id,
            ChecklistSignature.voided_at.is_(None),
        )
        .order_by(ChecklistSignature.signed_at.desc(), ChecklistSignature.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = db.execute(
        visible.add_columns(consented.label("consented"), signed_hash.label("signed_hash"))
        .where(Participant.state == State.SCREENING)
        .order_by(Participant.enrolled_at, Participant.id)
        .limit(limit)
    ).all()
    screening = [participant for participant, _, _ in rows]
    on_hold = list(
        db.scalars(
            visible.options(without_protocol_text())
            .where(Participant.state == State.ON_HOLD)
            .order_by(Participant.updated_at, Participant.id)
            .limit(limit)
        )
    )
    ids = [p.id for p in screening]
    # Plain rows straight into the core's values: a work list of 20 holds some 400 answers,
    # and an ORM object each would cost more than everything else on the dashboard.
    answers: dict[int, dict[str, CoreAnswer]] = defaultdict(dict)
    assessments: dict[int, dict[str, CoreAssessment]] = defaultdict(dict)
    if ids:
        for participant_id, code, answer, note in db.execute(
            sa.select(
                ChecklistAnswer.participant_id,
                ChecklistAnswer.item_code,
                ChecklistAnswer.answer,
                ChecklistAnswer.note,
            ).where(ChecklistAnswer.participant_id.in_(ids))
        ):
            answers[participant_id][code] = CoreAnswer(code, answer, note or "")
        for participant_id, code, acceptable, rationale in db.execute(
            sa.select(
                ReviewAssessment.participant_id,
                ReviewAssessment.item_code,
                ReviewAssessment.acceptable,
                ReviewAssessment.rationale,
            )
            .where(ReviewAssessment.participant_id.in_(ids), ReviewAssessment.voided_at.is_(None))
            .order_by(ReviewAssessment.assessed_at)
        ):
            assessments[participant_id][code] = CoreAssessment(code, acceptable, rationale)
    items = []
    for participant, has_consent, signature_hash in rows:
        definition = definition_of(participant.protocol_version)
        core_answers = answers[participant.id]
        core_assessments = assessments[participant.id]
        evaluation = evaluate_checklist(definition.checklist, core_answers, core_assessments)
        signed = False
        if signature_hash is not None:
            content = checklist_content_for_signature(
                definition.checklist, core_answers, core_assessments
            )
            signed = signature_hash == hashlib.sha256(content.encode("utf-8")).hexdigest()
        item = ScreeningItem(
            participant=participant,
            outcome=evaluation.outcome,
            reasons=evaluation.reasons,
            signed=signed,
            consented=bool(has_consent),
        )
        item.steps = _next_steps(item)
        items.append(item)
    return Worklist(
        screening=items,
        screening_total=counts[State.SCREENING],
        on_hold=on_hold,
        on_hold_total=counts[State.ON_HOLD],
    )
