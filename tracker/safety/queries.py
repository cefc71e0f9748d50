"""Reading safety records, in a fixed number of queries per page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.participants.models import Participant
from tracker.participants.queries import visibility, without_protocol_text
from tracker.safety.models import AdverseEvent, PregnancyTest, SideEffect, SuicidalityScreen
from tracker.sites.models import Site


def adverse_events_of(db: Session, participant_id: int) -> list[AdverseEvent]:
    return list(
        db.scalars(
            sa.select(AdverseEvent)
            .where(AdverseEvent.participant_id == participant_id)
            .order_by(AdverseEvent.onset_at)
        )
    )


def side_effects_of(db: Session, participant_id: int) -> list[SideEffect]:
    return list(
        db.scalars(
            sa.select(SideEffect)
            .where(SideEffect.participant_id == participant_id)
            .order_by(SideEffect.onset_at)
        )
    )


def screens_of(db: Session, participant_id: int) -> list[SuicidalityScreen]:
    return list(
        db.scalars(
            sa.select(SuicidalityScreen)
            .where(SuicidalityScreen.participant_id == participant_id)
            .order_by(SuicidalityScreen.screened_at)
        )
    )


def open_adverse_events(
    db: Session, user: User, limit: int = 50
) -> list[tuple[AdverseEvent, Participant]]:
    """Serious events not yet reported, and events not yet assessed by an investigator."""
    rows = db.execute(
        sa.select(AdverseEvent, Participant)
        .options(without_protocol_text())
        .join(Participant, Participant.id == AdverseEvent.participant_id)
        .where(
            *visibility(user),
            sa.or_(
                sa.and_(AdverseEvent.serious.is_(True), AdverseEvent.reported_at.is_(None)),
                AdverseEvent.relatedness.is_(None),
            ),
        )
        .order_by(
            AdverseEvent.report_due_at.is_(None), AdverseEvent.report_due_at, AdverseEvent.onset_at
        )
        .limit(limit)
    )
    return [(e, p) for e, p in rows]


def pregnancy_tests_of(db: Session, participant_id: int) -> list[PregnancyTest]:
    return list(
        db.scalars(
            sa.select(PregnancyTest)
            .where(PregnancyTest.participant_id == participant_id)
            .order_by(PregnancyTest.tested_at)
        )
    )


@dataclass(frozen=True)
class EventLogFilter:
    """The adverse-event log's filters and order (every value checked by ``from_args``)."""

    site: str | None = None
    serious: bool | None = None
    assessed: bool | None = None
    min_grade: int | None = None
    sort: str = "onset"
    descending: bool = True

    SORTS: ClassVar[tuple[str, ...]] = ("onset", "grade", "report_due", "participant", "term")

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> EventLogFilter:
        def yes_no(name: str) -> bool | None:
            return {"yes": True, "no": False}.get(args.get(name, ""))

        grade = args.get("min_grade", "")
        sort = args.get("sort", "onset")
        return cls(
            site=(args.get("site") or "").strip().upper() or None,
            serious=yes_no("serious"),
            assessed=yes_no("assessed"),
            min_grade=int(grade) if grade in ("1", "2", "3", "4", "5") else None,
            sort=sort if sort in cls.SORTS else "onset",
            descending=args.get("order", "desc") != "asc",
        )


def adverse_event_log(
    db: Session, user: User, flt: EventLogFilter, limit: int | None = 500
) -> list[tuple[AdverseEvent, Participant, str]]:
    """Every adverse event the user may see, filtered and sorted: (event, participant, site)."""
    columns = {
        "onset": AdverseEvent.onset_at,
        "grade": AdverseEvent.grade,
        "report_due": AdverseEvent.report_due_at,
        "participant": Participant.study_id,
        "term": AdverseEvent.term,
    }
    order = columns[flt.sort]
    query = (
        sa.select(AdverseEvent, Participant, Site.code)
        .options(without_protocol_text())
        .join(Participant, Participant.id == AdverseEvent.participant_id)
        .join(Site, Site.id == Participant.site_id)
        .where(*visibility(user))
        .order_by(order.desc() if flt.descending else order.asc(), AdverseEvent.id)
    )
    if flt.site:
        query = query.where(Site.code == flt.site)
    if flt.serious is not None:
        query = query.where(AdverseEvent.serious.is_(flt.serious))
    if flt.assessed is not None:
        query = query.where(
            AdverseEvent.relatedness.is_not(None)
            if flt.assessed
            else AdverseEvent.relatedness.is_(None)
        )
    if flt.min_grade is not None:
        query = query.where(AdverseEvent.grade >= flt.min_grade)
    if limit is not None:
        query = query.limit(limit)
    return [(e, p, code) for e, p, code in db.execute(query)]
