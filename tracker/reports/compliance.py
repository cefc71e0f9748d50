"""The compliance report: a header, the results per participant (streamed in batches), and a
summary gathered on the same single pass."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, checkpoint_store, record_event, verify_since_mark
from tracker.auth.models import User
from tracker.db import utcnow
from tracker.dosing.models import VitalSignAlert
from tracker.errors import InvalidInput
from tracker.participants.models import Participant, ProtocolDeviation
from tracker.participants.queries import visible_to
from tracker.protocol import ProtocolDefinition, State
from tracker.protocol.compliance import CHECKS, CHECKS_BY_ID, run_checks
from tracker.protocol.compliance_outcomes import retention_of
from tracker.protocol.compliance_records import CheckResult, Outcome, ParticipantRecord, StudyFacts
from tracker.protocol.outcomes import Retention
from tracker.reports.accountability import LotResult, accountability_section
from tracker.reports.blinding import BlindingSection, blinding_section
from tracker.reports.outcomes import OutcomeRow, outcome_rows
from tracker.reports.records import batches, load_records
from tracker.safety.models import AdverseEvent
from tracker.sessions.models import TherapySession
from tracker.sites.models import Site
from tracker.study.services import current_protocol_version, definition_of


@dataclass(frozen=True)
class ReportFilter:
    site: str | None = None
    state: str | None = None
    check: str | None = None
    failures_only: bool = False

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if v}

    @classmethod
    def checked(
        cls,
        site: object = None,
        state: object = None,
        check: object = None,
        failures_only: object = False,
    ) -> ReportFilter:
        """The filter a page, the API, a background job or the command line was given: an
        unknown state or check is refused (400), not read as a filter that matches nothing."""
        for name, value in (("site", site), ("state", state), ("check", check)):
            if value is not None and (not isinstance(value, str) or len(value) > 40):
                raise InvalidInput(f"The {name} must be a short text.", [name])
        if state and state not in {s.value for s in State}:
            raise InvalidInput(f"Unknown state {state!r}.", ["state"])
        if check and check not in CHECKS_BY_ID:
            raise InvalidInput(f"Unknown check {check!r}.", ["check"])
        if not isinstance(failures_only, bool):
            raise InvalidInput("failures_only must be true or false.", ["failures_only"])
        return cls(
            site=str(site).upper() if site else None,
            state=str(state) if state else None,
            check=str(check) if check else None,
            failures_only=failures_only,
        )


@dataclass(frozen=True)
class ReportHeader:
    title: str
    protocol: str
    generated_at: datetime
    generated_by: str
    audit_head: str
    audit_events: int
    audit_ok: bool
    audit_problem: str | None
    filters: dict[str, object]
    # The events up to here were verified before (the signed mark), not re-read for this one.
    audit_verified_from: int = 0

    @property
    def audit_checked(self) -> str:
        """Which events this report's verification read (empty: all of them)."""
        if not self.audit_verified_from:
            return ""
        if self.audit_verified_from >= self.audit_events:
            return "no events since the last verification"
        first, last = self.audit_verified_from + 1, self.audit_events
        read = f"event {last}" if first == last else f"events {first} to {last}"
        return f"{read} checked now, the ones before at the last verification"

    def to_dict(self) -> dict[str, object]:
        return {
            "title": self.title,
            "protocol": self.protocol,
            "generated_at": self.generated_at.isoformat(),
            "generated_by": self.generated_by,
            "audit_head": self.audit_head,
            "audit_events": self.audit_events,
            "audit_ok": self.audit_ok,
            "filters": self.filters,
        }


@dataclass(frozen=True)
class ParticipantResult:
    participant_id: int
    study_id: str
    site: str
    state: str
    results: tuple[CheckResult, ...]
    record: ParticipantRecord | None = None
    protocol: ProtocolDefinition | None = None

    @property
    def failures(self) -> int:
        return sum(1 for r in self.results if r.outcome is Outcome.FAIL)


