"""SDTM-style datasets (SPEC §13): DM, DS, EX, VS, AE, QS, SV and DV, with the SDTMIG
variable names, ``--SEQ`` keys and CDISC controlled terms (``protocol.exchange_terms``).

Each domain is a list of variables and a builder that turns one participant's records into
rows (dicts by variable name). Dates are ISO 8601 in the site's local time, as SDTM collects
them; ``--DY`` counts from the first dose (RFSTDTC). Text is cut to 200 bytes in every format
(``clip``), so the CSV, XPORT and Dataset-JSON copies hold the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from tracker.exchange.scope import ExportScope
from tracker.exchange.source import Subject
from tracker.protocol.dosing import AdverseEventOutcome, Relatedness, SeriousCriterion
from tracker.protocol.exchange_terms import (
    AE_OUTCOME,
    AE_RELATEDNESS,
    AE_SERIOUS_FLAGS,
    BLINDED_ARM,
    DS_CONSENT,
    DS_DISPOSITION,
    DS_MILESTONE,
    DS_RANDOMIZED,
    EPOCHS,
    SEX,
    SEX_UNKNOWN,
    TIMEPOINT_EPOCHS,
    VITAL_SIGN_TERMS,
    ae_severity,
    clip,
    dm_arms,
    ds_decode,
    item_test_code,
    study_day,
    timepoint_visit,
    total_code,
    visit,
)
from tracker.protocol.outcomes import InstrumentKind
from tracker.protocol.sessions import SessionKind, SessionStatus
from tracker.site_time import zone
from tracker.study.models import definition_of

Row = dict[str, Any]


@dataclass(frozen=True)
class Variable:
    name: str  # at most 8 characters (XPORT v5)
    label: str  # at most 40 characters
    numeric: bool = False
    key: int | None = None  # position in the dataset's natural key


def _v(name: str, label: str, numeric: bool = False, key: int | None = None) -> Variable:
    return Variable(name, label, numeric, key)


_ID = [
    _v("STUDYID", "Study Identifier", key=1),
    _v("DOMAIN", "Domain Abbreviation"),
    _v("USUBJID", "Unique Subject Identifier", key=2),
]


def _seq(domain: str) -> Variable:
    return _v(f"{domain}SEQ", "Sequence Number", numeric=True, key=3)


@dataclass(frozen=True)
class Domain:
    code: str
    label: str
    variables: list[Variable]
    rows: Callable[[Subject, ExportScope, dict[str, Any]], Iterator[Row]]


def _local(moment: datetime | None, context: dict[str, Any]) -> str:
    if moment is None:
        return ""
    return moment.astimezone(context["zone"]).strftime("%Y-%m-%dT%H:%M:%S")


def _local_date(moment: datetime | None, context: dict[str, Any]) -> date | None:
    return None if moment is None else moment.astimezone(context["zone"]).date()


def context_of(subject: Subject) -> dict[str, Any]:
    """What every domain of one subject needs: its study id, zone, reference start, visits."""
    participant = subject.participant
    protocol = definition_of(participant.protocol_version)
    tz = zone(participant.site.time_zone)
    context: dict[str, Any] = {"zone": tz, "protocol": protocol}
    context["studyid"] = protocol.code.upper()
    context["usubjid"] = f"{context['studyid']}-{subject.study_id}"
    first = subject.first_dose_at()
    context["rfstdt"] = _local_date(first, context)
    visits: dict[int, tuple[float, str]] = {}
    ordinals: dict[tuple[SessionKind, int], int] = {}
    for rows in subject.sessions:
        session = rows.session
        kind = SessionKind(session.kind)
        ordinals[(kind, session.cycle)] = ordinals.get((kind, session.cycle), 0) + 1
        visits[session.id] = visit(kind, session.cycle, ordinals[(kind, session.cycle)])
    context["visits"] = visits
    return context


def _ids(domain: str, context: dict[str, Any]) -> Row:
    return {"STUDYID": context["studyid"], "DOMAIN": domain, "USUBJID": context["usubjid"]}


def _dy(moment: datetime | None, context: dict[str, Any]) -> int | None:
    return study_day(_local_date(moment, context), context["rfstdt"])


# --- DM ------------------------------------------------------------------------------------

DM = [
    *_ID,
    _v("SUBJID", "Subject Identifier for the Study"),
    _v("RFSTDTC", "Subject Reference Start Date/Time"),
    _v("RFENDTC", "Subject Reference End Date/Time"),
    _v("RFXSTDTC", "Date/Time of First Study Treatment"),
    _v("RFXENDTC", "Date/Time of Last Study Treatment"),
    _v("RFICDTC", "Date/Time of Informed Consent"),
    _v("RFPENDTC", "Date/Time of End of Participation"),
    _v("SITEID", "Study Site Identifier"),
    _v("BRTHDTC", "Date/Time of Birth"),
    _v("SEX", "Sex"),
    _v("ARMCD", "Planned Arm Code"),
    _v("ARM", "Description of Planned Arm"),
    _v("ACTARMCD", "Actual Arm Code"),
    _v("ACTARM", "Description of Actual Arm"),
    _v("ARMNRS", "Reason Arm and/or Actual Arm is Null"),
]


def dm_rows(subject: Subject, scope: ExportScope, context: dict[str, Any]) -> Iterator[Row]:
    participant = subject.participant
    consent = min((c.signed_on for c in subject.consents), default=None)
    closing = [t for t in subject.transitions if ds_decode(t.to_state, t.withdrawal_category)]
    row = {
        **_ids("DM", context),
        "SUBJID": subject.study_id,
        "RFSTDTC": _local(subject.first_dose_at(), context),
        "RFENDTC": _local(subject.last_dose_at(), context),
        "RFXSTDTC": _local(subject.first_dose_at(), context),
        "RFXENDTC": _local(subject.last_dose_at(), context),
        "RFICDTC": consent.isoformat() if consent else "",
        "RFPENDTC": _local(closing[-1].occurred_at, context) if closing else "",
        "SITEID": subject.site,
        # Only the year is collected: ISO 8601 allows the reduced precision.
        "BRTHDTC": str(participant.year_of_birth),
        "SEX": SEX.get(participant.sex, SEX_UNKNOWN),
    }
    allocation = subject.allocation
    planned: tuple[str, str] | None = None
    if allocation is not None:
        if scope.arms and allocation.arm is not None:
            version = participant.protocol_version_id
            planned = (allocation.arm, scope.arm_label(version, allocation.arm))
        else:
            planned = BLINDED_ARM
    arms = dm_arms(
        screen_failed=participant.state == "screen_failed",
        randomised_protocol=context["protocol"].randomisation is not None,
        planned=planned,
        treated=subject.first_dose_at() is not None,
    )
    row.update(
        {
            "ARMCD": arms.armcd,
            "ARM": arms.arm,
            "ACTARMCD": arms.actarmcd,
            "ACTARM": arms.actarm,
            "ARMNRS": arms.armnrs,
        }
    )
    yield row


# --- DS ------------------------------------------------------------------------------------

DS = [
    *_ID,
    _seq("DS"),
    _v("DSTERM", "Reported Term for the Disposition Event"),
    _v("DSDECOD", "Standardized Disposition Term"),
    _v("DSCAT", "Category for Disposition Event"),
    _v("DSSCAT", "Subcategory for Disposition Event"),
    _v("DSSTDTC", "Start Date/Time of Disposition Event"),
    _v("DSSTDY", "Study Day of Start of Disposition Event", numeric=True),
]


def ds_rows(subject: Subject, scope: ExportScope, context: dict[str, Any]) -> Iterator[Row]:
    events: list[tuple[str, str, str, str, datetime | date]] = []
    for consent in subject.consents[:1]:
        events.append((DS_CONSENT, DS_CONSENT, DS_MILESTONE, "", consent.signed_on))
    if subject.allocation and subject.allocation.allocated_at:
        events.append(
            (DS_RANDOMIZED, DS_RANDOMIZED, DS_MILESTONE, "", subject.allocation.allocated_at)
        )
    for transition in subject.transitions:
        decode = ds_decode(transition.to_state, transition.withdrawal_category)
        if transition.transition == "discontinue_treatment":
            events.append(
                (
                    clip(transition.reason) or "TREATMENT DISCONTINUED",
                    "OTHER",
                    DS_DISPOSITION,
                    "STUDY TREATMENT",
                    transition.occurred_at,
                )
            )
        elif decode is not None:
            events.append(
                (
                    clip(transition.reason) or decode,
                    decode,
                    DS_DISPOSITION,
                    "STUDY PARTICIPATION",
                    transition.occurred_at,
                )
            )
    for seq, (term, decode, category, subcategory, moment) in enumerate(events, start=1):
        if isinstance(moment, datetime):
            dtc, day = _local(moment, context), _dy(moment, context)
        else:  # a date (the consent's signing day)
            dtc, day = moment.isoformat(), study_day(moment, context["rfstdt"])
        yield {
            **_ids("DS", context),
            "DSSEQ": seq,
            "DSTERM": term,
            "DSDECOD": decode,
            "DSCAT": category,
            "DSSCAT": subcategory,
            "DSSTDTC": dtc,
            "DSSTDY": day,
        }


# --- EX ------------------------------------------------------------------------------------

EX = [
    *_ID,
    _seq("EX"),
    _v("EXREFID", "Reference ID"),
    _v("EXTRT", "Name of Treatment"),
    _v("EXCAT", "Category of Treatment"),
    _v("EXDOSE", "Dose", numeric=True),
    _v("EXDOSU", "Dose Units"),
    _v("EXDOSFRM", "Dose Form"),
    _v("EXROUTE", "Route of Administration"),
    _v("VISITNUM", "Visit Number", numeric=True),
    _v("VISIT", "Visit Name"),
    _v("EPOCH", "Epoch"),
    _v("EXSTDTC", "Start Date/Time of Treatment"),
    _v("EXENDTC", "End Date/Time of Treatment"),
    _v("EXSTDY", "Study Day of Start of Treatment", numeric=True),
]


def ex_rows(subject: Subject, scope: ExportScope, context: dict[str, Any]) -> Iterator[Row]:
    allocation = subject.allocation
    if allocation is not None:  # the arm's product, or the masked name for a blinded reader
        treatment = scope.treatment(subject.participant.protocol_version_id, allocation.arm)
    else:
        treatment = "MDMA"  # an open-label protocol: everyone is given the product
    seq = 0
    for rows in subject.sessions:
        number, name = context["visits"][rows.session.id]
        for dose in rows.doses:
            seq += 1
            yield {
                **_ids("EX", context),
                "EXSEQ": seq,
                "EXREFID": subject.dispensings.get(dose.id, ""),
                "EXTRT": treatment,
                "EXCAT": f"{str(dose.kind).upper()} DOSE",
                "EXDOSE": dose.amount_mg,
                "EXDOSU": "mg",
                "EXDOSFRM": "CAPSULE",
                "EXROUTE": "ORAL",
                "VISITNUM": number,
                "VISIT": name,
                "EPOCH": "TREATMENT",
                "EXSTDTC": _local(dose.administered_at, context),
                "EXENDTC": _local(dose.administered_at, context),
                "EXSTDY": _dy(dose.administered_at, context),
            }


# --- VS ------------------------------------------------------------------------------------

VS = [
    *_ID,
    _seq("VS"),
    _v("VSTESTCD", "Vital Signs Test Short Name", key=4),
    _v("VSTEST", "Vital Signs Test Name"),
    _v("VSORRES", "Result or Finding in Original Units"),
    _v("VSORRESU", "Original Units"),
    _v("VSSTRESC", "Character Result/Finding in Std Format"),
    _v("VSSTRESN", "Numeric Result/Finding in Standard Units", numeric=True),
    _v("VSSTRESU", "Standard Units"),
    _v("VISITNUM", "Visit Number", numeric=True),
    _v("VISIT", "Visit Name"),
    _v("EPOCH", "Epoch"),
    _v("VSDTC", "Date/Time of Measurements", key=5),
    _v("VSDY", "Study Day of Vital Signs", numeric=True),
]


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def vs_rows(subject: Subject, scope: ExportScope, context: dict[str, Any]) -> Iterator[Row]:
    seq = 0
    for rows in subject.sessions:
        number, name = context["visits"][rows.session.id]
        for reading in rows.readings:
            for term in VITAL_SIGN_TERMS:
                seq += 1
                value = float(getattr(reading, term.sign.value))
                yield {
                    **_ids("VS", context),
                    "VSSEQ": seq,
                    "VSTESTCD": term.testcd,
                    "VSTEST": term.test,
                    "VSORRES": _number_text(value),
                    "VSORRESU": term.unit,
                    "VSSTRESC": _number_text(value),
                    "VSSTRESN": value,
                    "VSSTRESU": term.unit,
                    "VISITNUM": number,
                    "VISIT": name,
                    "EPOCH": EPOCHS[SessionKind(rows.session.kind)],
                    "VSDTC": _local(reading.measured_at, context),
                    "VSDY": _dy(reading.measured_at, context),
                }


# --- AE ------------------------------------------------------------------------------------

AE = [
    *_ID,
    _seq("AE"),
    _v("AETERM", "Reported Term for the Adverse Event"),
    # Not coded to MedDRA here: the verbatim term, upper-cased, until a coder assigns one.
    _v("AEDECOD", "Dictionary-Derived Term"),
    _v("AESEV", "Severity/Intensity"),
    _v("AETOXGR", "Standard Toxicity Grade"),
    _v("AESER", "Serious Event"),
    *(
        _v(flag, label)
        for flag, label in (
            ("AESDTH", "Results in Death"),
            ("AESLIFE", "Is Life Threatening"),
            ("AESHOSP", "Requires or Prolongs Hospitalization"),
            ("AESDISAB", "Persist or Signif Disability/Incapacity"),
            ("AESCONG", "Congenital Anomaly or Birth Defect"),
            ("AESMIE", "Other Medically Important Serious Event"),
        )
    ),
    _v("AEREL", "Causality"),
    _v("AEOUT", "Outcome of Adverse Event"),
    _v("AESTDTC", "Start Date/Time of Adverse Event"),
    _v("AEENDTC", "End Date/Time of Adverse Event"),
    _v("AESTDY", "Study Day of Start of Adverse Event", numeric=True),
]


def ae_rows(subject: Subject, scope: ExportScope, context: dict[str, Any]) -> Iterator[Row]:
    for seq, event in enumerate(subject.adverse_events, start=1):
        criteria = {SeriousCriterion(c) for c in event.serious_criteria}
        yield {
            **_ids("AE", context),
            "AESEQ": seq,
            "AETERM": clip(event.term),
            "AEDECOD": clip(event.term.upper()),
            "AESEV": ae_severity(event.grade),
            "AETOXGR": str(event.grade),
            "AESER": "Y" if event.serious else "N",
            **{
                flag: ("Y" if criterion in criteria else "N") if event.serious else ""
                for criterion, flag in AE_SERIOUS_FLAGS.items()
            },
            "AEREL": AE_RELATEDNESS[Relatedness(event.relatedness)] if event.relatedness else "",
            "AEOUT": AE_OUTCOME[AdverseEventOutcome(event.outcome)],
            "AESTDTC": _local(event.onset_at, context),
            "AEENDTC": _local(event.resolved_at, context),
            "AESTDY": _dy(event.onset_at, context),
        }


# --- QS ------------------------------------------------------------------------------------

QS = [
    *_ID,
    _seq("QS"),
    _v("QSTESTCD", "Question Short Name", key=4),
    _v("QSTEST", "Question Name"),
    _v("QSCAT", "Category of Question"),
    _v("QSORRES", "Finding in Original Units"),
    _v("QSSTRESC", "Character Result/Finding in Std Format"),
    _v("QSSTRESN", "Numeric Finding in Standard Units", numeric=True),
    _v("QSEVAL", "Evaluator"),
    _v("VISITNUM", "Visit Number", numeric=True, key=5),
    _v("VISIT", "Visit Name"),
    _v("QSDTC", "Date/Time of Finding"),
    _v("QSDY", "Study Day of Finding", numeric=True),
]


def qs_rows(subject: Subject, scope: ExportScope, context: dict[str, Any]) -> Iterator[Row]:
    """One row per item and one for the total; licensed scales carry item codes and short
    labels only (the protocol file's), never their wording."""
    protocol = context["protocol"]
    instruments = {i.code: i for i in protocol.instruments}
    visits = {t.code: timepoint_visit(t) for t in protocol.timepoints}
    seq = 0
    for assessment in subject.assessments:
        instrument = instruments.get(assessment.instrument)
        if instrument is None:
            continue
        base = {
            "QSCAT": instrument.code.upper(),
            "QSEVAL": "INDEPENDENT ASSESSOR"
            if instrument.kind is InstrumentKind.CLINICIAN
            else "STUDY SUBJECT",
            "VISITNUM": visits[assessment.timepoint][0] if assessment.timepoint in visits else None,
            "VISIT": visits[assessment.timepoint][1]
            if assessment.timepoint in visits
            else clip(assessment.timepoint.upper(), 40),
            "QSDTC": _local(assessment.administered_at, context),
            "QSDY": _dy(assessment.administered_at, context),
        }
        scored = [
            (item_test_code(instrument.code, n), item.label, assessment.items.get(item.code))
            for n, item in enumerate(instrument.items, start=1)
        ]
        scored.append(
            (
                total_code(instrument.code),
                f"{instrument.code.upper()} total score",
                assessment.total,
            )
        )
        for code, label, value in scored:
            if value is None:
                continue
            seq += 1
            yield {
                **_ids("QS", context),
                "QSSEQ": seq,
                "QSTESTCD": code,
                "QSTEST": clip(label, 40),
                **base,
                "QSORRES": str(value),
                "QSSTRESC": str(value),
                "QSSTRESN": value,
            }


# --- SV ------------------------------------------------------------------------------------

SV = [
    *_ID,
    _v("VISITNUM", "Visit Number", numeric=True, key=3),
    _v("VISIT", "Visit Name"),
    _v("EPOCH", "Epoch"),
    _v("SVSTDTC", "Start Date/Time of Observation"),
    _v("SVENDTC", "End Date/Time of Observation"),
    _v("SVSTDY", "Study Day of Start of Observation", numeric=True),
]


def sv_rows(subject: Subject, scope: ExportScope, context: dict[str, Any]) -> Iterator[Row]:
    """The visits that took place, in VISITNUM order: every session that started (completed
    or under way: EX and VS name them) and every outcome timepoint assessed (QS names it)."""
    visits: list[Row] = []
    for rows in subject.sessions:
        session = rows.session
        if session.started_at is None or session.status in (
            SessionStatus.CANCELLED,
            SessionStatus.MISSED,
        ):
            continue
        number, name = context["visits"][session.id]
        visits.append(
            {
                "VISITNUM": number,
                "VISIT": name,
                "EPOCH": EPOCHS[SessionKind(session.kind)],
                "SVSTDTC": _local(session.started_at, context),
                "SVENDTC": _local(session.ended_at, context),
                "SVSTDY": _dy(session.started_at, context),
            }
        )
    protocol = context["protocol"]
    for timepoint in protocol.timepoints:
        times = [a.administered_at for a in subject.assessments if a.timepoint == timepoint.code]
        if not times:
            continue
        number, name = timepoint_visit(timepoint)
        visits.append(
            {
                "VISITNUM": number,
                "VISIT": name,
                "EPOCH": TIMEPOINT_EPOCHS[timepoint.anchor],
                "SVSTDTC": _local(min(times), context),
                "SVENDTC": _local(max(times), context),
                "SVSTDY": _dy(min(times), context),
            }
        )
    for visit_row in sorted(visits, key=lambda r: r["VISITNUM"]):
        yield {**_ids("SV", context), **visit_row}


# --- DV ------------------------------------------------------------------------------------

DV = [
    *_ID,
    _seq("DV"),
    _v("DVREFID", "Reference ID"),
    _v("DVTERM", "Protocol Deviation Term"),
    _v("DVDECOD", "Protocol Deviation Coded Term"),
    _v("DVCAT", "Category for Protocol Deviation"),
    _v("DVSTDTC", "Start Date/Time of Deviation"),
    _v("DVSTDY", "Study Day of Start of Deviation", numeric=True),
]


def dv_rows(subject: Subject, scope: ExportScope, context: dict[str, Any]) -> Iterator[Row]:
    """The approved deviations: a guard overridden with an investigator's reason."""
    for seq, deviation in enumerate(subject.deviations, start=1):
        yield {
            **_ids("DV", context),
            "DVSEQ": seq,
            "DVREFID": f"T-{deviation.transition_event_id}",
            "DVTERM": clip(f"{deviation.description}: {deviation.reason}"),
            "DVDECOD": deviation.guard_code.upper()[:40],
            "DVCAT": "GUARD OVERRIDDEN",
            "DVSTDTC": _local(deviation.occurred_at, context),
            "DVSTDY": _dy(deviation.occurred_at, context),
        }


DOMAINS: tuple[Domain, ...] = (
    Domain("DM", "Demographics", DM, dm_rows),
    Domain("DS", "Disposition", DS, ds_rows),
    Domain("EX", "Exposure", EX, ex_rows),
    Domain("VS", "Vital Signs", VS, vs_rows),
    Domain("AE", "Adverse Events", AE, ae_rows),
    Domain("QS", "Questionnaires", QS, qs_rows),
    Domain("SV", "Subject Visits", SV, sv_rows),
    Domain("DV", "Protocol Deviations", DV, dv_rows),
)
DOMAIN_CODES = tuple(d.code for d in DOMAINS)
