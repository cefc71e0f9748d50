"""The participant state machine as a table, and the decision whether a transition may happen.

``TRANSITIONS`` holds one row per transition of SPEC §3. ``decide`` checks a request against its
row (role, source state, reason, guards) and reports every failure at once; the service applies
the decision's target and cycle and records ``guard_results()`` with the transition.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from tracker.protocol import guards
from tracker.protocol.definition import ProtocolDefinition
from tracker.protocol.facts import ParticipantFacts
from tracker.protocol.failures import GuardCode, GuardFailure
from tracker.protocol.guards import Guard
from tracker.protocol.roles import Role
from tracker.protocol.states import CLOSED_STATES, HOLDABLE_STATES, State, WithdrawalCategory


@dataclass(frozen=True)
class Transition:
    """One row of the transition table.

    ``target`` None means "back to the state the participant was held from" (``release_hold``).
    ``action`` completes the sentence "… may not …" in refusal messages.
    """

    name: str
    action: str
    sources: frozenset[State]
    target: State | None
    roles: frozenset[Role]
    guards: tuple[Guard, ...] = ()
    reason_required: bool = False
    withdrawal_category_required: bool = False
    starts_cycle: bool = False
    # Where the transition leads instead when the protocol has a follow-up phase (SPEC §10).
    target_with_follow_up: State | None = None


_COORDINATION = frozenset({Role.COORDINATOR, Role.INVESTIGATOR})
_OPEN_STATES = frozenset(State) - CLOSED_STATES

_TABLE = (
    Transition(
        name="confirm_eligibility",
        action="confirm eligibility",
        sources=frozenset({State.SCREENING}),
        target=State.PREPARATION,
        roles=_COORDINATION,
        guards=(guards.checklist_eligible, guards.checklist_signed, guards.consent_recorded),
    ),
    Transition(
        name="fail_screening",
        action="fail screening",
        sources=frozenset({State.SCREENING}),
        target=State.SCREEN_FAILED,
        roles=_COORDINATION,
        reason_required=True,
    ),
    Transition(
        name="start_dosing",
        action="start dosing",
        sources=frozenset({State.PREPARATION, State.INTEGRATION}),
        target=State.DOSING,
        roles=_COORDINATION,
        guards=(
            guards.preparation_sessions_completed,
            guards.integration_sessions_completed,
            guards.dosing_interval_respected,
            guards.cycle_limit_not_reached,
            guards.pregnancy_test_negative,
            guards.no_open_serious_adverse_event,
            guards.randomised_before_first_dosing,
        ),
        starts_cycle=True,
    ),
    Transition(
        name="complete_dosing",
        action="complete dosing",
        sources=frozenset({State.DOSING}),
        target=State.INTEGRATION,
        roles=_COORDINATION | {Role.THERAPIST},
        guards=(
            guards.dosing_session_completed,
            guards.initial_dose_given,
            guards.baseline_vitals_taken,
            guards.vitals_gap_within_limit,
            guards.therapists_present,
            guards.monitoring_long_enough,
            guards.overnight_stay_recorded,
            guards.vital_sign_alerts_acknowledged,
        ),
    ),
    Transition(
        name="complete_protocol",
        action="complete the protocol",
        sources=frozenset({State.INTEGRATION}),
        target=State.COMPLETED,
        roles=_COORDINATION,
        guards=(guards.final_cycle_reached, guards.integration_sessions_completed),
        target_with_follow_up=State.FOLLOW_UP,
    ),
    Transition(
        name="complete_follow_up",
        action="complete follow-up",
        sources=frozenset({State.FOLLOW_UP}),
        target=State.COMPLETED,
        roles=_COORDINATION,
        guards=(guards.follow_up_resolved,),
    ),
    Transition(
        name="discontinue_treatment",
        action="discontinue treatment",
        sources=frozenset({State.PREPARATION, State.DOSING, State.INTEGRATION, State.ON_HOLD}),
        target=State.FOLLOW_UP,
        roles=_COORDINATION,
        guards=(guards.protocol_has_follow_up,),
        reason_required=True,
    ),
    Transition(
        name="place_on_hold",
        action="place a participant on hold",
        sources=HOLDABLE_STATES,
        target=State.ON_HOLD,
        roles=_COORDINATION | {Role.THERAPIST},
        reason_required=True,
    ),
    Transition(
        name="release_hold",
        action="release a hold",
        sources=frozenset({State.ON_HOLD}),
        target=None,
        roles=frozenset({Role.INVESTIGATOR}),
        guards=(guards.no_open_serious_adverse_event_unless_documented,),
        reason_required=True,
    ),
    Transition(
        name="withdraw",
        action="withdraw a participant",
        sources=_OPEN_STATES,
        target=State.WITHDRAWN,
        roles=_COORDINATION,
        reason_required=True,
        withdrawal_category_required=True,
    ),
)

TRANSITIONS: Mapping[str, Transition] = MappingProxyType({row.name: row for row in _TABLE})
"""Every transition of SPEC §3 by name, in the order the table lists them."""


class UnknownTransitionError(ValueError):
    """A transition name that is not in ``TRANSITIONS``."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown transition {name!r}; known: {', '.join(TRANSITIONS)}")


