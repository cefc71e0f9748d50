"""Request and response models of the JSON API (validation and documentation in one)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from tracker.protocol import PLAUSIBLE_RANGES, State

# Ids are 32-bit integer columns; a larger one would be an out-of-range error in the database.
MAX_ID = 2**31 - 1


class Strict(BaseModel):
    """Unknown fields are refused, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


# Times and dates a study can hold (SPEC §9): a year-1 or year-9999 time would overflow when
# turned to UTC near the edge of the calendar, and no clinical record is dated outside this.
FIRST_YEAR, LAST_YEAR = 1900, 2200


def _in_study_years(value: date) -> date:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"must be in the years {FIRST_YEAR} to {LAST_YEAR}")
    return value


StudyTime = Annotated[AwareDatetime, AfterValidator(_in_study_years)]
StudyDate = Annotated[date, AfterValidator(_in_study_years)]


class Health(BaseModel):
    status: str = Field(description="ok, or unavailable when the database does not answer")
    database: str


class AuditEventOut(BaseModel):
    seq: int
    occurred_at: datetime
    actor: str
    role: str | None
    action: str
    entity_type: str
    entity_id: str | None
    old_values: dict[str, Any] | None
    new_values: dict[str, Any] | None
    reason: str | None
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    next_after: int | None = Field(description="Pass as `after` to read on; null at the head.")


class AuditQuery(Strict):
    after: int = Field(
        0, ge=0, le=MAX_ID, description="Return events with a sequence number above this"
    )
    limit: int = Field(100, ge=1, le=1000)


class AuditVerification(BaseModel):
    ok: bool
    events: int
    head: str
    checkpoints: int = Field(0, description="Signed checkpoints the chain was held against.")
    first_bad_seq: int | None = None
    problem: str | None = None


# --- protocol and participants ------------------------------------------------------------


class ProtocolOut(BaseModel):
    id: int
    code: str
    version: str
    title: str
    content_hash: str
    definition: dict[str, Any]


class SignatureOut(BaseModel):
    printed_name: str
    meaning: str
    signed_at: datetime
    outcome: str
    content_hash: str
    voided_at: datetime | None = None
    void_reason: str | None = None


class EligibilityOut(BaseModel):
    outcome: Literal["incomplete", "ineligible", "eligible"]
    reasons: list[str]
    signed: bool = Field(description="Signed by an investigator, and the signature still valid")
    signature: SignatureOut | None = None
    voided_signatures: list[SignatureOut] = []


class ConsentOut(BaseModel):
    document_version: str
    signed_on: date
    obtained_by: str
    recorded_at: datetime


class ChecklistAnswerOut(BaseModel):
    item: str
    category: str
    kind: str
    question: str
    answer: Literal["yes", "no"] | None
    note: str | None
    assessment: dict[str, Any] | None


class RandomisationOut(BaseModel):
    randomisation_number: str
    stratum: str
    randomised_at: datetime


class RandomiseIn(Strict):
    expected_version: int


class EmergencyUnblindIn(Strict):
    password: str = Field(max_length=1000)
    reason: str = Field(max_length=2000)


class EmergencyUnblindOut(BaseModel):
    arm: str
    label: str


class BlindingGuessIn(Strict):
    respondent: Literal["participant", "therapist", "rater"]
    session_id: int | None = None
    timepoint: str | None = Field(None, max_length=60)
    guess: str = Field(max_length=60, description="An arm code of the protocol, or 'unsure'")
    confidence: int = Field(ge=1, le=5)


class BlindingGuessOut(BaseModel):
    id: int
    respondent: str
    session_id: int | None
    timepoint: str | None
    guess: str
    confidence: int
    recorded_at: datetime


class AllocationOut(BaseModel):
    study_id: str
    site: str
    randomisation_number: str
    stratum: str
    arm: str
    randomised_at: datetime


class AllocationList(BaseModel):
    allocations: list[AllocationOut]


