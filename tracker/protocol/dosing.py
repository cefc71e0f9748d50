"""The dosing-session rules of SPEC §2 and §4: doses, vital-sign alerts, and the facts a
completed dosing session is judged on. Pure functions over plain values."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise

from tracker.protocol.definition import ProtocolDefinition
from tracker.protocol.facts import DosingSessionFacts


class DoseKind(StrEnum):
    INITIAL = "initial"
    SUPPLEMENTAL = "supplemental"


class VitalSign(StrEnum):
    SYSTOLIC = "systolic"
    DIASTOLIC = "diastolic"
    HEART_RATE = "heart_rate"
    TEMPERATURE = "temperature_c"


VITAL_SIGN_LABELS: dict[VitalSign, tuple[str, str]] = {
    VitalSign.SYSTOLIC: ("Systolic", "mmHg"),
    VitalSign.DIASTOLIC: ("Diastolic", "mmHg"),
    VitalSign.HEART_RATE: ("Heart rate", "bpm"),
    VitalSign.TEMPERATURE: ("Temperature", "°C"),
}


@dataclass(frozen=True)
class Dose:
    kind: DoseKind
    amount_mg: int
    administered_at: datetime


@dataclass(frozen=True)
class Reading:
    measured_at: datetime
    systolic: int
    diastolic: int
    heart_rate: int
    temperature_c: float


@dataclass(frozen=True)
class Breach:
    """A reading at or above an alert threshold."""

    sign: VitalSign
    value: float
    threshold: float

    @property
    def message(self) -> str:
        label, unit = VITAL_SIGN_LABELS[self.sign]
        return (
            f"{label} {self.value:g} {unit} is at or above the alert threshold "
            f"{self.threshold:g} {unit}."
        )


def breaches(reading: Reading, protocol: ProtocolDefinition) -> tuple[Breach, ...]:
    """Every threshold the reading reaches (SPEC §2: systolic ≥ 160, diastolic ≥ 110, …)."""
    limits = protocol.vital_signs.alert_thresholds
    pairs: tuple[tuple[VitalSign, float, float], ...] = (
        (VitalSign.SYSTOLIC, reading.systolic, limits.systolic_mmhg),
        (VitalSign.DIASTOLIC, reading.diastolic, limits.diastolic_mmhg),
        (VitalSign.HEART_RATE, reading.heart_rate, limits.heart_rate_bpm),
        (VitalSign.TEMPERATURE, reading.temperature_c, limits.temperature_c),
    )
    return tuple(Breach(sign, value, limit) for sign, value, limit in pairs if value >= limit)


def dose_problems(
    new: Dose,
    given: Sequence[Dose],
    protocol: ProtocolDefinition,
    *,
    latest_reading: Reading | None,
    breach_justified: bool,
) -> tuple[str, ...]:
    """Every reason the dose ``new`` may not be given after the doses ``given`` (empty: allowed).

    Rules: one initial dose of an allowed amount; at most one supplemental dose, of the
    protocol's fraction of the initial dose, inside the window after it; the session total
    within the maximum; no supplemental dose while the latest reading breaches a threshold
    unless an investigator documented why (``breach_justified``).
    """
    rules = protocol.dosing
    problems: list[str] = []
    initial = next((d for d in given if d.kind is DoseKind.INITIAL), None)
    if new.amount_mg <= 0:
        problems.append("The amount must be a positive number of mg.")
    if new.kind is DoseKind.INITIAL:
        if initial is not None:
            problems.append(f"An initial dose ({initial.amount_mg} mg) was already given.")
        if new.amount_mg not in rules.initial_doses_mg:
            allowed = " or ".join(f"{mg} mg" for mg in rules.initial_doses_mg)
            problems.append(f"The initial dose must be {allowed}; {new.amount_mg} mg was entered.")
    else:
        if initial is None:
            problems.append("A supplemental dose needs an initial dose first.")
        else:
            if any(d.kind is DoseKind.SUPPLEMENTAL for d in given):
                problems.append("A supplemental dose was already given; only one is allowed.")
            expected = rules.supplemental_dose_mg(initial.amount_mg)
            if new.amount_mg != expected:
                problems.append(
                    f"The supplemental dose must be {expected:g} mg ({rules.supplemental_share} "
                    f"of the initial {initial.amount_mg} mg); {new.amount_mg} mg was entered."
                )
            minutes = (new.administered_at - initial.administered_at).total_seconds() / 60
            low, high = rules.supplemental_window_min_minutes, rules.supplemental_window_max_minutes
            if not low <= minutes <= high:
                problems.append(
                    f"The supplemental dose must be given {low} to {high} minutes after the "
                    f"initial dose; this is {minutes:.0f} minutes after it."
                )
        if latest_reading is not None and not breach_justified:
            for breach in breaches(latest_reading, protocol):
                problems.append(
                    "No supplemental dose while the latest vital signs breach a threshold: "
                    f"{breach.message} An investigator must document why it is safe."
                )
    total = sum(d.amount_mg for d in given) + new.amount_mg
    if total > rules.max_per_session_mg:
        problems.append(
            f"The session total would be {total} mg, above the maximum of "
            f"{rules.max_per_session_mg} mg."
        )
    return tuple(problems)


def longest_gap_minutes(
    times: Sequence[datetime], start: datetime, end: datetime | None
) -> float | None:
    """The longest interval between consecutive readings from ``start`` (the baseline) to the
    session's end, None when there is no reading."""
    ordered = sorted(t for t in times if t >= start)
    if not ordered:
        return None
    gaps = [(b - a).total_seconds() / 60 for a, b in pairwise(ordered)]
    if end is not None and end > ordered[-1]:
        gaps.append((end - ordered[-1]).total_seconds() / 60)
    return max(gaps, default=0.0)