@dataclass(frozen=True)
class CheckResult:
    """The result of one check: the failures that stand and those an investigator overrode."""

    check: str
    failures: tuple[GuardFailure, ...] = ()
    overridden: tuple[GuardFailure, ...] = ()
    skipped: bool = False

    @property
    def outcome(self) -> str:
        """``passed``, ``failed``, ``overridden``, or ``skipped`` (wrong source state)."""
        if self.skipped:
            return "skipped"
        if self.failures:
            return "failed"
        return "overridden" if self.overridden else "passed"


@dataclass(frozen=True)
class Decision:
    """Whether a transition may be applied, and with what effect.

    ``failures`` lists every check that failed (empty when allowed); ``overridden`` lists the
    failures an investigator waived, each of which the service records as a protocol deviation.
    """

    transition: str
    role: Role
    source: State
    target: State
    cycle: int
    new_cycle: int
    override_requested: bool
    checks: tuple[CheckResult, ...]

    @property
    def allowed(self) -> bool:
        """True when no failure stands."""
        return not self.failures

    @property
    def failures(self) -> tuple[GuardFailure, ...]:
        """Every failure that stands, in table order."""
        return tuple(failure for check in self.checks for failure in check.failures)

    @property
    def overridden(self) -> tuple[GuardFailure, ...]:
        """Every failure an investigator waived; each becomes a protocol deviation."""
        return tuple(failure for check in self.checks for failure in check.overridden)

    @property
    def reasons(self) -> tuple[str, ...]:
        """The messages of the standing failures, for a form error or an API 422's details."""
        return tuple(failure.message for failure in self.failures)

    def guard_results(self) -> list[dict[str, object]]:
        """Return every check with its outcome as JSON-able data, recorded with the transition."""
        return [
            {
                "check": check.check,
                "outcome": check.outcome,
                "failures": [failure.to_dict() for failure in check.failures],
                "overridden": [failure.to_dict() for failure in check.overridden],
            }
            for check in self.checks
        ]


