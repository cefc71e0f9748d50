"""The benchmark generator: a small study on each database, with every state, a chain that
verifies and a compliance report that runs over it."""

from __future__ import annotations

import csv
import functools
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from benchmarks import generate
from tests.support.databases import BACKENDS, scratch_database
from tracker import migrate
from tracker.audit.services import verify
from tracker.db import create_engine
from tracker.participants.models import Participant
from tracker.protocol import State
from tracker.reports import compliance, exporters
from tracker.reports.outcomes import outcome_rows
from tracker.study.models import ProtocolVersion


@functools.cache
def templates() -> list[generate.Template]:
    """Built once per run (the slow part: real histories through the services)."""
    return generate.build_templates(variants=1)


def seeded(url: str, participants: int) -> generate.SeedResult:
    migrate.upgrade(url)
    return generate.seed(url, participants, templates=templates())


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_builds_a_study_that_verifies_and_reports(backend: str, tmp_path: Path) -> None:
    with scratch_database(backend, tmp_path) as url:
        result = seeded(url, 24)
        assert result.participants == 24
        assert result.rows["vital_sign_readings"] > 0
        assert result.rows["audit_events"] > 20
        engine = create_engine(url)
        try:
            with Session(engine) as session:
                states = set(session.scalars(sa.select(Participant.state).distinct()))
                # Follow-up comes from the depression protocol's participants.
                assert states == {s.value for s in State}
                protocols = set(
                    session.scalars(
                        sa.select(ProtocolVersion.code).join(
                            Participant, Participant.protocol_version_id == ProtocolVersion.id
                        )
                    )
                )
                assert protocols == {"mdma-at", "mdma-mdd"}
                for table in (
                    "vital_sign_alerts",
                    "adverse_events",
                    "side_effects",
                    "notes",
                    "assessments",
                    "rater_assignments",
                ):
                    assert session.scalar(sa.text(f"SELECT count(*) FROM {table}"))
                verification = verify(session)
                assert verification.ok, verification.problem
                assert verification.head == result.audit_head

                flt = compliance.ReportFilter()
                header = compliance.report_header(session, "bench test", flt)
                assert header.audit_ok
                summary = compliance.Summary()
                rows = compliance.participant_results(session, None, flt, header, summary)
                text = "".join(exporters.csv_report(header, rows))
                records = list(csv.DictReader(io.StringIO(text)))
                assert summary.participants == 24
                assert len({r["study_id"] for r in records}) == 24
                # The cloned assessments are their participants' own: every outcome check
                # passes (windows, the blinded rater, follow-up), and retention is counted.
                for check in ("C15", "C16", "C17"):
                    assert summary.outcomes[check]["fail"] == 0, check
                    assert summary.outcomes[check]["pass"] > 0, check
                assert {r.timepoint for r in summary.retention} >= {"primary_endpoint"}
                rows = outcome_rows(session, None)
                assert {r.instrument for r in rows} == {"madrs", "phq9", "gad7", "cssrs"}
        finally:
            engine.dispose()


def test_seed_refuses_a_database_with_participants(tmp_path: Path) -> None:
    with scratch_database("sqlite", tmp_path) as url:
        seeded(url, 16)
        with pytest.raises(RuntimeError, match="already has participants"):
            generate.seed(url, 16, templates=templates())