@dataclass(frozen=True)
class RetentionRow:
    """One follow-up timepoint's retention over the report's participants (SPEC §10, C17):
    of everyone who entered treatment and left it, how many were assessed. ``rate`` is the
    share assessed of those whose timepoint is due (done, missed, withdrawn or lost)."""

    protocol: str
    timepoint: str
    title: str
    followed: int
    done: int
    missed: int
    withdrawn: int
    lost: int
    not_due: int

    @property
    def due(self) -> int:
        return self.done + self.missed + self.withdrawn + self.lost

    @property
    def rate(self) -> float | None:
        return round(self.done / self.due, 3) if self.due else None

    def to_dict(self) -> dict[str, object]:
        return {
            "protocol": self.protocol,
            "timepoint": self.timepoint,
            "title": self.title,
            "followed": self.followed,
            "due": self.due,
            **{place.value: getattr(self, place.value) for place in Retention},
            "retention_rate": self.rate,
        }


@dataclass
class Summary:
    participants: int = 0
    states: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, Counter[str]] = field(
        default_factory=lambda: {c.id: Counter() for c in CHECKS}
    )
    # (protocol, timepoint code, title) -> how many participants stand where
    _retention: dict[tuple[str, str, str], Counter[Retention]] = field(default_factory=dict)
    today: date | None = None  # the report's day, for the retention of its participants

    def add(
        self,
        row: ParticipantResult,
        record: ParticipantRecord | None = None,
        protocol: ProtocolDefinition | None = None,
    ) -> None:
        self.participants += 1
        self.states[row.state] += 1
        for result in row.results:
            self.outcomes[result.check_id][result.outcome.value] += 1
        if record is not None and protocol is not None and protocol.timepoints:
            label = f"{protocol.code} v{protocol.version}"
            for point, place in retention_of(record, protocol, self.today or utcnow().date()):
                key = (label, point.code, point.title)
                self._retention.setdefault(key, Counter())[place] += 1

    @property
    def retention(self) -> list[RetentionRow]:
        return [
            RetentionRow(
                protocol,
                code,
                title,
                sum(counts.values()),
                *(counts[place] for place in Retention),
            )
            for (protocol, code, title), counts in self._retention.items()
        ]

    def pass_rate(self, check_id: str) -> float | None:
        counts = self.outcomes[check_id]
        judged = counts["pass"] + counts["fail"]
        return None if judged == 0 else counts["pass"] / judged

    def to_dict(self) -> dict[str, object]:
        return {
            "participants": self.participants,
            "states": {s.value: self.states.get(s.value, 0) for s in State},
            "checks": [
                {
                    "id": c.id,
                    "pass": self.outcomes[c.id]["pass"],
                    "fail": self.outcomes[c.id]["fail"],
                    "not_applicable": self.outcomes[c.id]["not_applicable"],
                    "pass_rate": self.pass_rate(c.id),
                }
                for c in CHECKS
            ],
            "retention": [r.to_dict() for r in self.retention],
        }


def report_header(
    db: Session, generated_by: str, flt: ReportFilter, title: str = "Protocol compliance"
) -> ReportHeader:
    """The header every report states, with the audit trail verified at this moment: the
    events since the last verified head, held against the signed checkpoints."""
    verification = verify_since_mark(db, checkpoint_store())
    protocol = current_protocol_version(db)
    return ReportHeader(
        title=title,
        protocol=f"{protocol.title} ({protocol.code} v{protocol.version})",
        generated_at=utcnow(),
        generated_by=generated_by,
        audit_head=verification.head,
        audit_events=verification.events,
        audit_ok=verification.ok,
        audit_problem=verification.problem,
        filters=flt.as_dict(),
        audit_verified_from=verification.verified_from,
    )


def _query(user: User | None, flt: ReportFilter) -> sa.Select[Participant]:
    query = visible_to(user)
    if flt.site:
        query = query.where(
            Participant.site_id.in_(sa.select(Site.id).where(Site.code == flt.site.upper()))
        )
    if flt.state:
        query = query.where(Participant.state == flt.state)
    return query


def outcome_section(db: Session, user: User | None, flt: ReportFilter) -> list[OutcomeRow]:
    """The outcomes report over the compliance report's participants (pooled while blinded)."""
    return outcome_rows(db, user, _query(user, flt))


def accountability(db: Session, user: User | None, flt: ReportFilter) -> list[LotResult]:
    return accountability_section(db, user, flt.site)


def blinding(db: Session, user: User | None, flt: ReportFilter) -> BlindingSection:
    """The blinding section over the compliance report's participants."""
    return blinding_section(db, user, _query(user, flt))