class ParticipantOut(BaseModel):
    id: int
    study_id: str
    site: str
    state: str
    phase: str
    cycle: int
    version: int
    held_from: str | None
    withdrawal_category: str | None
    sex: str
    year_of_birth: int
    childbearing_potential: bool | None = Field(
        description="null: not recorded (counts as yes for anyone who is not male)"
    )
    pregnancy_tests_required: bool
    protocol_version: str
    enrolled_at: datetime
    therapists: list[str]
    eligibility: EligibilityOut
    consent: ConsentOut | None
    checklist: list[ChecklistAnswerOut] | None = Field(
        None, description="Every item with its answer (on the single-participant read)"
    )
    randomisation: RandomisationOut | None = Field(
        None, description="The randomisation number, stratum and time; never the arm"
    )
    arm: str | None = Field(
        None,
        description="The allocated arm's code: present only for those who may see it "
        "(statistician, pharmacist, the investigator who unblinded this participant, or "
        "everyone after the study's unblinding)",
        exclude_if=lambda value: value is None,
    )


class ParticipantSummary(BaseModel):
    id: int
    study_id: str
    site: str
    state: str
    phase: str
    cycle: int
    version: int


class ParticipantList(BaseModel):
    participants: list[ParticipantSummary]
    page: int
    per_page: int
    total: int


class ParticipantQuery(Strict):
    state: State | None = None
    site: str | None = None
    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(50, ge=1, le=200)


class EnrolIn(Strict):
    site: str = Field(min_length=2, max_length=16)
    sex: Literal["female", "male", "intersex", "unknown"]
    year_of_birth: int = Field(ge=1900, le=2100)
    therapists: list[str] = Field(default_factory=list, max_length=20)
    childbearing_potential: bool | None = Field(
        None,
        description=(
            "For a participant who is not male; leave it out (or null) if not known yet: until "
            "it is recorded as false, a negative pregnancy test is due before each dosing."
        ),
    )


class ChildbearingPotentialIn(Strict):
    childbearing_potential: bool
    reason: str | None = Field(
        None, max_length=2000, description="Required when a recorded value is changed"
    )


class TherapistsIn(Strict):
    therapists: list[str] = Field(max_length=20)


class TherapistsOut(BaseModel):
    therapists: list[str]


class AnswerIn(Strict):
    answer: Literal["yes", "no"]
    note: str | None = Field(None, max_length=2000)


class ChecklistIn(Strict):
    answers: dict[str, AnswerIn] = Field(min_length=1)


class AssessmentIn(Strict):
    item: str = Field(min_length=1, max_length=60)
    acceptable: bool
    rationale: str = Field(min_length=1, max_length=2000)


class SignatureIn(Strict):
    password: str = Field(min_length=1, max_length=256)
    meaning: str = Field(min_length=1, max_length=300)


class ConsentIn(Strict):
    version: str = Field(min_length=1, max_length=60)
    signed_on: StudyDate


class TransitionIn(Strict):
    transition: str = Field(min_length=1, max_length=40)
    expected_version: int = Field(ge=1, le=MAX_ID)
    reason: str | None = Field(None, max_length=2000)
    override: bool = False
    withdrawal_category: (
        Literal[
            "participant_decision",
            "investigator_decision",
            "adverse_event",
            "lost_to_follow_up",
            "other",
        ]
        | None
    ) = None


class TransitionOut(BaseModel):
    id: int
    transition: str
    from_state: str
    to_state: str
    cycle_before: int
    cycle_after: int
    version_after: int
    actor: str
    role: str | None
    reason: str | None
    withdrawal_category: str | None
    override: bool
    automatic: bool
    guard_results: list[dict[str, Any]]
    occurred_at: datetime


class TransitionHistory(BaseModel):
    transitions: list[TransitionOut]


class TransitionApplied(BaseModel):
    participant: ParticipantOut
    transition: TransitionOut
    deviations: list[str] = Field(
        description="Guards overridden, each recorded as a protocol deviation"
    )


class TransitionOptionOut(BaseModel):
    transition: str
    target: str
    allowed: bool
    reasons: list[str]
    reason_required: bool
    can_override: bool


class AllowedTransitions(BaseModel):
    version: int
    transitions: list[TransitionOptionOut]


# --- sessions and clinical records ---------------------------------------------------------


class SessionIn(Strict):
    kind: Literal["preparation", "dosing", "integration"]
    scheduled_at: StudyTime
    therapists: list[str] = Field(default_factory=list, max_length=10)


