"""The compliance checks of the outcome measures (SPEC §10): C15 windows, C16 the blind of
the primary outcome, C17 follow-up. They call the same functions as the services (the window,
who may record), so the report and the refusals cannot disagree."""

from datetime import date

from tracker.protocol.compliance_records import (
    CheckResult,
    Evidence,
    ParticipantRecord,
    StudyFacts,
    judged,
    not_applicable,
)
from tracker.protocol.definition import ProtocolDefinition
from tracker.protocol.outcomes import (
    Retention,
    Timepoint,
    follow_up_retention,
    in_window,
    missing_instruments,
    recorder_refusal,
    window_of,
)


def _no_outcomes(check_id: str, protocol: ProtocolDefinition) -> CheckResult | None:
    if not protocol.timepoints:
        return not_applicable(check_id, "The protocol has no outcome measures.")
    return None


def c15_assessment_windows(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    """Every assessment within its timepoint's window, or with a reason (a deviation)."""
    if (skip := _no_outcomes("C15", protocol)) is not None:
        return skip
    if not record.assessments or record.anchors is None:
        return not_applicable("C15", "No assessment is recorded.")
    evidence = []
    deviations = []
    for assessment in record.assessments:
        point = protocol.timepoint(assessment.timepoint)
        placed = in_window(point, record.anchors, assessment.administered_at.date())
        if placed is not False:
            continue
        window = window_of(point, record.anchors)
        expected = f"{window[0]:%Y-%m-%d} to {window[1]:%Y-%m-%d}" if window else "its window"
        label = f"{assessment.instrument} at {point.title} (assessment #{assessment.id})"
        if assessment.reason:
            deviations.append(f"{label}: {assessment.reason}")
            continue
        evidence.append(
            Evidence(label, expected, f"{assessment.administered_at:%Y-%m-%d}, no reason")
        )
    note = ("Outside the window with a reason: " + "; ".join(deviations)) if deviations else ""
    return judged("C15", evidence, note)


def c16_blinded_primary(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    """Every primary-instrument assessment by a rater who attended none of the sessions."""
    if (skip := _no_outcomes("C16", protocol)) is not None:
        return skip
    assert protocol.outcomes is not None
    primary = [
        a for a in record.assessments if a.instrument == protocol.outcomes.primary_instrument
    ]
    if not primary:
        return not_applicable("C16", "No primary assessment is recorded.")
    instrument = protocol.instrument(protocol.outcomes.primary_instrument)
    evidence = []
    for assessment in primary:
        refusal = recorder_refusal(
            instrument,
            assessment.recorded_by_role,
            assigned=True,  # the assignment may have ended since; the blind is what counts
            attended_a_session=assessment.recorder_attended_a_session,
        )
        if refusal is not None:
            evidence.append(
                Evidence(
                    f"{assessment.instrument} at {assessment.timepoint} (#{assessment.id})",
                    "recorded by a blinded rater who attended no session",
                    f"{assessment.recorded_by} ({assessment.recorded_by_role})"
                    + (", present at a session" if assessment.recorder_attended_a_session else ""),
                )
            )
    return judged("C16", evidence)


def c17_follow_up(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    """Every follow-up timepoint past its window is assessed or recorded as missed with a
    reason: nobody is silently lost to follow-up. A withdrawal ends follow-up with its own
    recorded reason; the study-wide retention is in the report's outcomes section."""
    if (skip := _no_outcomes("C17", protocol)) is not None:
        return skip
    anchors = record.anchors
    followed = [t for t in protocol.timepoints if t.follow_up]
    if anchors is None or anchors.treatment_ended_on is None or not followed:
        return not_applicable("C17", "Follow-up has not started.")
    evidence = []
    for point, place in retention_of(record, protocol, study.now.date()):
        if place is Retention.LOST:
            window = window_of(point, anchors)
            assert window is not None
            evidence.append(
                Evidence(
                    point.title,
                    f"assessed by {window[1]:%Y-%m-%d}, or recorded as missed",
                    f"no {', '.join(missing_instruments(point, record.recorded))}",
                )
            )
    return judged("C17", evidence)


def retention_of(
    record: ParticipantRecord, protocol: ProtocolDefinition, today: date
) -> list[tuple[Timepoint, Retention]]:
    """Each follow-up timepoint of a participant in follow-up with its place in the retention
    figures (none before treatment has ended)."""
    if record.anchors is None:
        return []
    recorded = record.recorded
    places = []
    for point in protocol.timepoints:
        place = follow_up_retention(
            point,
            record.anchors,
            today,
            done=not missing_instruments(point, recorded),
            missed=point.code in record.missed_timepoints,
        )
        if place is not None:
            places.append((point, place))
    return places


def c18_emergency_unblindings(
    record: ParticipantRecord, protocol: ProtocolDefinition, study: StudyFacts
) -> CheckResult:
    """Every emergency unblinding is on record with who, when and why, and was made by an
    investigator; the report lists each one, so a reviewer sees whom the blind was broken for."""
    if protocol.randomisation is None:
        return not_applicable("C18", "The protocol does not randomise.")
    if not record.unblindings:
        return not_applicable("C18", "No emergency unblinding.")
    evidence = []
    listed = []
    for u in record.unblindings:
        what = f"unblinding of {u.unblinded_at:%Y-%m-%d %H:%M} UTC by {u.by}"
        if u.by_role != "investigator":
            evidence.append(Evidence(what, "by an investigator", f"by a {u.by_role}"))
        if not u.reason.strip():
            evidence.append(Evidence(what, "a reason", "no reason"))
        listed.append(f"{u.unblinded_at:%Y-%m-%d %H:%M} UTC, {u.by}: {u.reason}")
    return judged("C18", evidence, "Emergency unblindings: " + "; ".join(listed))
