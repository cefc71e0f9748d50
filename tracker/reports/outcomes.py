"""The outcomes report (SPEC §10): per protocol, instrument and timepoint, how many were
assessed, the mean total, the mean change from baseline, and the response and remission rates
of the primary instrument. Pooled while the study is blinded (arms come with SPEC §11).

The builder is pure: it takes the assessments' totals and derives every figure with the core's
``change_from_baseline``, the same function the participant page and the API use."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.outcomes.models import Assessment
from tracker.participants.models import Participant
from tracker.participants.queries import visibility
from tracker.protocol import ProtocolDefinition
from tracker.protocol.outcomes import change_from_baseline
from tracker.randomisation.models import RandomisationEntry
from tracker.randomisation.queries import study_unblinded
from tracker.study.models import ProtocolVersion
from tracker.study.services import definition_of


class Total(NamedTuple):
    """One assessment's total (a tuple: a report reads tens of thousands)."""

    participant_id: int
    timepoint: str
    instrument: str
    total: int


@dataclass(frozen=True)
class OutcomeRow:
    protocol: str
    instrument: str
    timepoint: str
    n: int
    mean_total: float
    n_with_baseline: int
    mean_change: float | None
    responders: int | None
    response_rate: float | None
    remitters: int | None
    remission_rate: float | None
    arm: str | None = None  # by arm once the study is unblinded (SPEC §11), else pooled


def summarise(
    protocol: ProtocolDefinition, totals: Iterable[Total], arm: str | None = None
) -> list[OutcomeRow]:
    """The rows of one protocol (of one arm, given ``arm``), in its instrument and timepoint
    order."""
    rules = protocol.outcomes
    if rules is None:
        return []
    rows = list(totals)
    baselines = {
        (t.participant_id, t.instrument): t.total
        for t in rows
        if t.timepoint == rules.baseline_timepoint
    }
    cells: dict[tuple[str, str], list[Total]] = defaultdict(list)
    for t in rows:
        cells[(t.instrument, t.timepoint)].append(t)
    label = f"{protocol.code} v{protocol.version}"
    out = []
    for instrument in protocol.instruments:
        for point in protocol.timepoints:
            cell = cells.get((instrument.code, point.code))
            if not cell:
                continue
            changes = [
                change_from_baseline(
                    rules,
                    t.instrument,
                    baselines.get((t.participant_id, t.instrument)),
                    t.total,
                    timepoint=t.timepoint,
                )
                for t in cell
            ]
            deltas = [c.change_from_baseline for c in changes if c.change_from_baseline is not None]
            judged = [c.response for c in changes if c.response is not None]
            remission = [c.remission for c in changes if c.remission is not None]
            out.append(
                OutcomeRow(
                    protocol=label,
                    instrument=instrument.code,
                    timepoint=point.code,
                    n=len(cell),
                    mean_total=round(sum(t.total for t in cell) / len(cell), 2),
                    n_with_baseline=len(deltas),
                    mean_change=round(sum(deltas) / len(deltas), 2) if deltas else None,
                    responders=sum(judged) if judged else None,
                    response_rate=round(sum(judged) / len(judged), 3) if judged else None,
                    remitters=sum(remission) if remission else None,
                    remission_rate=round(sum(remission) / len(remission), 3) if remission else None,
                    arm=arm,
                )
            )
    return out


def outcome_rows(
    db: Session,
    user: User | None,
    within: sa.Select[Participant] | None = None,
    *,
    unblinded: bool | None = None,
) -> list[OutcomeRow]:
    """Every protocol version's rows, over the participants ``user`` may see (and, given
    ``within``, only those it selects: a report's site and state filters). Pooled while the
    study is blinded; by arm, for a randomised protocol, once it is unblinded."""
    scope = [] if within is None else [Participant.id.in_(within.with_only_columns(Participant.id))]
    by_arm = study_unblinded(db) is not None if unblinded is None else unblinded
    versions = db.scalars(sa.select(ProtocolVersion).order_by(ProtocolVersion.id)).all()
    result = []
    for version in versions:
        protocol = definition_of(version)
        if protocol.outcomes is None:
            continue
        query = (
            sa.select(
                Assessment.participant_id,
                Assessment.timepoint,
                Assessment.instrument,
                Assessment.total,
            )
            .join(Participant, Participant.id == Assessment.participant_id)
            .where(Participant.protocol_version_id == version.id, *visibility(user), *scope)
        )
        if not (by_arm and protocol.randomisation is not None):
            # Core rows, not ORM ones: the report reads every assessment of the study.
            totals = db.connection().execute(query)
            result += summarise(protocol, map(Total._make, totals))
            continue
        arms: dict[str, list[Total]] = {arm.code: [] for arm in protocol.randomisation.arms}
        allocated = query.add_columns(RandomisationEntry.arm).join(
            RandomisationEntry, RandomisationEntry.participant_id == Participant.id
        )
        for *values, arm in db.connection().execute(allocated):
            arms[arm].append(Total._make(values))
        for arm, rows in arms.items():
            result += summarise(protocol, rows, arm=arm)
    return result