class SessionPatch(Strict):
    started_at: StudyTime | None = None
    ended_at: StudyTime | None = None
    status: Literal["scheduled", "completed", "cancelled", "missed"] | None = None
    overnight_stay: bool | None = None
    therapists: list[str] | None = Field(None, max_length=10)

    @model_validator(mode="after")
    def _no_nulls(self) -> SessionPatch:
        """A field sent is a change; ``null`` is no value to change to (leave it out)."""
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(
                f"{', '.join(nulls)}: null is not a value; leave a field out to keep it as it is"
            )
        return self


class DoseIn(Strict):
    administered_at: StudyTime
    amount_mg: int = Field(gt=0, le=1000)
    kind: Literal["initial", "supplemental"]
    breach_justification: str | None = Field(
        None,
        max_length=2000,
        description="Investigator only: why a supplemental dose is safe despite a breach",
    )
    dispensing_id: int | None = Field(
        None,
        description="The dispensing for this session that covers the dose (SPEC §12); may be "
        "left out when the session has exactly one that covers it",
    )
    confirm_time: bool = Field(
        False,
        description="A dose more than a day after the session's start is refused unless its "
        "time is confirmed",
    )


def _plausible(name: str, kind: type) -> Any:
    """A sign in its plausible range: stated in the schema, refused in the service's words."""
    low, high = PLAUSIBLE_RANGES[name]

    def in_range(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"{value} is outside the plausible range {low} to {high}")
        return value

    return Annotated[
        kind,
        AfterValidator(in_range),
        Field(json_schema_extra={"minimum": low, "maximum": high}),
    ]


class VitalsIn(Strict):
    measured_at: StudyTime
    confirm_time: bool = Field(
        False,
        description="A reading more than a day after the session's start is refused unless "
        "its time is confirmed",
    )
    systolic: _plausible("systolic", int)  # type: ignore[valid-type]
    diastolic: _plausible("diastolic", int)  # type: ignore[valid-type]
    heart_rate: _plausible("heart_rate", int)  # type: ignore[valid-type]
    temperature_c: _plausible("temperature_c", float)  # type: ignore[valid-type]


class AcknowledgementIn(Strict):
    note: str = Field(min_length=1, max_length=5000)


class EffectsIn(Strict):
    effects: list[str] = Field(default_factory=list, max_length=20)
    none_observed: bool = False
    note: str | None = Field(None, max_length=5000)


class NoteIn(Strict):
    text: str = Field(min_length=1, max_length=5000)


class NoteAmendmentIn(Strict):
    text: str = Field(min_length=1, max_length=5000)
    reason: str = Field(min_length=1, max_length=2000)


class SideEffectIn(Strict):
    term: str = Field(min_length=1, max_length=200)
    severity: Literal["mild", "moderate", "severe"]
    onset_at: StudyTime
    resolved_at: StudyTime | None = None
    session_id: int | None = Field(None, ge=1, le=MAX_ID)


class AdverseEventIn(Strict):
    term: str = Field(min_length=1, max_length=200)
    onset_at: StudyTime
    grade: int = Field(ge=1, le=5)
    serious: bool
    serious_criteria: list[
        Literal[
            "death",
            "life_threatening",
            "hospitalisation",
            "disability",
            "congenital_anomaly",
            "medically_important",
        ]
    ] = Field(default_factory=list)
    description: str | None = Field(None, max_length=5000)
    aware_at: StudyTime | None = None
    session_id: int | None = Field(None, ge=1, le=MAX_ID)


class AdverseEventAssessmentIn(Strict):
    relatedness: Literal["not_related", "unlikely", "possible", "probable", "definite"]
    expected: bool
    note: str | None = Field(None, max_length=5000)


class AdverseEventPatch(Strict):
    outcome: (
        Literal["ongoing", "recovered", "recovered_with_sequelae", "fatal", "unknown"] | None
    ) = None
    resolved_at: StudyTime | None = None
    reported_at: StudyTime | None = None


class ScreenIn(Strict):
    ideation: bool
    intent: bool
    plan: bool
    behaviour: bool
    screened_at: StudyTime | None = None
    session_id: int | None = Field(None, ge=1, le=MAX_ID)


class PregnancyTestIn(Strict):
    tested_at: StudyTime
    result: Literal["negative", "positive"]


