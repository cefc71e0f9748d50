"""Protocol-compliance checks (SPEC §5): pure functions over one participant's record.

Each check has a stable id, a description and a severity, and returns pass, fail (with the
evidence: which record, what was expected, what was found) or not applicable. Documented
overrides still fail the check they bypass, and say so: a deviation is visible, not hidden.
"""

from datetime import datetime, timedelta
from itertools import pairwise

from tracker.protocol.compliance_outcomes import (
    c15_assessment_windows,
    c16_blinded_primary,
    c17_follow_up,
    c18_emergency_unblindings,
)
from tracker.protocol.compliance_records import (
    Check,
    CheckResult,
    Evidence,
    ParticipantRecord,
    SessionRecord,
    Severity,
    StudyFacts,
    judged,
    not_applicable,
    utc_text,
)
from tracker.protocol.definition import ProtocolDefinition
from tracker.protocol.dosing import (
    Dose,
    DoseKind,
    Reading,
    days_between_dosings,
    dose_problems,
    dosing_session_facts,
    within_dosing_interval,
)
from tracker.protocol.facts import DosingSessionFacts

# The helpers under their short names: every check below uses them.
_result = judged
_na = not_applicable
_ts = utc_text


# --- the checks ---------------------------------------------------------------------------


def c01_consent_first(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    if record.first_procedure_at is None:
        return _na("C01", "No study procedure recorded yet.")
    first = record.first_procedure_at
    if record.consent_signed_on is None:
        return _result(
            "C01",
            [Evidence("consent", f"consent signed on or before {first:%Y-%m-%d}", "no consent")],
        )
    if record.consent_signed_on > first.date():
        return _result(
            "C01",
            [
                Evidence(
                    "consent",
                    f"signed on or before the first procedure ({first:%Y-%m-%d})",
                    f"signed on {record.consent_signed_on:%Y-%m-%d}",
                )
            ],
        )
    return _result("C01", [])


def c02_checklist_before_dosing(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    first = record.first_dosing_start
    if first is None:
        return _na("C02", "No dosing session yet.")
    evidence = []
    if record.checklist_signed_at is None or record.checklist_signed_at > first:
        evidence.append(
            Evidence(
                "checklist signature",
                f"signed before the first dosing ({_ts(first)})",
                f"signed {_ts(record.checklist_signed_at)}",
            )
        )
    elif record.checklist_signed_outcome != "eligible":
        evidence.append(
            Evidence(
                "checklist signature",
                "outcome eligible when signed",
                f"outcome {record.checklist_signed_outcome}",
            )
        )
    if (
        record.checklist_signature_voided_at is not None
        and record.checklist_signature_voided_at < first
    ):
        evidence.append(
            Evidence(
                "checklist signature",
                "a valid signature at the first dosing",
                f"voided {_ts(record.checklist_signature_voided_at)}",
            )
        )
    return _result("C02", evidence)


def c03_preparation_before_dosing(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    first = record.first_dosing_start
    if first is None:
        return _na("C03", "No dosing session yet.")
    required = protocol.schedule.preparation_sessions
    done = [
        s
        for s in record.sessions
        if s.kind == "preparation"
        and s.status == "completed"
        and s.ended_at is not None
        and s.ended_at <= first
    ]
    if len(done) >= required:
        return _result("C03", [])
    return _result(
        "C03",
        [
            Evidence(
                "preparation sessions",
                f"{required} completed before {_ts(first)}",
                f"{len(done)} completed",
            )
        ],
    )


def c04_dosing_interval(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    dosings = record.completed_dosing
    if len(dosings) < 2:
        return _na("C04", "Fewer than two dosing sessions.")
    low, high = (
        protocol.schedule.dosing_interval_min_days,
        protocol.schedule.dosing_interval_max_days,
    )
    evidence = []
    for before, after in pairwise(dosings):
        assert before.started_at and after.started_at
        days = days_between_dosings(before.started_at, after.started_at)
        if not within_dosing_interval(days, protocol):
            evidence.append(
                Evidence(after.label, f"{low} to {high} days after {before.label}", f"{days} days")
            )
    note = (
        ("Documented deviation(s): " + "; ".join(record.interval_deviations))
        if evidence and record.interval_deviations
        else ""
    )
    return _result("C04", evidence, note)


def _dosing_sessions(record: ParticipantRecord, check_id: str) -> list[SessionRecord] | CheckResult:
    sessions = record.completed_dosing
    return sessions if sessions else _na(check_id, "No completed dosing session.")


def c05_doses(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    sessions = _dosing_sessions(record, "C05")
    if isinstance(sessions, CheckResult):
        return sessions
    evidence = []
    for row in sessions:
        given: list[Dose] = []
        readings = sorted(row.readings, key=lambda r: r.measured_at)
        if not any(d.kind == DoseKind.INITIAL for d in row.doses):
            evidence.append(Evidence(row.label, "an initial dose", "none recorded"))
        for dose in sorted(row.doses, key=lambda d: d.administered_at):
            latest = next(
                (r for r in reversed(readings) if r.measured_at <= dose.administered_at), None
            )
            reading = (
                None
                if latest is None
                else Reading(
                    latest.measured_at,
                    latest.systolic,
                    latest.diastolic,
                    latest.heart_rate,
                    latest.temperature_c,
                )
            )
            new = Dose(DoseKind(dose.kind), dose.amount_mg, dose.administered_at)
            for problem in dose_problems(
                new, given, protocol, latest_reading=reading, breach_justified=dose.breach_justified
            ):
                evidence.append(
                    Evidence(
                        f"{row.label}, {dose.kind} dose #{dose.id}", "within protocol", problem
                    )
                )
            given.append(new)
    return _result("C05", evidence)


def c19_doses_dispensed(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    """Every dose given is covered by a dispensing for its session (SPEC §12)."""
    doses = [(row, dose) for row in record.sessions if row.kind == "dosing" for dose in row.doses]
    if not doses:
        return _na("C19", "No dose is recorded.")
    return _result(
        "C19",
        [
            Evidence(
                f"{row.label}, {dose.kind} dose #{dose.id} ({dose.amount_mg} mg)",
                "a dispensing for the session",
                "none named",
            )
            for row, dose in doses
            if dose.dispensing is None
        ],
    )


def _facts(row: SessionRecord, protocol: ProtocolDefinition) -> DosingSessionFacts:
    """What the ``complete_dosing`` guards see of a session, derived the same way for the
    report (C06, C07) as for the guards: one rule, one place."""
    return dosing_session_facts(
        protocol,
        completed=row.status == "completed",
        ended_at=row.ended_at,
        doses=[Dose(DoseKind(d.kind), d.amount_mg, d.administered_at) for d in row.doses],
        reading_times=[r.measured_at for r in row.readings],
        therapists_present=row.therapists_present,
        overnight_stay=row.overnight_stay,
        unacknowledged_alerts=sum(1 for a in row.alerts if not a.acknowledged),
    )


def c06_vitals(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    sessions = _dosing_sessions(record, "C06")
    if isinstance(sessions, CheckResult):
        return sessions
    limit = protocol.vital_signs.max_gap_minutes
    evidence = []
    for row in sessions:
        facts = _facts(row, protocol)
        if not facts.has_initial_dose:
            continue
        if not facts.baseline_vitals_present:
            evidence.append(
                Evidence(
                    row.label,
                    f"a baseline reading within {protocol.vital_signs.baseline_within_minutes}"
                    " minutes before the initial dose",
                    "none",
                )
            )
            continue
        gap = facts.max_vitals_gap_minutes
        if gap is not None and gap > limit:
            evidence.append(
                Evidence(
                    row.label,
                    f"readings at most {limit} minutes apart until the end",
                    f"a gap of {gap:.0f} minutes",
                )
            )
    return _result("C06", evidence)


def c07_monitoring(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    sessions = _dosing_sessions(record, "C07")
    if isinstance(sessions, CheckResult):
        return sessions
    rules = protocol.dosing
    evidence = []
    for row in sessions:
        facts = _facts(row, protocol)
        if facts.therapists_present < rules.therapists_present:
            evidence.append(
                Evidence(
                    row.label,
                    f"{rules.therapists_present} therapists present",
                    f"{row.therapists_present}",
                )
            )
        hours = facts.monitoring_hours
        if hours is not None and hours < rules.monitoring_min_hours:
            evidence.append(
                Evidence(
                    row.label,
                    f"monitoring at least {rules.monitoring_min_hours:g} h after the initial dose",
                    f"{hours:.1f} h",
                )
            )
        if rules.overnight_stay_required and not facts.overnight_stay_recorded:
            evidence.append(Evidence(row.label, "overnight stay recorded", "not recorded"))
    return _result("C07", evidence)


def c08_alerts(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    alerts = [(row, a) for row in record.sessions for a in row.alerts]
    if not alerts:
        return _na("C08", "No vital-sign alert raised.")
    return _result(
        "C08",
        [
            Evidence(
                f"{row.label}, alert #{a.id} ({a.sign} {a.value:g})",
                "acknowledged with a note",
                "not acknowledged",
            )
            for row, a in alerts
            if not a.acknowledged
        ],
    )


def c09_integration(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    dosings = record.completed_dosing
    if not dosings:
        return _na("C09", "No completed dosing session.")
    schedule = protocol.schedule
    evidence = []
    for index, row in enumerate(dosings):
        integration = sorted(
            (
                s
                for s in record.sessions
                if s.kind == "integration"
                and s.cycle == row.cycle
                and s.status == "completed"
                and s.started_at
            ),
            key=lambda s: s.started_at or datetime.min,
        )
        due = (row.ended_at or row.started_at or study.now) + timedelta(
            hours=schedule.first_integration_within_hours
        )
        if integration:
            first = integration[0]
            if first.started_at and first.started_at > due:
                evidence.append(
                    Evidence(
                        row.label,
                        f"first integration session by {_ts(due)}",
                        f"{first.label} started {_ts(first.started_at)}",
                    )
                )
        elif study.now > due:
            evidence.append(Evidence(row.label, f"first integration session by {_ts(due)}", "none"))
        if index + 1 < len(dosings):
            following = dosings[index + 1]
            before_next = [
                s
                for s in integration
                if s.started_at and following.started_at and s.started_at < following.started_at
            ]
            if len(before_next) < schedule.integration_sessions_per_cycle:
                evidence.append(
                    Evidence(
                        row.label,
                        f"{schedule.integration_sessions_per_cycle} integration sessions before "
                        f"{following.label}",
                        f"{len(before_next)}",
                    )
                )
    return _result("C09", evidence)


def c10_adverse_events_assessed(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    if not record.adverse_events:
        return _na("C10", "No adverse event.")
    evidence = []
    for event in record.adverse_events:
        label = f"adverse event #{event.id} ({event.term})"
        if event.grade is None:
            evidence.append(Evidence(label, "a CTCAE grade", "none"))
        if event.relatedness is None or not event.assessed_by_investigator:
            evidence.append(
                Evidence(label, "relatedness assessed by an investigator", "not assessed")
            )
    return _result("C10", evidence)


def c11_serious_reported(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    serious = [e for e in record.adverse_events if e.serious]
    if not serious:
        return _na("C11", "No serious adverse event.")
    evidence = []
    pending = 0
    for event in serious:
        label = f"serious adverse event #{event.id} ({event.term})"
        due = event.report_due_at
        if event.reported_at is None:
            if due is not None and study.now > due:
                evidence.append(Evidence(label, f"reported by {_ts(due)}", "not reported"))
            else:
                pending += 1
        elif due is not None and event.reported_at > due:
            evidence.append(
                Evidence(label, f"reported by {_ts(due)}", f"reported {_ts(event.reported_at)}")
            )
    return _result("C11", evidence, f"{pending} report(s) not yet due." if pending else "")


def c12_overrides_documented(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    if not record.overrides:
        return _na("C12", "No override.")
    evidence = []
    for override in record.overrides:
        label = f"{override.transition} override at {_ts(override.occurred_at)}"
        documented = {
            code
            for code, reason, role in override.deviations
            if reason.strip() and role == "investigator"
        }
        for code in override.overridden:
            if code not in documented:
                evidence.append(
                    Evidence(
                        label,
                        f"a deviation for {code} with an investigator's reason",
                        "missing or undocumented",
                    )
                )
    return _result("C12", evidence)


def c13_effects_checklist(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    sessions = _dosing_sessions(record, "C13")
    if isinstance(sessions, CheckResult):
        return sessions
    return _result(
        "C13",
        [
            Evidence(row.label, "the effects checklist (or 'none observed')", "not completed")
            for row in sessions
            if not row.effects_recorded
        ],
    )


def c14_audit_trail(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    if study.audit_ok:
        return _result("C14", [])
    return _result(
        "C14",
        [Evidence("audit trail", "every event re-hashes to the chain", study.audit_problem or "")],
    )


CHECKS: tuple[Check, ...] = (
    Check(
        "C01",
        "Consent recorded before the first study procedure",
        Severity.CRITICAL,
        c01_consent_first,
    ),
    Check(
        "C02",
        "Checklist complete, eligible and signed before the first dosing",
        Severity.CRITICAL,
        c02_checklist_before_dosing,
    ),
    Check(
        "C03",
        "At least the protocol's preparation sessions before the first dosing",
        Severity.MAJOR,
        c03_preparation_before_dosing,
    ),
    Check("C04", "Dosing sessions within the interval window", Severity.MAJOR, c04_dosing_interval),
    Check(
        "C05",
        "Each dosing: doses within protocol (amount, supplemental timing, maximum)",
        Severity.CRITICAL,
        c05_doses,
    ),
    Check(
        "C06",
        "Each dosing: baseline vitals and no gap longer than the protocol allows",
        Severity.MAJOR,
        c06_vitals,
    ),
    Check(
        "C07",
        "Each dosing: two therapists, monitoring of at least 8 h, overnight stay recorded",
        Severity.MAJOR,
        c07_monitoring,
    ),
    Check("C08", "Each vital-sign alert acknowledged", Severity.MAJOR, c08_alerts),
    Check(
        "C09",
        "First integration session within 24 h; enough integration sessions before the next dosing",
        Severity.MAJOR,
        c09_integration,
    ),
    Check(
        "C10",
        "Every adverse event graded and assessed for relatedness by an investigator",
        Severity.MAJOR,
        c10_adverse_events_assessed,
    ),
    Check(
        "C11",
        "Every serious adverse event reported by its deadline",
        Severity.CRITICAL,
        c11_serious_reported,
    ),
    Check(
        "C12",
        "Every override documented as a deviation with an investigator's reason",
        Severity.CRITICAL,
        c12_overrides_documented,
    ),
    Check(
        "C13",
        "Effects checklist (positive and abuse-related effects) completed for every dosing session",
        Severity.MINOR,
        c13_effects_checklist,
    ),
    Check("C14", "The audit trail verifies (study-wide)", Severity.CRITICAL, c14_audit_trail),
    Check(
        "C15",
        "Outcome assessments within their windows, or with a reason",
        Severity.MAJOR,
        c15_assessment_windows,
    ),
    Check(
        "C16",
        "Primary outcome assessed by a blinded rater who attended no session",
        Severity.CRITICAL,
        c16_blinded_primary,
    ),
    Check(
        "C17",
        "Follow-up timepoints assessed, or recorded as missed",
        Severity.MAJOR,
        c17_follow_up,
    ),
    Check(
        "C18",
        "Emergency unblindings on record with who, when and why, each by an investigator",
        Severity.MAJOR,
        c18_emergency_unblindings,
    ),
    Check(
        "C19",
        "Every dose covered by a dispensing of the investigational product for its session",
        Severity.CRITICAL,
        c19_doses_dispensed,
    ),
)
CHECKS_BY_ID = {check.id: check for check in CHECKS}


def run_checks(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> tuple[CheckResult, ...]:
    """Every check, in id order."""
    return tuple(check.run(record, protocol, study) for check in CHECKS)
