"""Reading safety records, in a fixed number of queries per page."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.participants.models import Participant
from tracker.participants.queries import visibility, without_protocol_text
from tracker.safety.models import AdverseEvent, PregnancyTest, SideEffect, SuicidalityScreen


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