class AlertOut(BaseModel):
    id: int
    sign: str
    value: float
    threshold: float
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledgement: str | None


class VitalsOut(BaseModel):
    id: int
    measured_at: datetime
    systolic: int
    diastolic: int
    heart_rate: int
    temperature_c: float
    alerts: list[AlertOut]


class DoseOut(BaseModel):
    id: int
    kind: str
    amount_mg: int
    administered_at: datetime
    breach_justification: str | None
    dispensing_id: int | None = None
    dispensing: str | None = Field(None, description="The dispensing's number, e.g. D-000042")


class EffectsOut(BaseModel):
    effects: list[str]
    none_observed: bool
    note: str | None
    recorded_at: datetime


class SessionOut(BaseModel):
    id: int
    participant_id: int
    kind: str
    cycle: int
    scheduled_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    status: str
    overnight_stay: bool | None
    therapists: list[str]
    doses: list[DoseOut] = []
    vitals: list[VitalsOut] = []
    effects: EffectsOut | None = None


class SessionList(BaseModel):
    sessions: list[SessionOut]


class NoteOut(BaseModel):
    id: int
    root_id: int | None
    version: int
    participant_id: int
    session_id: int | None
    text: str
    amendment_reason: str | None
    author: str
    created_at: datetime


class NoteList(BaseModel):
    notes: list[NoteOut]


class SideEffectOut(BaseModel):
    id: int
    term: str
    severity: str
    onset_at: datetime
    resolved_at: datetime | None


class AdverseEventOut(BaseModel):
    id: int
    participant_id: int
    term: str
    description: str | None
    onset_at: datetime
    aware_at: datetime
    grade: int
    serious: bool
    serious_criteria: list[str]
    outcome: str
    resolved_at: datetime | None
    report_due_at: datetime | None
    reported_at: datetime | None
    relatedness: str | None
    expected: bool | None
    assessed_at: datetime | None


class AdverseEventCreated(BaseModel):
    adverse_event: AdverseEventOut
    participant_state: str = Field(
        description="on_hold when a serious event placed the automatic hold"
    )


class AdverseEventList(BaseModel):
    adverse_events: list[AdverseEventOut]


class ScreenOut(BaseModel):
    id: int
    screened_at: datetime
    ideation: bool
    intent: bool
    plan: bool
    behaviour: bool
    positive: bool
    participant_state: str


class PregnancyTestOut(BaseModel):
    id: int
    tested_at: datetime
    result: str


class ReportQuery(Strict):
    format: Literal["json", "csv"] = "json"
    site: str | None = None
    state: State | None = None
    check: str | None = None
    failures: bool = False


class ComplianceReport(BaseModel):
    """The JSON export: see JSON_SCHEMA in tracker/reports/exporters.py."""

    report: dict[str, Any]
    checks: list[dict[str, Any]]
    participants: list[dict[str, Any]]
    deviations: list[dict[str, Any]]
    summary: dict[str, Any]


# --- outcome measures (SPEC §10) ---------------------------------------------------------


class OutcomeAssessmentIn(Strict):
    timepoint: str = Field(min_length=1, max_length=60)
    instrument: str = Field(min_length=1, max_length=60)
    administered_at: StudyTime
    # Values are checked by the core against each item's range, so that every missing or
    # out-of-range item is listed in one 422.
    items: dict[str, Any] = Field(max_length=100)
    reason: str | None = Field(
        None, max_length=2000, description="Required when the assessment is outside its window"
    )


class OutcomeAssessmentOut(BaseModel):
    id: int
    timepoint: str
    instrument: str
    administered_at: datetime
    items: dict[str, int]
    total: int
    subscales: dict[str, int]
    band: str | None
    baseline_total: int | None
    change_from_baseline: int | None
    response: bool | None = Field(description="Primary instrument only; null without a baseline")
    remission: bool | None = Field(description="Primary instrument only")
    in_window: bool | None
    reason: str | None
    recorded_by: str
    recorded_at: datetime


class TimepointOut(BaseModel):
    code: str
    title: str
    instruments: list[str]
    status: Literal["not_yet", "due", "overdue", "done", "missed", "not_applicable"]
    window_start: date | None
    window_end: date | None
    follow_up: bool
    missed_reason: str | None = None


