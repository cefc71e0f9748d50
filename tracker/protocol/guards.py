"""Transition guards: pure functions returning the reasons a transition must not happen.

Each guard takes the participant's facts and the protocol and returns a tuple of failures,
empty when it passes or does not apply (the preparation count only matters before cycle 1).
A failure is overridable only when the protocol marks its guard so; ``decide`` then lets an
investigator waive it, and the waiver is recorded as a protocol deviation.
"""

from collections.abc import Callable

from tracker.protocol.checklist import ChecklistOutcome
from tracker.protocol.definition import ProtocolDefinition
from tracker.protocol.dosing import within_dosing_interval
from tracker.protocol.facts import ParticipantFacts, PregnancyTestStatus
from tracker.protocol.failures import NEVER_OVERRIDABLE, GuardCode, GuardFailure

Guard = Callable[[ParticipantFacts, ProtocolDefinition], tuple[GuardFailure, ...]]

_PASSED: tuple[GuardFailure, ...] = ()


def _count(number: int | float, noun: str) -> str:
    """'1 session', '2 sessions': messages are read by coordinators, not parsed."""
    return f"{number:g} {noun}" if number == 1 else f"{number:g} {noun}s"


def _fail(code: GuardCode, message: str, protocol: ProtocolDefinition) -> tuple[GuardFailure]:
    # A hand-built definition could mark anything overridable; SPEC §3's list wins regardless.
    overridable = protocol.is_overridable(code) and code not in NEVER_OVERRIDABLE
    return (GuardFailure(str(code), message, overridable),)


# --- Eligibility and consent -------------------------------------------------------------