def dosing_session_facts(
    protocol: ProtocolDefinition,
    *,
    completed: bool,
    ended_at: datetime | None,
    doses: Sequence[Dose],
    reading_times: Sequence[datetime],
    therapists_present: int,
    overnight_stay: bool | None,
    unacknowledged_alerts: int,
) -> DosingSessionFacts:
    """What the ``complete_dosing`` guards need, derived from the session's records."""
    initial = next((d for d in doses if d.kind is DoseKind.INITIAL), None)
    baseline: datetime | None = None
    if initial is not None:
        window = timedelta(minutes=protocol.vital_signs.baseline_within_minutes)
        before = [
            t
            for t in reading_times
            if initial.administered_at - window <= t <= initial.administered_at
        ]
        baseline = max(before) if before else None
    gap = longest_gap_minutes(reading_times, baseline, ended_at) if baseline is not None else None
    monitoring = None
    if initial is not None and ended_at is not None:
        monitoring = (ended_at - initial.administered_at).total_seconds() / 3600
    return DosingSessionFacts(
        completed=completed,
        has_initial_dose=initial is not None,
        baseline_vitals_present=baseline is not None,
        max_vitals_gap_minutes=gap,
        therapists_present=therapists_present,
        monitoring_hours=monitoring,
        overnight_stay_recorded=bool(overnight_stay),
        unacknowledged_alerts=unacknowledged_alerts,
    )


class Severity(StrEnum):
    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"


class Relatedness(StrEnum):
    NOT_RELATED = "not_related"
    UNLIKELY = "unlikely"
    POSSIBLE = "possible"
    PROBABLE = "probable"
    DEFINITE = "definite"


class SeriousCriterion(StrEnum):
    DEATH = "death"
    LIFE_THREATENING = "life_threatening"
    HOSPITALISATION = "hospitalisation"
    DISABILITY = "disability"
    CONGENITAL_ANOMALY = "congenital_anomaly"
    MEDICALLY_IMPORTANT = "medically_important"


class AdverseEventOutcome(StrEnum):
    ONGOING = "ongoing"
    RECOVERED = "recovered"
    RECOVERED_WITH_SEQUELAE = "recovered_with_sequelae"
    FATAL = "fatal"
    UNKNOWN = "unknown"


SERIOUS_REPORT_HOURS = 24


def days_between_dosings(last: datetime, then: datetime) -> int:
    """Whole calendar days from one dosing session's start to a later moment: the measure the
    dosing-interval guard and compliance check C04 both use."""
    return (then.date() - last.date()).days


def within_dosing_interval(days: int, protocol: ProtocolDefinition) -> bool:
    """Whether ``days`` after the last dosing session falls in the protocol's window."""
    schedule = protocol.schedule
    return schedule.dosing_interval_min_days <= days <= schedule.dosing_interval_max_days


def serious_report_due(aware_at: datetime) -> datetime:
    """A serious adverse event is reported within 24 h of the site becoming aware of it."""
    return aware_at + timedelta(hours=SERIOUS_REPORT_HOURS)


# The effects checklist of a dosing session: pleasant and abuse-related effects are recorded
# like any other (SPEC §4), and "none observed" is an explicit attestation, never a blank.
SESSION_EFFECTS: tuple[tuple[str, str], ...] = (
    ("euphoria", "Euphoria"),
    ("elation", "Elation"),
    ("craving", "Craving for more of the drug"),
    ("drug_liking", "Drug liking / wanting to repeat"),
    ("emotional_openness", "Emotional openness"),
    ("anxiety", "Anxiety"),
    ("jaw_clenching", "Jaw clenching (bruxism)"),
    ("nausea", "Nausea"),
    ("headache", "Headache"),
    ("restlessness", "Restlessness"),
    ("feeling_cold", "Feeling cold or shivering"),
    ("dizziness", "Dizziness"),
)
EFFECT_CODES = frozenset(code for code, _ in SESSION_EFFECTS)


def effects_problems(effects: Sequence[str], none_observed: bool) -> tuple[str, ...]:
    """An effects record lists observed effects or attests none were observed, never both."""
    problems: list[str] = []
    unknown = [e for e in effects if e not in EFFECT_CODES]
    if unknown:
        problems.append(f"Unknown effects: {', '.join(unknown)}.")
    if none_observed and effects:
        problems.append("'None observed' cannot be attested together with observed effects.")
    if not none_observed and not effects:
        problems.append("Tick the effects observed, or attest that none were observed.")
    return tuple(problems)


def suicidality_positive(ideation: bool, intent: bool, plan: bool, behaviour: bool) -> bool:
    """C-SSRS style screen: suicidal intent, a plan, or any suicidal behaviour is positive.

    Ideation alone (a wish to be dead, without intent or plan) is recorded but does not by
    itself raise a safety hold, as in the C-SSRS triage where items 4-5 and behaviour escalate.
    """
    del ideation  # recorded with the screen; not decisive on its own
    return intent or plan or behaviour
