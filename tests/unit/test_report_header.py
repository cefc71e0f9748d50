"""What a report says of the audit events its verification read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tracker.reports.compliance import ReportHeader


@pytest.mark.parametrize(
    ("verified_from", "events", "said"),
    [
        (0, 40, ""),  # all of them were read
        (40, 40, "no events since the last verification"),
        (39, 40, "event 40 checked now, the ones before at the last verification"),
        (30, 40, "events 31 to 40 checked now, the ones before at the last verification"),
    ],
)
def test_the_events_a_report_checked(verified_from: int, events: int, said: str) -> None:
    header = ReportHeader(
        title="Protocol compliance",
        protocol="mdma-at v1",
        generated_at=datetime(2026, 12, 7, tzinfo=UTC),
        generated_by="Auditor",
        audit_head="0" * 64,
        audit_events=events,
        audit_ok=True,
        audit_problem=None,
        filters={},
        audit_verified_from=verified_from,
    )
    assert header.audit_checked == said
