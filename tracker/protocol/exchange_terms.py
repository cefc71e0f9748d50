"""Our codes in the exchange standards' terms (SPEC §13): CDISC controlled terminology for
SDTM, LOINC and UCUM for FHIR vital signs, FHIR R4's ResearchSubject status, visit numbers and
study days. One table per mapping, so ODM, SDTM and FHIR cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from tracker.protocol.dosing import AdverseEventOutcome, Relatedness, SeriousCriterion, VitalSign
from tracker.protocol.outcomes import Anchor, Timepoint
from tracker.protocol.sessions import SessionKind
from tracker.protocol.states import State, WithdrawalCategory

# CDISC CT "Sex" (C66731).
SEX = {"male": "M", "female": "F"}
SEX_UNKNOWN = "U"


@dataclass(frozen=True)
class VitalSignTerm:
    sign: VitalSign
    testcd: str  # CDISC CT VSTESTCD (C66741)
    test: str  # VSTEST (C67153)
    unit: str  # CDISC CT unit (C66770)
    loinc: str
    loinc_display: str
    ucum: str


VITAL_SIGN_TERMS: tuple[VitalSignTerm, ...] = (
    VitalSignTerm(
        VitalSign.SYSTOLIC,
        "SYSBP",
        "Systolic Blood Pressure",
        "mmHg",
        "8480-6",
        "Systolic blood pressure",
        "mm[Hg]",
    ),
    VitalSignTerm(
        VitalSign.DIASTOLIC,
        "DIABP",
        "Diastolic Blood Pressure",
        "mmHg",
        "8462-4",
        "Diastolic blood pressure",
        "mm[Hg]",
    ),
    VitalSignTerm(
        VitalSign.HEART_RATE, "PULSE", "Pulse Rate", "beats/min", "8867-4", "Heart rate", "/min"
    ),
    VitalSignTerm(
        VitalSign.TEMPERATURE, "TEMP", "Temperature", "C", "8310-5", "Body temperature", "Cel"
    ),
)
BLOOD_PRESSURE_PANEL = ("85354-9", "Blood pressure panel with all children optional")

# CDISC CT "Action Taken" is not kept; causality (C66766 is not fixed by CDISC; these are the
# sponsor-defined values SDTM reviewers see most) and outcome (C66768) are.
AE_RELATEDNESS = {
    Relatedness.NOT_RELATED: "NOT RELATED",
    Relatedness.UNLIKELY: "UNLIKELY RELATED",
    Relatedness.POSSIBLE: "POSSIBLY RELATED",
    Relatedness.PROBABLE: "PROBABLY RELATED",
    Relatedness.DEFINITE: "RELATED",
}
AE_OUTCOME = {
    AdverseEventOutcome.ONGOING: "NOT RECOVERED/NOT RESOLVED",
    AdverseEventOutcome.RECOVERED: "RECOVERED/RESOLVED",
    AdverseEventOutcome.RECOVERED_WITH_SEQUELAE: "RECOVERED/RESOLVED WITH SEQUELAE",
    AdverseEventOutcome.FATAL: "FATAL",
    AdverseEventOutcome.UNKNOWN: "UNKNOWN",
}
# The seriousness flags of SDTM's AE domain, one per criterion.
AE_SERIOUS_FLAGS = {
    SeriousCriterion.DEATH: "AESDTH",
    SeriousCriterion.LIFE_THREATENING: "AESLIFE",
    SeriousCriterion.HOSPITALISATION: "AESHOSP",
    SeriousCriterion.DISABILITY: "AESDISAB",
    SeriousCriterion.CONGENITAL_ANOMALY: "AESCONG",
    SeriousCriterion.MEDICALLY_IMPORTANT: "AESMIE",
}
# FHIR R4 AdverseEvent: seriousness (adverse-event-seriousness), outcome (adverse-event-outcome).
FHIR_AE_OUTCOME = {
    AdverseEventOutcome.ONGOING: "ongoing",
    AdverseEventOutcome.RECOVERED: "resolved",
    AdverseEventOutcome.RECOVERED_WITH_SEQUELAE: "resolvedWithSequelae",
    AdverseEventOutcome.FATAL: "fatal",
    AdverseEventOutcome.UNKNOWN: "unknown",
}


def ae_severity(grade: int) -> str:
    """CDISC CT "Severity/Intensity Scale for Adverse Events" (C66769) from the CTCAE grade
    (1 mild, 2 moderate, 3 and above severe); the grade itself goes in AETOXGR."""
    return "MILD" if grade <= 1 else "MODERATE" if grade == 2 else "SEVERE"


# CDISC CT "Completion/Reason for Non-Completion" (C66727), per closing transition.
DS_WITHDRAWAL = {
    WithdrawalCategory.PARTICIPANT_DECISION: "WITHDRAWAL BY SUBJECT",
    WithdrawalCategory.INVESTIGATOR_DECISION: "PHYSICIAN DECISION",
    WithdrawalCategory.ADVERSE_EVENT: "ADVERSE EVENT",
    WithdrawalCategory.LOST_TO_FOLLOW_UP: "LOST TO FOLLOW-UP",
    WithdrawalCategory.OTHER: "OTHER",
}
DS_COMPLETED = "COMPLETED"
DS_SCREEN_FAILURE = "SCREEN FAILURE"
DS_CONSENT = "INFORMED CONSENT OBTAINED"
DS_RANDOMIZED = "RANDOMIZED"
DS_MILESTONE = "PROTOCOL MILESTONE"
DS_DISPOSITION = "DISPOSITION EVENT"


def ds_decode(to_state: State, withdrawal_category: str | None) -> str | None:
    """The disposition a transition into ``to_state`` records (None: not a disposition)."""
    if to_state is State.COMPLETED:
        return DS_COMPLETED
    if to_state is State.SCREEN_FAILED:
        return DS_SCREEN_FAILURE
    if to_state is State.WITHDRAWN:
        category = WithdrawalCategory(withdrawal_category or WithdrawalCategory.OTHER)
        return DS_WITHDRAWAL[category]
    return None


# FHIR R4 ResearchSubject.status (research-subject-status), per state. A participant on hold
# stays "on-study": the hold is a pause within the study, not a status FHIR names.
RESEARCH_SUBJECT_STATUS: dict[State, str] = {
    State.SCREENING: "screening",
    State.PREPARATION: "on-study",
    State.DOSING: "on-study-intervention",
    State.INTEGRATION: "on-study-intervention",
    State.ON_HOLD: "on-study",
    State.FOLLOW_UP: "follow-up",
    State.COMPLETED: "off-study",
    State.SCREEN_FAILED: "ineligible",
    State.WITHDRAWN: "withdrawn",
}

# DM's arms: an open-label protocol's one arm; what a blinded reader sees of a randomised
# participant's; and CDISC CT "Arm Null Reason" (ARMNRS).
OPEN_LABEL_ARM = ("OPEN", "MDMA-assisted therapy, open label")
BLINDED_ARM = ("BLINDED", "Blinded treatment")
ARM_NULL_SCREEN_FAILURE = "SCREEN FAILURE"
ARM_NULL_NOT_ASSIGNED = "NOT ASSIGNED"
ARM_NULL_NOT_TREATED = "ASSIGNED, NOT TREATED"


@dataclass(frozen=True)
class Arms:
    armcd: str
    arm: str
    actarmcd: str
    actarm: str
    armnrs: str


def dm_arms(
    *,
    screen_failed: bool,
    randomised_protocol: bool,
    planned: tuple[str, str] | None,
    treated: bool,
) -> Arms:
    """DM's planned and actual arm. ``planned`` is the allocated arm (code, label) as the
    reader may know it, None when not allocated; an open-label protocol's participant is in
    its one arm."""
    if screen_failed:
        return Arms("", "", "", "", ARM_NULL_SCREEN_FAILURE)
    if not randomised_protocol:
        planned = OPEN_LABEL_ARM
    if planned is None:
        return Arms("", "", "", "", ARM_NULL_NOT_ASSIGNED)
    code, label = planned[0].upper()[:20], planned[1]
    if not treated:
        return Arms(code, label, "", "", ARM_NULL_NOT_TREATED)
    return Arms(code, label, code, label, "")


EPOCHS = {  # CDISC CT "Epoch" (C99079): preparation follows eligibility, before dosing
    SessionKind.PREPARATION: "RUN-IN",
    SessionKind.DOSING: "TREATMENT",
    SessionKind.INTEGRATION: "TREATMENT",
}


def visit(kind: SessionKind, cycle: int, ordinal: int) -> tuple[float, str]:
    """VISITNUM and VISIT of a session: preparation sessions 1.01, 1.02...; dosing cycle c is
    c*10+1 (10+1 = 11 for the first), its integration sessions c*10+1.01, .02..."""
    if kind is SessionKind.PREPARATION:
        return round(1 + ordinal / 100, 2), f"PREPARATION {ordinal}"
    if kind is SessionKind.DOSING:
        return float(cycle * 10 + 1), f"DOSING CYCLE {cycle}"
    return round(cycle * 10 + 1 + ordinal / 100, 2), f"INTEGRATION CYCLE {cycle}.{ordinal}"


TIMEPOINT_EPOCHS = {
    Anchor.ENROLMENT: "SCREENING",
    Anchor.BEFORE_FIRST_DOSING: "BASELINE",
    Anchor.AFTER_DOSING: "TREATMENT",
    Anchor.AFTER_LAST_DOSING: "FOLLOW-UP",
}


def timepoint_visit(timepoint: Timepoint) -> tuple[float, str]:
    """VISITNUM and VISIT of an outcome timepoint, in the sessions' order: at enrolment 0.5,
    the baseline 9 (after preparation, before dosing cycle 1 at 11), after dosing cycle c
    c*10+9 (after its integration sessions), after the last dosing 100 + days/1000."""
    name = clip(timepoint.code.replace("_", " ").upper(), 40)
    if timepoint.anchor is Anchor.ENROLMENT:
        return round(0.5 + timepoint.offset_days / 1000, 3), name
    if timepoint.anchor is Anchor.BEFORE_FIRST_DOSING:
        return 9.0, name
    if timepoint.anchor is Anchor.AFTER_DOSING:
        return float((timepoint.cycle or 0) * 10 + 9), name
    return round(100 + timepoint.offset_days / 1000, 3), name


def study_day(moment: date | datetime | None, reference: date | None) -> int | None:
    """SDTM's --DY: the day counted from the reference start (day 1), with no day 0."""
    if moment is None or reference is None:
        return None
    day = moment.date() if isinstance(moment, datetime) else moment
    delta = (day - reference).days
    return delta + 1 if delta >= 0 else delta


def item_test_code(instrument: str, number: int) -> str:
    """An 8-character QSTESTCD: up to six letters or digits of the instrument and the item's
    two-digit number (MADRS01, PHQ901, CSSRS01)."""
    stem = "".join(ch for ch in instrument.upper() if ch.isalnum())[:6]
    return f"{stem}{number:02d}"


def total_code(instrument: str) -> str:
    stem = "".join(ch for ch in instrument.upper() if ch.isalnum())[:5]
    return f"{stem}TOT"


def clip(text: str | None, limit: int = 200) -> str:
    """Text cut to ``limit`` UTF-8 bytes on a character boundary (SAS XPORT v5's 200-byte
    values; the same cut in every format, so the datasets agree)."""
    if not text:
        return ""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")