def checklist_eligible(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """The contraindication checklist's derived outcome must be ``eligible``."""
    if facts.checklist_outcome is ChecklistOutcome.ELIGIBLE:
        return _PASSED
    message = f"The contraindication checklist must be eligible; it is {facts.checklist_outcome}."
    if facts.checklist_reasons:
        message = f"{message[:-1]}: {'; '.join(facts.checklist_reasons)}."
    return _fail(GuardCode.CHECKLIST_NOT_ELIGIBLE, message, protocol)


def checklist_signed(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """An investigator's signature on the checklist must be present and not voided."""
    if facts.checklist_signed:
        return _PASSED
    return _fail(
        GuardCode.CHECKLIST_NOT_SIGNED,
        "An investigator must sign the contraindication checklist; it is not signed, or a later "
        "change voided the signature.",
        protocol,
    )


def consent_recorded(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """Informed consent must be recorded."""
    if facts.consent_recorded:
        return _PASSED
    return _fail(
        GuardCode.CONSENT_MISSING, "Informed consent must be recorded; none is recorded.", protocol
    )


# --- Starting a dosing cycle -------------------------------------------------------------


def preparation_sessions_completed(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """Before the first dosing, the protocol's number of preparation sessions must be done."""
    required = protocol.schedule.preparation_sessions
    recorded = facts.completed_preparation_sessions
    if facts.cycle > 0 or recorded >= required:
        return _PASSED
    return _fail(
        GuardCode.PREPARATION_SESSIONS,
        f"{_count(required, 'completed preparation session')} "
        f"{'is' if required == 1 else 'are'} required; {recorded} recorded.",
        protocol,
    )


def integration_sessions_completed(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """After a dosing, the cycle's integration sessions must be done before moving on."""
    required = protocol.schedule.integration_sessions_per_cycle
    recorded = facts.completed_integration_sessions
    if facts.cycle == 0 or recorded >= required:
        return _PASSED
    return _fail(
        GuardCode.INTEGRATION_SESSIONS,
        f"{_count(required, 'completed integration session')} of cycle {facts.cycle} "
        f"{'is' if required == 1 else 'are'} required; {recorded} recorded.",
        protocol,
    )


def randomised_before_first_dosing(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """Under a randomised protocol, cycle 1's dosing needs the participant randomised."""
    if protocol.randomisation is None or facts.cycle > 0 or facts.randomised:
        return _PASSED
    return _fail(
        GuardCode.NOT_RANDOMISED,
        "The participant must be randomised before the first dosing session; they are not.",
        protocol,
    )


def dosing_interval_respected(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """From the second dosing on, the days since the last dosing must fall within the window."""
    if facts.cycle == 0:
        return _PASSED
    low = protocol.schedule.dosing_interval_min_days
    high = protocol.schedule.dosing_interval_max_days
    window = f"The next dosing must be {low} to {high} days after the last one"
    days = facts.days_since_last_dosing
    if days is None:
        message = f"{window}; the date of the last dosing session is not recorded."
    elif within_dosing_interval(days, protocol):
        return _PASSED
    elif days < low:
        message = f"{window}; only {_count(days, 'day')} {'has' if days == 1 else 'have'} passed."
    else:
        message = f"{window}; {_count(days, 'day')} have passed."
    return _fail(GuardCode.DOSING_INTERVAL, message, protocol)


def cycle_limit_not_reached(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """No more dosing cycles than the protocol allows."""
    cycles = protocol.schedule.dosing_cycles
    if facts.cycle < cycles:
        return _PASSED
    return _fail(
        GuardCode.CYCLE_LIMIT,
        f"The protocol allows {_count(cycles, 'dosing cycle')}; cycle {facts.cycle} was the last.",
        protocol,
    )


def pregnancy_test_negative(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """Where applicable, a negative pregnancy test within the protocol's window is required."""
    hours = protocol.dosing.pregnancy_test_within_hours
    if facts.pregnancy_test is PregnancyTestStatus.MISSING_OR_STALE:
        message = (
            f"A negative pregnancy test within {hours} h before dosing is required; "
            "none is recorded in that window."
        )
    elif facts.pregnancy_test is PregnancyTestStatus.POSITIVE:
        message = "The pregnancy test is positive; dosing is not allowed."
    else:
        return _PASSED
    return _fail(GuardCode.PREGNANCY_TEST, message, protocol)


def no_open_serious_adverse_event(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """No serious adverse event may be open; never overridable (SPEC §3)."""
    count = facts.open_serious_adverse_events
    if count == 0:
        return _PASSED
    return (
        GuardFailure(
            str(GuardCode.OPEN_SERIOUS_ADVERSE_EVENT),
            f"{_count(count, 'serious adverse event')} {'is' if count == 1 else 'are'} open; "
            "dosing cannot start until it is resolved."
            if count == 1
            else f"{_count(count, 'serious adverse event')} are open; "
            "dosing cannot start until they are resolved.",
            overridable=False,
        ),
    )


def no_open_serious_adverse_event_unless_documented(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """Releasing a hold with a serious adverse event open needs the investigator's override.

    SPEC §3 lets an investigator release a hold despite an open serious adverse event when they
    document why; that documented decision is exactly an override, so this failure is
    overridable for ``release_hold`` even though the same condition never is for dosing.
    """
    count = facts.open_serious_adverse_events
    if count == 0:
        return _PASSED
    return (
        GuardFailure(
            str(GuardCode.OPEN_SERIOUS_ADVERSE_EVENT),
            f"{_count(count, 'serious adverse event')} {'is' if count == 1 else 'are'} open; "
            "an investigator may release the hold only with an override documenting why.",
            overridable=True,
        ),
    )


# --- Completing a dosing session ---------------------------------------------------------


def dosing_session_completed(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """The current cycle's dosing session must exist and be marked completed."""
    session = facts.dosing_session
    if session is not None and session.completed:
        return _PASSED
    found = "none is recorded" if session is None else "it is not marked completed"
    return _fail(
        GuardCode.DOSING_SESSION_NOT_COMPLETED,
        f"The dosing session of cycle {facts.cycle} must be completed; {found}.",
        protocol,
    )


# The guards below stay silent without a session: dosing_session_completed already says so.


def initial_dose_given(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """The dosing session must record an initial dose."""
    session = facts.dosing_session
    if session is None or session.has_initial_dose:
        return _PASSED
    allowed = " or ".join(f"{dose} mg" for dose in protocol.dosing.initial_doses_mg)
    return _fail(
        GuardCode.INITIAL_DOSE_MISSING,
        f"An initial dose ({allowed}) must be recorded; none is.",
        protocol,
    )


def baseline_vitals_taken(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """Baseline vital signs must be taken shortly before the initial dose."""
    session = facts.dosing_session
    if session is None or session.baseline_vitals_present:
        return _PASSED
    minutes = protocol.vital_signs.baseline_within_minutes
    return _fail(
        GuardCode.BASELINE_VITALS_MISSING,
        f"Baseline vital signs within {minutes} min before the initial dose are required; "
        "none are recorded.",
        protocol,
    )


def vitals_gap_within_limit(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """Vital-sign readings must be no further apart than the protocol allows, to the end."""
    session = facts.dosing_session
    limit = protocol.vital_signs.max_gap_minutes
    if session is None:
        return _PASSED
    gap = session.max_vitals_gap_minutes
    if gap is None:
        message = (
            f"Vital signs must be taken at most {limit} min apart until the end of the session; "
            "no readings are recorded."
        )
    elif gap > limit:
        message = (
            f"Vital signs must be taken at most {limit} min apart until the end of the session; "
            f"the longest gap was {gap:g} min."
        )
    else:
        return _PASSED
    return _fail(GuardCode.VITALS_GAP, message, protocol)


def therapists_present(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """The protocol's number of therapists must have been present."""
    session = facts.dosing_session
    required = protocol.dosing.therapists_present
    if session is None or session.therapists_present >= required:
        return _PASSED
    return _fail(
        GuardCode.THERAPISTS_PRESENT,
        f"{_count(required, 'therapist')} must be present during dosing; "
        f"{session.therapists_present} recorded.",
        protocol,
    )


def monitoring_long_enough(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """Monitoring must last at least the protocol's hours from the initial dose."""
    session = facts.dosing_session
    required = protocol.dosing.monitoring_min_hours
    if session is None:
        return _PASSED
    hours = session.monitoring_hours
    if hours is not None and hours >= required:
        return _PASSED
    found = "the start or end is not recorded" if hours is None else f"{hours:g} h were recorded"
    return _fail(
        GuardCode.MONITORING_HOURS,
        f"Monitoring must last at least {required:g} h from the initial dose; {found}.",
        protocol,
    )


def overnight_stay_recorded(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """Where the protocol requires an overnight stay, it must be recorded (compliance C07)."""
    session = facts.dosing_session
    if (
        session is None
        or not protocol.dosing.overnight_stay_required
        or session.overnight_stay_recorded
    ):
        return _PASSED
    return _fail(
        GuardCode.OVERNIGHT_STAY,
        "An overnight stay after the dosing session must be recorded; it is not.",
        protocol,
    )


def vital_sign_alerts_acknowledged(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """Every vital-sign alert of the session must be acknowledged."""
    session = facts.dosing_session
    if session is None or session.unacknowledged_alerts == 0:
        return _PASSED
    count = session.unacknowledged_alerts
    return _fail(
        GuardCode.UNACKNOWLEDGED_ALERTS,
        f"Every vital-sign alert must be acknowledged; {_count(count, 'alert')} "
        f"{'is' if count == 1 else 'are'} not.",
        protocol,
    )


# --- Completing the protocol -------------------------------------------------------------


def final_cycle_reached(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """The protocol completes only after its last dosing cycle."""
    cycles = protocol.schedule.dosing_cycles
    if facts.cycle == cycles:
        return _PASSED
    return _fail(
        GuardCode.FINAL_CYCLE_NOT_REACHED,
        f"The protocol is completed after cycle {cycles}; the participant is in cycle "
        f"{facts.cycle}.",
        protocol,
    )


# --- Follow-up (SPEC §10) ---------------------------------------------------------------


def protocol_has_follow_up(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """Treatment can be discontinued into follow-up only where the protocol follows up."""
    if protocol.has_follow_up:
        return _PASSED
    return _fail(
        GuardCode.NO_FOLLOW_UP,
        f"Protocol {protocol.code} version {protocol.version} has no follow-up phase; a "
        "participant who stops treatment is withdrawn instead.",
        protocol,
    )


def follow_up_resolved(
    facts: ParticipantFacts, protocol: ProtocolDefinition
) -> tuple[GuardFailure, ...]:
    """Follow-up ends once every follow-up timepoint is done, missed or past its window."""
    if not facts.follow_up_open:
        return _PASSED
    return _fail(
        GuardCode.FOLLOW_UP_OPEN,
        "Follow-up ends when every follow-up timepoint is assessed, recorded as missed or past "
        f"its window; still open: {', '.join(facts.follow_up_open)}.",
        protocol,
    )