class OutcomeRecordOut(BaseModel):
    participant: str
    state: str
    timepoints: list[TimepointOut]
    assessments: list[OutcomeAssessmentOut]


class MissedTimepointIn(Strict):
    timepoint: str = Field(min_length=1, max_length=60)
    reason: str = Field(min_length=1, max_length=2000)


class RatersIn(Strict):
    raters: list[str] = Field(max_length=10)


class RatersOut(BaseModel):
    raters: list[str]


class OutcomeRowOut(BaseModel):
    protocol: str
    instrument: str
    timepoint: str
    n: int
    mean_total: float
    n_with_baseline: int
    mean_change: float | None
    responders: int | None = Field(description="Primary instrument only")
    response_rate: float | None
    remitters: int | None
    remission_rate: float | None
    arm: str | None = Field(
        None,
        description="The arm, once the study is unblinded (absent while it is blinded)",
        exclude_if=lambda value: value is None,
    )


class OutcomeReport(BaseModel):
    blinded: bool = Field(description="True while the study is blinded: the figures are pooled")
    rows: list[OutcomeRowOut]


# --- the investigational product (SPEC §12) ---------------------------------------------------

Units = Annotated[int, Field(ge=0, le=1_000_000)]
EntityId = Annotated[int, Field(ge=1, le=MAX_ID)]


class RegistrationIn(Strict):
    number: str = Field(max_length=20, description="The DEA registration: two letters, 7 digits")
    registrant: str = Field(max_length=200)
    expires_on: StudyDate


class StorageIn(Strict):
    name: str = Field(max_length=120)
    description: str | None = Field(None, max_length=2000)


class LotIn(Strict):
    site: str = Field(max_length=16)
    product: str = Field(max_length=200)
    lot: str = Field(max_length=60)
    strength_mg: float = Field(gt=0, le=10_000)
    expires_on: StudyDate
    arm: str | None = Field(
        None, max_length=60, description="The arm a blinded product is for (randomised studies)"
    )
    storage: str | None = Field(None, max_length=120, description="A storage location's name")


class WitnessIn(Strict):
    username: str = Field(max_length=80)
    password: str = Field(max_length=1000)


class EntryIn(Strict):
    kind: Literal["receipt", "dispensing", "return", "destruction", "loss", "count", "correction"]
    units: Units | None = None
    occurred_at: StudyTime
    supplier: str | None = Field(None, max_length=200)
    dea_form_222: str | None = Field(None, max_length=40)
    witness: str | None = Field(None, max_length=80, description="receipt: a username")
    session_id: EntityId | None = Field(None, description="dispensing: the dosing session")
    dispensing_id: EntityId | None = Field(None, description="return: the dispensing")
    dea_form_41: str | None = Field(None, max_length=40)
    witnesses: list[WitnessIn] = Field(default_factory=list, max_length=10)
    description: str | None = Field(None, max_length=5000, description="loss: what happened")
    counted_units: Units | None = None
    explanation: str | None = Field(None, max_length=5000)
    reverses: EntityId | None = Field(None, description="correction: the entry it reverses")
    reason: str | None = Field(None, max_length=5000)


class LossReportIn(Strict):
    report: Literal["initial_notice", "dea_form_106"]
    reference: str = Field(max_length=80)
    reported_at: StudyTime


class ExplanationIn(Strict):
    explanation: str = Field(max_length=5000)


class CreatedOut(BaseModel):
    id: int


class LotOut(BaseModel):
    id: int
    site: str
    product: str
    lot: str
    strength_mg: float
    expires_on: date
    storage: str | None
    blinded: bool
    arm: str | None = None
    balance: int
    totals: dict[str, int]
    open_discrepancies: list[int]
    reports_due: list[dict[str, Any]]
    entries: list[dict[str, Any]]


class LotList(BaseModel):
    lots: list[LotOut]


class EntryOut(BaseModel):
    id: int
    lot: int
    kind: str
    units: int
    balance: int
    dispensing: str | None = None


# --- data exchange (SPEC §13) -------------------------------------------------------------


class ExportQuery(Strict):
    site: str | None = Field(default=None, max_length=16)


class SdtmExportQuery(Strict):
    format: Literal["csv", "xpt", "json"] = "csv"
    site: str | None = Field(default=None, max_length=16)
