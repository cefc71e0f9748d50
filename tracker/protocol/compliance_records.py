"""The records compliance checks judge, and their results (SPEC §5): one participant's
record as plain values, the study-wide facts, a check's outcome with its evidence. Pure data;
the checks themselves are in ``compliance`` and ``compliance_outcomes``."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from tracker.protocol.definition import ProtocolDefinition
from tracker.protocol.outcomes import AnchorDays


class Outcome(StrEnum):
    PASS = "pass"  # noqa: S105 (an outcome, not a password)
    FAIL = "fail"
    NOT_APPLICABLE = "not_applicable"


class Severity(StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"


@dataclass(frozen=True)
class Evidence:
    record: str
    expected: str
    found: str

    def to_dict(self) -> dict[str, str]:
        return {"record": self.record, "expected": self.expected, "found": self.found}


@dataclass(frozen=True)
class CheckResult:
    check_id: str
    outcome: Outcome
    evidence: tuple[Evidence, ...] = ()
    note: str = ""


# --- the record a participant is judged on --------------------------------------------------


@dataclass(frozen=True)
class DoseRecord:
    id: int
    kind: str
    amount_mg: int
    administered_at: datetime
    breach_justified: bool = False
    dispensing: str | None = None  # the number of the dispensing that covers it (SPEC §12)


@dataclass(frozen=True)
class ReadingRecord:
    id: int
    measured_at: datetime
    systolic: int
    diastolic: int
    heart_rate: int
    temperature_c: float


@dataclass(frozen=True)
class AlertRecord:
    id: int
    sign: str
    value: float
    acknowledged: bool


@dataclass(frozen=True)
class SessionRecord:
    id: int
    kind: str
    cycle: int
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    therapists_present: int = 0
    overnight_stay: bool | None = None
    doses: tuple[DoseRecord, ...] = ()
    readings: tuple[ReadingRecord, ...] = ()
    alerts: tuple[AlertRecord, ...] = ()
    effects_recorded: bool = False

    @property
    def label(self) -> str:
        when = f" on {self.started_at:%Y-%m-%d}" if self.started_at else ""
        return f"{self.kind} session #{self.id} (cycle {self.cycle}){when}"


@dataclass(frozen=True)
class AdverseEventRecord:
    id: int
    term: str
    grade: int | None
    serious: bool
    relatedness: str | None
    assessed_by_investigator: bool
    report_due_at: datetime | None
    reported_at: datetime | None


@dataclass(frozen=True)
class OverrideRecord:
    """A transition applied with an override, and the deviations recorded for it."""

    transition_id: int
    transition: str
    occurred_at: datetime
    overridden: tuple[str, ...]
    deviations: tuple[tuple[str, str, str], ...]  # (guard code, reason, approver's role)


@dataclass(frozen=True)
class UnblindingRecord:
    """An emergency unblinding (SPEC §11) as C18 reports it."""

    unblinded_at: datetime
    by: str
    by_role: str
    reason: str


@dataclass(frozen=True)
class AssessmentRecord:
    """An outcome assessment as the checks of SPEC §10 judge it."""

    id: int
    timepoint: str
    instrument: str
    administered_at: datetime
    reason: str | None
    recorded_by: str
    recorded_by_role: str
    # Whether the recorder was named on any of the participant's sessions (the blind).
    recorder_attended_a_session: bool
    total: int = 0


@dataclass(frozen=True)
class ParticipantRecord:
    study_id: str
    state: str
    consent_signed_on: date | None
    first_procedure_at: datetime | None
    checklist_signed_at: datetime | None
    checklist_signed_outcome: str | None
    checklist_signature_voided_at: datetime | None
    checklist_signed_by: str | None = None
    checklist_signature_meaning: str | None = None
    sessions: tuple[SessionRecord, ...] = ()
    adverse_events: tuple[AdverseEventRecord, ...] = ()
    overrides: tuple[OverrideRecord, ...] = ()
    interval_deviations: tuple[str, ...] = field(default=())
    # Outcome measures (SPEC §10): the assessments, the timepoints recorded as missed, and
    # the days the timepoints are counted from.
    assessments: tuple[AssessmentRecord, ...] = ()
    missed_timepoints: tuple[str, ...] = ()
    anchors: AnchorDays | None = None
    unblindings: tuple[UnblindingRecord, ...] = ()

    @property
    def recorded(self) -> frozenset[tuple[str, str]]:
        """The (timepoint, instrument) pairs assessed."""
        return frozenset((a.timepoint, a.instrument) for a in self.assessments)

    @property
    def completed_dosing(self) -> list[SessionRecord]:
        return sorted(
            (
                s
                for s in self.sessions
                if s.kind == "dosing" and s.status == "completed" and s.started_at
            ),
            key=lambda s: s.started_at or datetime.min,
        )

    @property
    def first_dosing_start(self) -> datetime | None:
        starts = [
            s.started_at for s in self.sessions if s.kind == "dosing" and s.started_at is not None
        ]
        return min(starts) if starts else None


@dataclass(frozen=True)
class StudyFacts:
    """Facts about the whole study that some checks need (the audit trail's state)."""

    audit_ok: bool
    audit_problem: str | None
    now: datetime


CheckFunction = Callable[[ParticipantRecord, ProtocolDefinition, StudyFacts], CheckResult]


@dataclass(frozen=True)
class Check:
    id: str
    description: str
    severity: Severity
    run: CheckFunction


def judged(check_id: str, evidence: Sequence[Evidence], note: str = "") -> CheckResult:
    return CheckResult(check_id, Outcome.FAIL if evidence else Outcome.PASS, tuple(evidence), note)


def not_applicable(check_id: str, note: str) -> CheckResult:
    return CheckResult(check_id, Outcome.NOT_APPLICABLE, (), note)


def utc_text(moment: datetime | None) -> str:
    return "none" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"
