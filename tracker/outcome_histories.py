"""Generated outcome histories for the demo and the benchmarks: a participant under a protocol
with outcome measures, taken through treatment by ``protocol_history`` and assessed at each
timepoint while its window is open, then followed up. The scores follow a trajectory (a
responder, a partial responder, a relapse); the item scores are spread to make each total.
Everything goes through the same services as the pages and the API."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy.orm import Session

from tracker import clock
from tracker.auth.models import User
from tracker.auth.services import actor_for
from tracker.histories import History, Team, _move, protocol_history
from tracker.outcomes import queries
from tracker.outcomes.services import record_assessment, set_raters
from tracker.participants.models import Participant
from tracker.protocol import ProtocolDefinition, State
from tracker.protocol.outcomes import (
    Instrument,
    InstrumentKind,
    Scoring,
    Timepoint,
    missing_instruments,
    window_of,
)
from tracker.study.services import definition_of

# The share of the baseline total left at each timepoint, by trajectory.
TRAJECTORIES: dict[str, dict[str, float]] = {
    "responder": {
        "cycle_1": 0.75,
        "cycle_2": 0.5,
        "cycle_3": 0.3,
        "primary_endpoint": 0.25,
        "month_6": 0.28,
        "month_12": 0.3,
    },
    "partial": {
        "cycle_1": 0.9,
        "cycle_2": 0.8,
        "cycle_3": 0.7,
        "primary_endpoint": 0.65,
        "month_6": 0.7,
        "month_12": 0.72,
    },
    "relapse": {
        "cycle_1": 0.7,
        "cycle_2": 0.45,
        "cycle_3": 0.3,
        "primary_endpoint": 0.3,
        "month_6": 0.55,
        "month_12": 0.8,
    },
}
BASELINE_SHARE = 0.58  # of the instrument's maximum: a moderate-to-severe start


@dataclass
class OutcomePlan:
    trajectory: str
    stage: str = "completed"  # how far treatment goes (histories.STAGES)
    discontinue: bool = False  # stop treatment at the end of ``stage`` and go to follow-up
    # The history ends when this timepoint's window opens, leaving it to be done (the demo's
    # rater has work waiting).
    stop_before: str | None = None


def spread(instrument: Instrument, total: int, rng: random.Random) -> dict[str, int]:
    """Item scores within their ranges that make ``total`` (clamped to the instrument's range)."""
    items = list(instrument.items)
    if instrument.scoring == Scoring.HIGHEST_ITEM:
        level = max(0, min(total, len(items)))
        return {item.code: int(position < level) for position, item in enumerate(items)}
    total = max(instrument.minimum_total, min(total, instrument.maximum_total))
    scores = {item.code: item.minimum for item in items}
    left = total - instrument.minimum_total
    while left > 0:
        item = rng.choice([i for i in items if scores[i.code] < i.maximum])
        scores[item.code] += 1
        left -= 1
    return scores


def _target_total(
    instrument: Instrument, timepoint: Timepoint, plan: OutcomePlan, rng: random.Random
) -> int:
    if instrument.scoring == Scoring.HIGHEST_ITEM:
        return 1 if timepoint.code == "baseline" and rng.random() < 0.3 else 0
    baseline = BASELINE_SHARE * instrument.maximum_total
    share = (
        1.0
        if timepoint.code == "baseline"
        else TRAJECTORIES[plan.trajectory].get(timepoint.code, 0.8)
    )
    return round(baseline * share * rng.uniform(0.9, 1.1))


def _record_open(
    db: Session,
    team: Team,
    rater: User,
    participant: Participant,
    plan: OutcomePlan,
    rng: random.Random,
) -> None:
    """Every instrument of every timepoint whose window is open today and not yet recorded."""
    protocol = definition_of(participant.protocol_version)
    anchors = queries.anchor_days(db, participant, protocol)
    done = {(a.timepoint, a.instrument) for a in queries.assessments_of(db, participant.id)}
    today = clock.now().date()
    for point in protocol.timepoints:
        if point.code == plan.stop_before:
            break  # this one and the later ones are left to do
        window = window_of(point, anchors)
        # The baseline is rated in preparation, once eligibility is confirmed: its window is the
        # weeks before the first dosing, which is not booked yet (rated at enrolment, it would
        # be stale by the time screening and preparation are over).
        baseline_open = (
            window is None and point.code == "baseline" and participant.state == State.PREPARATION
        )
        if not baseline_open and (window is None or not window[0] <= today <= window[1]):
            continue
        for code in point.instruments:
            if (point.code, code) in done:
                continue
            instrument = protocol.instrument(code)
            who = rater if instrument.kind == InstrumentKind.CLINICIAN else team.coordinator
            record_assessment(
                db,
                actor_for(who),
                participant,
                timepoint=point.code,
                instrument=code,
                administered_at=clock.now(),
                items=spread(instrument, _target_total(instrument, point, plan, rng), rng),
            )


def _next_window(
    db: Session,
    participant: Participant,
    protocol: ProtocolDefinition,
    after: datetime,
    plan: OutcomePlan,
) -> datetime | None:
    """The next day, after ``after``, on which a timepoint's window opens with nothing recorded
    (none once the plan's last timepoint to record is passed)."""
    anchors = queries.anchor_days(db, participant, protocol)
    recorded = {(a.timepoint, a.instrument) for a in queries.assessments_of(db, participant.id)}
    days = []
    stop = (
        [t.code for t in protocol.timepoints].index(plan.stop_before) if plan.stop_before else None
    )
    for index, point in enumerate(protocol.timepoints):
        if stop is not None and index >= stop:
            break
        window = window_of(point, anchors)
        if window is None or not missing_instruments(point, recorded):
            continue
        opens = datetime.combine(max(window[0], after.date()), time(10), tzinfo=after.tzinfo)
        if opens > after and opens.date() <= window[1]:
            days.append(opens + timedelta(days=1))
    return min(days, default=None)


def outcome_history(
    db: Session,
    team: Team,
    rater: User,
    rng: random.Random,
    plan: OutcomePlan,
) -> History:
    """One participant under the active protocol (which must have outcome measures), assessed
    at every timepoint in its window, then followed up and, at the end, completed."""
    enrolled: list[Participant] = []
    inner = protocol_history(db, team, rng, plan.stage, notes=False, enrolled=enrolled)
    participant: Participant | None = None

    def step() -> None:
        assert participant is not None
        db.refresh(participant)
        if State(participant.state) not in (State.ON_HOLD,):
            _record_open(db, team, rater, participant, plan, rng)

    for moment in inner:
        if participant is None and enrolled:
            participant = enrolled[0]
            set_raters(db, team.as_coordinator, participant, [rater.username])
        if participant is not None:
            protocol = definition_of(participant.protocol_version)
            while (
                extra := _next_window(db, participant, protocol, clock.now(), plan)
            ) and extra < moment:
                yield extra
                step()
        yield moment
        if participant is not None:
            step()
    assert participant is not None
    db.refresh(participant)
    if plan.discontinue and participant.state != State.FOLLOW_UP:
        _move(
            db,
            team.as_investigator,
            participant,
            "discontinue_treatment",
            reason="Chose to stop the dosing sessions; agreed to be followed up.",
        )
    protocol = definition_of(participant.protocol_version)
    step()
    while (extra := _next_window(db, participant, protocol, clock.now(), plan)) is not None:
        yield extra
        step()
    db.refresh(participant)
    if participant.state == State.FOLLOW_UP and plan.stop_before is None:
        yield clock.now() + timedelta(days=1)
        _move(db, team.as_coordinator, participant, "complete_follow_up")


def outcome_histories(
    db: Session, team: Team, rater: User, seed: int, plans: list[OutcomePlan]
) -> list[Callable[[], History]]:
    """Factories of the histories of ``plans``, for ``histories.starting_at``."""
    rng = random.Random(seed)  # noqa: S311 (generated data, not security)
    return [functools.partial(outcome_history, db, team, rater, rng, plan) for plan in plans]