@dataclass(frozen=True)
class TransitionOption:
    """A transition as offered on the participant page: allowed, or why not.

    ``can_override`` is true when every standing failure is one this role may override (only
    investigators may), so the page can offer an override with a reason.
    """

    name: str
    target: State
    allowed: bool
    reasons: tuple[str, ...]
    reason_required: bool
    can_override: bool

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form used by ``GET …/allowed-transitions``."""
        return {
            "transition": self.name,
            "target": str(self.target),
            "allowed": self.allowed,
            "reasons": list(self.reasons),
            "reason_required": self.reason_required,
            "can_override": self.can_override,
        }


def _article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _where(state: State) -> str:
    """'in screening', 'on hold': the phrase that follows 'is' in a sentence."""
    if state is State.ON_HOLD:
        return "on hold"
    return "in follow-up" if state is State.FOLLOW_UP else f"in {str(state).replace('_', ' ')}"


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _target(transition: Transition, facts: ParticipantFacts, protocol: ProtocolDefinition) -> State:
    if transition.target_with_follow_up is not None and protocol.has_follow_up:
        return transition.target_with_follow_up
    if transition.target is not None:
        return transition.target
    # A refused release_hold has no meaningful target; report the state it would stay in.
    return facts.held_from if facts.held_from is not None else facts.state


def _is_blank(text: str | None) -> bool:
    return text is None or not text.strip()


def _structural_checks(
    transition: Transition,
    facts: ParticipantFacts,
    role: Role,
    *,
    check_inputs: bool,
    reason: str | None,
    withdrawal_category: WithdrawalCategory | None,
) -> list[CheckResult]:
    checks: list[CheckResult] = []
    if role in transition.roles:
        checks.append(CheckResult("role"))
    else:
        allowed = _either([_article(str(r)) for r in Role if r in transition.roles])
        message = (
            f"{_article(str(role)).capitalize()} may not {transition.action}; only {allowed} may."
        )
        checks.append(
            CheckResult("role", (GuardFailure(str(GuardCode.ROLE_NOT_PERMITTED), message),))
        )

    if facts.state in transition.sources:
        checks.append(CheckResult("source_state"))
    else:
        sources = _either([_where(s) for s in State if s in transition.sources])
        message = (
            f"To {transition.action} the participant must be {sources}; "
            f"they are {_where(facts.state)}."
        )
        checks.append(
            CheckResult("source_state", (GuardFailure(str(GuardCode.WRONG_STATE), message),))
        )
    if (
        transition.target is None
        and facts.state is State.ON_HOLD
        and facts.held_from not in HOLDABLE_STATES
    ):
        message = (
            "The state the participant was held from is not recorded, "
            "so the hold cannot be released."
        )
        checks.append(
            CheckResult("held_from", (GuardFailure(str(GuardCode.HELD_FROM_UNKNOWN), message),))
        )

    if check_inputs and transition.reason_required:
        if _is_blank(reason):
            message = f"A reason is required to {transition.action}."
            checks.append(
                CheckResult("reason", (GuardFailure(str(GuardCode.REASON_REQUIRED), message),))
            )
        else:
            checks.append(CheckResult("reason"))
    if check_inputs and transition.withdrawal_category_required:
        if withdrawal_category is None:
            categories = _either([str(c).replace("_", " ") for c in WithdrawalCategory])
            message = f"A withdrawal category is required: {categories}."
            failure = GuardFailure(str(GuardCode.WITHDRAWAL_CATEGORY_REQUIRED), message)
            checks.append(CheckResult("withdrawal_category", (failure,)))
        else:
            checks.append(CheckResult("withdrawal_category"))
    return checks


def _evaluate(
    transition: Transition,
    facts: ParticipantFacts,
    role: Role,
    protocol: ProtocolDefinition,
    *,
    check_inputs: bool,
    reason: str | None,
    override: bool,
    withdrawal_category: WithdrawalCategory | None,
) -> Decision:
    checks = _structural_checks(
        transition,
        facts,
        role,
        check_inputs=check_inputs,
        reason=reason,
        withdrawal_category=withdrawal_category,
    )
    waive = override and role is Role.INVESTIGATOR
    in_source_state = facts.state in transition.sources
    for guard in transition.guards:
        if not in_source_state:
            # Guards read facts that only mean something in a source state (the cycle's dosing
            # session, the state held from); judged elsewhere they would report noise.
            checks.append(CheckResult(guard.__name__, skipped=True))
            continue
        found = guard(facts, protocol)
        standing = tuple(f for f in found if not (waive and f.overridable))
        waived = tuple(f for f in found if waive and f.overridable)
        checks.append(CheckResult(guard.__name__, standing, waived))

    if override and role is not Role.INVESTIGATOR:
        # Asking for an override one may not grant is refused outright, so it is never silent.
        message = (
            f"Only an investigator may override a protocol guard; {_article(str(role))} may not."
        )
        failure = GuardFailure(str(GuardCode.OVERRIDE_NOT_PERMITTED), message)
        checks.append(CheckResult("override", (failure,)))
    elif (
        waive
        and check_inputs
        # Transitions that need a reason anyway already report a missing one.
        and not transition.reason_required
        and any(check.overridden for check in checks)
        and _is_blank(reason)
    ):
        message = "A reason is required to override a protocol guard; it becomes a deviation."
        failure = GuardFailure(str(GuardCode.REASON_REQUIRED), message)
        checks.append(CheckResult("override_reason", (failure,)))

    return Decision(
        transition=transition.name,
        role=role,
        source=facts.state,
        target=_target(transition, facts, protocol),
        cycle=facts.cycle,
        new_cycle=facts.cycle + 1 if transition.starts_cycle else facts.cycle,
        override_requested=override,
        checks=tuple(checks),
    )


def decide(
    transition_name: str,
    facts: ParticipantFacts,
    role: Role,
    protocol: ProtocolDefinition,
    *,
    reason: str | None,
    override: bool,
    withdrawal_category: WithdrawalCategory | None = None,
) -> Decision:
    """Decide whether ``role`` may apply ``transition_name`` to a participant with ``facts``.

    Every check runs and every failure is reported together: the role, the source state, a
    required reason or withdrawal category, and each guard of the transition. The one exception
    is a participant outside the transition's source states: the guards are then recorded as
    ``skipped``, because their facts (the cycle's dosing session, the state held from) mean
    nothing there and would bury the one reason that matters. With ``override=True`` an
    investigator waives the failures marked overridable (the protocol's overridable guards, and
    an open serious adverse event when releasing a hold); waived failures are listed in
    ``Decision.overridden`` and need a reason. Any other role asking for an override is refused.
    Raises ``UnknownTransitionError`` for a name not in ``TRANSITIONS``.
    """
    transition = TRANSITIONS.get(transition_name)
    if transition is None:
        raise UnknownTransitionError(transition_name)
    return _evaluate(
        transition,
        facts,
        role,
        protocol,
        check_inputs=True,
        reason=reason,
        override=override,
        withdrawal_category=withdrawal_category,
    )


def allowed_transitions(
    facts: ParticipantFacts,
    role: Role,
    protocol: ProtocolDefinition,
    *,
    include_other_states: bool = False,
) -> list[TransitionOption]:
    """List the transitions for a participant page, in table order, each allowed or with reasons.

    Only transitions whose sources include the participant's state are listed unless
    ``include_other_states`` is set, in which case the rest come with the wrong-state reason.
    The reason and withdrawal category are not checked: the user has not typed them yet.
    """
    options: list[TransitionOption] = []
    for transition in TRANSITIONS.values():
        if facts.state not in transition.sources and not include_other_states:
            continue
        decision = _evaluate(
            transition,
            facts,
            role,
            protocol,
            check_inputs=False,
            reason=None,
            override=False,
            withdrawal_category=None,
        )
        failures = decision.failures
        options.append(
            TransitionOption(
                name=transition.name,
                target=decision.target,
                allowed=decision.allowed,
                reasons=decision.reasons,
                reason_required=transition.reason_required,
                can_override=bool(failures)
                and role is Role.INVESTIGATOR
                and all(failure.overridable for failure in failures),
            )
        )
    return options


def can_place_on_hold(state: State) -> bool:
    """Say whether a participant in ``state`` can be placed on hold (used by automatic holds)."""
    return state in TRANSITIONS["place_on_hold"].sources