def participants_in_scope(db: Session, user: User | None, flt: ReportFilter) -> int:
    """How many participants the report covers (site and state filters; before the
    failures-only and check filters, which need the checks run)."""
    query = _query(user, flt).order_by(None).subquery()
    return int(db.scalar(sa.select(sa.func.count()).select_from(query)) or 0)


def participant_results(
    db: Session,
    user: User | None,
    flt: ReportFilter,
    header: ReportHeader,
    summary: Summary | None = None,
    *,
    keep_records: bool = False,
) -> Iterator[ParticipantResult]:
    """Every visible participant's results, a batch at a time; ``summary`` gathers the totals
    of every participant judged (before the failures-only and check filters)."""
    study = StudyFacts(
        audit_ok=header.audit_ok, audit_problem=header.audit_problem, now=header.generated_at
    )
    for chunk in batches(db, _query(user, flt)):
        records = load_records(db, chunk)
        for participant, record in zip(chunk, records, strict=True):
            protocol = definition_of(participant.protocol_version)
            results = run_checks(record, protocol, study)
            row = ParticipantResult(
                participant.id,
                participant.study_id,
                participant.site.code,
                participant.state,
                results,
                record if keep_records else None,
                protocol if keep_records else None,
            )
            if summary is not None:
                summary.today = header.generated_at.date()
                summary.add(row, record, protocol)
            if flt.check:
                row = ParticipantResult(
                    row.participant_id,
                    row.study_id,
                    row.site,
                    row.state,
                    tuple(r for r in results if r.check_id == flt.check),
                    row.record,
                    row.protocol,
                )
            if flt.failures_only and row.failures == 0:
                continue
            yield row


@dataclass(frozen=True)
class Deviation:
    study_id: str
    guard_code: str
    description: str
    reason: str
    approved_by: str
    occurred_at: datetime


def deviations(
    db: Session, user: User | None, flt: ReportFilter, limit: int = 500
) -> list[Deviation]:
    visible = _query(user, flt).subquery()
    rows = db.execute(
        sa.select(ProtocolDeviation, Participant.study_id, User.printed_name)
        .join(Participant, Participant.id == ProtocolDeviation.participant_id)
        .join(User, User.id == ProtocolDeviation.approved_by_id)
        .where(Participant.id.in_(sa.select(visible.c.id)))
        .order_by(ProtocolDeviation.occurred_at)
        .limit(limit)
    )
    return [
        Deviation(study_id, d.guard_code, d.description, d.reason, name, d.occurred_at)
        for d, study_id, name in rows
    ]


@dataclass(frozen=True)
class SafetyItems:
    unreported_serious_events: int
    overdue_serious_events: int
    unassessed_events: int
    unacknowledged_alerts: int


def open_safety_items(db: Session, user: User | None, flt: ReportFilter) -> SafetyItems:
    visible = sa.select(_query(user, flt).subquery().c.id)
    now = utcnow()
    events = db.execute(
        sa.select(
            sa.func.count().filter(
                AdverseEvent.serious.is_(True), AdverseEvent.reported_at.is_(None)
            ),
            sa.func.count().filter(
                AdverseEvent.serious.is_(True),
                AdverseEvent.reported_at.is_(None),
                AdverseEvent.report_due_at < now,
            ),
            sa.func.count().filter(AdverseEvent.relatedness.is_(None)),
        ).where(AdverseEvent.participant_id.in_(visible))
    ).one()
    alerts = db.scalar(
        sa.select(sa.func.count())
        .select_from(VitalSignAlert)
        .join(TherapySession, TherapySession.id == VitalSignAlert.session_id)
        .where(TherapySession.participant_id.in_(visible), VitalSignAlert.acknowledged_at.is_(None))
    )
    return SafetyItems(int(events[0]), int(events[1]), int(events[2]), int(alerts or 0))


def record_export(
    db: Session,
    actor: Actor,
    fmt: str,
    flt: ReportFilter,
    header: ReportHeader,
    report: str = "compliance_report",
) -> None:
    """Every export is itself an audit event (committed before the file streams out)."""
    record_event(
        db,
        actor,
        "report.export",
        report,
        None,
        new={"format": fmt, "filters": flt.as_dict(), "audit_head": header.audit_head},
    )


def check_catalogue() -> list[dict[str, str]]:
    """The checks judged per participant (the lot checks: ``lot_check_catalogue``)."""
    return [
        {"id": c.id, "description": c.description, "severity": c.severity.value} for c in CHECKS
    ]
