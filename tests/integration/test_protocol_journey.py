"""Participants taken through the protocol by the history generator, on a moving clock."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import verify
from tracker.histories import STAGES, protocol_history, run_histories
from tracker.participants.models import Participant, TransitionEvent
from tracker.sessions.models import TherapySession


def _participants(session: Session) -> list[Participant]:
    return list(session.scalars(sa.select(Participant).order_by(Participant.id)))


def test_the_whole_protocol_three_cycles_to_completed(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    run_histories([protocol_history(db_session, team, random.Random(1), "completed")])
    (participant,) = _participants(db_session)
    assert (participant.state, participant.cycle) == ("completed", 3)
    transitions = list(
        db_session.scalars(
            sa.select(TransitionEvent.transition)
            .where(TransitionEvent.participant_id == participant.id)
            .order_by(TransitionEvent.version_after)
        )
    )
    assert transitions == ["confirm_eligibility"] + ["start_dosing", "complete_dosing"] * 3 + [
        "complete_protocol"
    ]
    kinds = db_session.execute(
        sa.select(TherapySession.kind, sa.func.count())
        .where(TherapySession.participant_id == participant.id)
        .group_by(TherapySession.kind)
    ).all()
    assert dict(kinds) == {"preparation": 3, "dosing": 3, "integration": 9}
    assert verify(db_session).ok


@pytest.mark.parametrize(
    "stage,state,cycle",
    [
        ("enrolled", "screening", 0),
        ("ready_to_confirm", "screening", 0),
        ("preparation", "preparation", 0),
        ("dosing_in_progress", "dosing", 1),
        ("integration", "integration", 1),
        ("cycle_2", "integration", 2),
    ],
)
def test_each_stage_is_reached(
    db_session: Session, team, stage: str, state: str, cycle: int
) -> None:  # type: ignore[no-untyped-def]
    assert stage in STAGES
    run_histories([protocol_history(db_session, team, random.Random(2), stage)])
    (participant,) = _participants(db_session)
    assert (participant.state, participant.cycle) == (state, cycle)


def test_a_serious_adverse_event_holds_the_participant(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    run_histories(
        [
            protocol_history(
                db_session, team, random.Random(3), "completed", serious_event_in_cycle=1
            )
        ]
    )
    (participant,) = _participants(db_session)
    assert (participant.state, participant.held_from) == ("on_hold", "integration")
    hold = db_session.scalar(
        sa.select(TransitionEvent)
        .where(TransitionEvent.participant_id == participant.id)
        .order_by(TransitionEvent.version_after.desc())
        .limit(1)
    )
    assert hold.automatic and "serious adverse event" in hold.reason


def test_interleaved_histories_keep_the_audit_trail_in_time_order(
    db_session: Session, team
) -> None:  # type: ignore[no-untyped-def]
    from tracker.audit.models import AuditEvent

    rng = random.Random(4)
    run_histories(
        [
            protocol_history(db_session, team, rng, stage)
            for stage in ("preparation", "integration", "enrolled")
        ]
    )
    times = list(db_session.scalars(sa.select(AuditEvent.occurred_at).order_by(AuditEvent.seq)))
    assert times == sorted(times)
    assert {p.state for p in _participants(db_session)} == {
        "preparation",
        "integration",
        "screening",
    }
