"""Hypothesis drives random sequences of actions through the services; after every step the
stored participant is exactly what the protocol core decided (SPEC §3)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.orm import Session

from tests.factories import PASSWORD, actor, all_no, make_participant, make_user
from tracker import clock
from tracker.errors import Conflict, DomainError, RuleViolation
from tracker.participants.models import Participant, TransitionEvent
from tracker.participants.services import record_checklist_answers, record_consent, sign_checklist
from tracker.participants.transitions import apply_transition, participant_facts
from tracker.protocol import TRANSITIONS, Role, State, WithdrawalCategory, decide
from tracker.sessions import services as session_services
from tracker.study.services import definition_of

ROLES = ["coordinator", "therapist", "investigator"]


def test_stored_state_always_equals_the_core_decision(db_session: Session) -> None:
    users = {role: make_user(db_session, role, "S01") for role in ROLES}
    users["therapist2"] = make_user(db_session, "therapist", "S01")

    class Protocol(RuleBasedStateMachine):
        @initialize(exclusion=st.booleans())
        def enrol(self, exclusion: bool) -> None:
            self.participant = make_participant(
                db_session, users["coordinator"], therapists=[users["therapist"].username]
            )
            answers = all_no(bipolar_i="history") if exclusion else all_no()
            record_checklist_answers(
                db_session, actor(users["coordinator"]), self.participant, answers
            )
            self.steps = 0

        @rule()
        def sign_and_consent(self) -> None:
            try:
                sign_checklist(
                    db_session,
                    users["investigator"],
                    actor(users["investigator"]),
                    self.participant,
                    PASSWORD,
                    "I confirm",
                )
                record_consent(
                    db_session,
                    actor(users["coordinator"]),
                    self.participant,
                    "ICF v1",
                    clock.now().date(),
                )
            except DomainError:
                pass  # not in screening any more, or already signed: the service said why

        @rule()
        def complete_a_session(self) -> None:
            kind = {"preparation": "preparation", "integration": "integration"}.get(
                self.participant.state
            )
            if kind is None:
                return
            clock.travel(timedelta(days=3))
            start = clock.now() - timedelta(hours=2)
            row = session_services.schedule_session(
                db_session,
                actor(users["coordinator"]),
                self.participant,
                kind=kind,
                scheduled_at=start,
            )
            session_services.update_session(
                db_session,
                actor(users["therapist"]),
                row,
                started_at=start,
                ended_at=start + timedelta(hours=1),
                status="completed",
            )

        @rule(
            name=st.sampled_from(sorted(TRANSITIONS)),
            role=st.sampled_from(ROLES),
            reason=st.sampled_from([None, "clinical reason"]),
            override=st.booleans(),
            category=st.sampled_from([None, "other"]),
            stale=st.booleans(),
        )
        def transition(
            self,
            name: str,
            role: str,
            reason: str | None,
            override: bool,
            category: str | None,
            stale: bool,
        ) -> None:
            participant = self.participant
            before = (
                participant.state,
                participant.held_from,
                participant.cycle,
                participant.version,
            )
            facts = participant_facts(db_session, participant)
            expected = decide(
                name,
                facts,
                Role(role),
                definition_of(participant.protocol_version),
                reason=reason,
                override=override,
                withdrawal_category=WithdrawalCategory(category) if category else None,
            )
            seen = participant.version - (1 if stale and participant.version > 1 else 0)
            try:
                apply_transition(
                    db_session,
                    actor(users[role]),
                    participant,
                    name,
                    expected_version=seen,
                    reason=reason,
                    override=override,
                    withdrawal_category=category,
                )
            except Conflict:
                assert seen != before[3]
                assert (participant.state, participant.version) == (before[0], before[3])
                return
            except RuleViolation as error:
                assert not expected.allowed, error.details
                assert list(error.details) == list(expected.reasons)
                assert (participant.state, participant.version) == (before[0], before[3])
                return
            assert seen == before[3] and expected.allowed
            assert participant.state == expected.target.value
            assert participant.cycle == expected.new_cycle
            assert participant.version == before[3] + 1
            assert participant.held_from == (
                before[0] if expected.target is State.ON_HOLD else None
            )

        @invariant()
        def stored_row_matches_the_object(self) -> None:
            if not hasattr(self, "participant"):
                return
            db_session.flush()
            stored = db_session.execute(
                sa.select(Participant.state, Participant.version, Participant.cycle).where(
                    Participant.id == self.participant.id
                )
            ).one()
            assert tuple(stored) == (
                self.participant.state,
                self.participant.version,
                self.participant.cycle,
            )
            events = db_session.scalar(
                sa.select(sa.func.count())
                .select_from(TransitionEvent)
                .where(TransitionEvent.participant_id == self.participant.id)
            )
            assert events == self.participant.version - 1

    run_state_machine_as_test(
        Protocol,
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
