"""Every benchmark, each a ratio against its own baseline on the same data, bounded in time.

    python -m benchmarks.run --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Seeds (or reuses) the benchmark databases bench100, bench1k and bench10k on that server with
``tracker bench seed``, then measures and prints a Markdown table of figures (also written to
artifacts/benchmarks.json). Only loopback servers are accepted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from benchmarks.generate import BENCH_PASSWORD
from tracker import migrate

ROOT = Path(__file__).resolve().parent.parent

TRACKER = str(ROOT / ".venv" / "bin" / "tracker")
SIZES = {"bench100": 100, "bench1k": 1000, "bench10k": 10_000}
BUDGET_S = 6.0  # per measured side of a comparison
RESULTS: list[dict[str, Any]] = []


def report(name: str, value: str, baseline: str, ratio: float | None, goal: str = "") -> None:
    RESULTS.append(
        {"benchmark": name, "value": value, "baseline": baseline, "ratio": ratio, "goal": goal}
    )
    shown = "" if ratio is None else f"{ratio:.2f}x"
    print(f"| {name} | {value} | {baseline} | {shown} | {goal} |", flush=True)


def timed(call: Callable[[], object], budget: float = BUDGET_S, at_most: int = 200) -> float:
    """The median seconds of ``call`` over as many runs as fit in ``budget`` (one warm-up)."""
    call()
    times: list[float] = []
    deadline = time.perf_counter() + budget
    while len(times) < at_most and (not times or time.perf_counter() < deadline):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compared(
    page: Callable[[], object],
    baseline: Callable[[], object],
    budget: float = 2 * BUDGET_S,
    at_most: int = 400,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """``page`` and ``baseline`` run in turn (one warm-up each) for ``budget`` seconds, so a
    noisy minute weighs on both alike: each one's (median, min, max) seconds."""
    page()
    baseline()
    times: tuple[list[float], list[float]] = ([], [])
    deadline = time.perf_counter() + budget
    while len(times[0]) < at_most and (not times[0] or time.perf_counter() < deadline):
        for call, seen in ((page, times[0]), (baseline, times[1])):
            start = time.perf_counter()
            call()
            seen.append(time.perf_counter() - start)
    page_s, base_s = times
    return (
        (statistics.median(page_s), min(page_s), max(page_s)),
        (statistics.median(base_s), min(base_s), max(base_s)),
    )


def shown(figures: tuple[float, float, float]) -> str:
    median, low, high = figures
    return f"{median * 1000:.1f} ms ({low * 1000:.1f}-{high * 1000:.1f})"


def url_for(server: str, database: str) -> str:
    return make_url(server).set(database=database).render_as_string(hide_password=False)


def ensure_seeded(server: str, database: str, participants: int) -> str:
    url = url_for(server, database)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.scalar(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
        )
        if not exists:
            connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        try:
            count = connection.scalar(sa.text("SELECT count(*) FROM participants"))
        except sa.exc.ProgrammingError:
            count = 0
    engine.dispose()
    if count == participants:
        migrate.upgrade(url)  # seeded by an older tree: bring its schema to this one's
    if count != participants:
        if count:
            raise SystemExit(f"{database} holds {count} participants, not {participants}: drop it")
        print(f"seeding {database} with {participants} participants …", file=sys.stderr)
        subprocess.run(  # noqa: S603
            [TRACKER, "bench", "seed", "--participants", str(participants), "--database-url", url],
            check=True,
            env={**os.environ, "TRACKER_INSTANCE_PATH": instance_for(url)},
        )
    return url


def instance_for(url: str) -> str:
    """An instance folder per benchmark database: its signed checkpoints and verified mark
    belong to its own audit trail."""
    return f"/tmp/tracker-bench-instance/{make_url(url).database}"  # noqa: S108


# --- pages against raw SQL --------------------------------------------------------------------


def _app(url: str):  # type: ignore[no-untyped-def]
    from tracker import create_app

    return create_app(
        overrides={
            "env": "development",
            "database_url": url,
            "instance_path": instance_for(url),
            "secret_key": "benchmark-secret-key-that-is-long-enough-0123456789",
            "RATELIMIT_ENABLED": False,
            "WTF_CSRF_ENABLED": False,
        },
        environ={},
    )


def _client(app, username: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": BENCH_PASSWORD})
    assert response.status_code == 302, response.status_code
    return client


def _sent(app, client, path: str) -> list[tuple[str, Any]]:  # type: ignore[no-untyped-def]
    """The statements (with their parameters) a page sends to the database."""
    from tracker.db import get_database

    engine = get_database(app).engine
    seen: list[tuple[str, Any]] = []

    def keep(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", keep)
    try:
        client.get(path).get_data()
    finally:
        sa.event.remove(engine, "before_cursor_execute", keep)
    return seen


def _statements(app, client, path: str) -> int:  # type: ignore[no-untyped-def]
    return len(_sent(app, client, path))


def _replay(engine: sa.Engine, sent: list[tuple[str, Any]]) -> Callable[[], None]:
    """A baseline for any page: the very statements it sends, run on a raw driver cursor with
    every row fetched, and nothing built from them (rolled back: a page's own writes, such as
    its login session's last-seen time, cost the same and leave nothing)."""

    def run() -> None:
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            for statement, parameters in sent:
                cursor.execute(statement, parameters)
                if cursor.description is not None:
                    cursor.fetchall()
            connection.rollback()
        finally:
            connection.close()

    return run


# Each baseline reads the facts its page shows, and (RAW_SIGNED_IN, run first) the signed-in
# user's login session, which every page reads too.
RAW_SIGNED_IN = """
SELECT l.id, l.last_seen_at, l.ended_at, u.id, u.username, u.role, u.site_id, u.is_active, s.code
  FROM login_sessions l JOIN users u ON u.id = l.user_id LEFT JOIN sites s ON s.id = u.site_id
  WHERE l.token_hash = :token;
"""
RAW_DASHBOARD = """
SELECT state, count(*) FROM participants WHERE site_id = :site GROUP BY state;
SELECT p.id, p.study_id,
  EXISTS (SELECT 1 FROM consents c WHERE c.participant_id = p.id),
  (SELECT g.content_hash FROM checklist_signatures g WHERE g.participant_id = p.id
    AND g.voided_at IS NULL ORDER BY g.signed_at DESC LIMIT 1)
  FROM participants p WHERE site_id = :site AND state = 'screening'
  ORDER BY enrolled_at, id LIMIT 20;
SELECT a.participant_id, a.item_code, a.answer FROM checklist_answers a WHERE a.participant_id IN (
  SELECT id FROM participants WHERE site_id = :site AND state = 'screening'
  ORDER BY enrolled_at, id LIMIT 20);
SELECT r.participant_id, r.item_code, r.acceptable FROM review_assessments r
  WHERE r.voided_at IS NULL AND r.participant_id IN (
  SELECT id FROM participants WHERE site_id = :site AND state = 'screening'
  ORDER BY enrolled_at, id LIMIT 20);
SELECT id, study_id FROM participants WHERE site_id = :site AND state = 'on_hold'
  ORDER BY updated_at, id LIMIT 20;
SELECT a.id, a.sign, a.value, p.study_id FROM vital_sign_alerts a
  JOIN therapy_sessions s ON s.id = a.session_id JOIN participants p ON p.id = s.participant_id
  WHERE p.site_id = :site AND a.acknowledged_at IS NULL ORDER BY a.raised_at LIMIT 50;
SELECT e.id, e.term, p.study_id FROM adverse_events e JOIN participants p ON p.id = e.participant_id
  WHERE p.site_id = :site AND ((e.serious AND e.reported_at IS NULL) OR e.relatedness IS NULL)
  ORDER BY e.report_due_at LIMIT 50;
SELECT p.id, p.study_id, (SELECT max(s.ended_at) FROM therapy_sessions s
  WHERE s.participant_id = p.id AND s.kind = 'dosing' AND s.cycle = p.cycle
  AND s.status = 'completed') AS ended
  FROM participants p WHERE p.site_id = :site AND p.state = 'integration'
  AND NOT EXISTS (SELECT 1 FROM therapy_sessions s WHERE s.participant_id = p.id
  AND s.kind = 'integration' AND s.cycle = p.cycle AND s.status = 'completed')
  ORDER BY ended LIMIT 50;
SELECT s.*, p.id, p.study_id, p.state FROM therapy_sessions s
  JOIN participants p ON p.id = s.participant_id WHERE p.site_id = :site
  AND ((s.scheduled_at >= :week_start AND s.scheduled_at < :week_end)
    OR (s.started_at IS NOT NULL AND s.ended_at IS NULL AND s.status = 'scheduled'
      AND s.started_at < :open_before))
  ORDER BY s.scheduled_at, s.id LIMIT 200;
"""
RAW_LIST = """
SELECT count(*) FROM participants WHERE site_id = :site;
SELECT p.id, p.study_id, p.state, p.cycle, p.enrolled_at, s.code FROM participants p
  JOIN sites s ON s.id = p.site_id WHERE p.site_id = :site ORDER BY p.study_id LIMIT 25;
"""
RAW_PARTICIPANT = """
SELECT * FROM participants WHERE id = :pid;
SELECT * FROM therapy_sessions WHERE participant_id = :pid ORDER BY scheduled_at;
SELECT * FROM session_therapists st JOIN therapy_sessions s ON s.id = st.session_id
  WHERE s.participant_id = :pid;
SELECT * FROM dose_administrations d JOIN therapy_sessions s ON s.id = d.session_id
  WHERE s.participant_id = :pid AND s.kind = 'dosing';
SELECT * FROM vital_sign_readings r JOIN therapy_sessions s ON s.id = r.session_id
  LEFT JOIN vital_sign_alerts a ON a.reading_id = r.id
  WHERE s.participant_id = :pid AND s.kind = 'dosing' ORDER BY r.measured_at;
SELECT * FROM adverse_events WHERE participant_id = :pid;
SELECT * FROM side_effects WHERE participant_id = :pid;
SELECT * FROM suicidality_screens WHERE participant_id = :pid;
SELECT * FROM pregnancy_tests WHERE participant_id = :pid;
SELECT * FROM notes WHERE participant_id = :pid ORDER BY id;
SELECT * FROM checklist_answers WHERE participant_id = :pid;
SELECT * FROM review_assessments WHERE participant_id = :pid;
SELECT * FROM checklist_signatures WHERE participant_id = :pid;
SELECT * FROM consents WHERE participant_id = :pid;
SELECT * FROM transition_events t LEFT JOIN protocol_deviations d ON d.transition_event_id = t.id
  WHERE t.participant_id = :pid ORDER BY t.version_after;
SELECT u.* FROM users u WHERE (u.site_id = :site AND u.role = 'therapist') OR EXISTS (
  SELECT 1 FROM therapist_assignments t WHERE t.participant_id = :pid AND t.user_id = u.id
  AND t.ended_at IS NULL);
"""


def _raw(engine: sa.Engine, script: str, params: dict[str, Any]) -> Callable[[], None]:
    statements = [s for s in script.split(";") if s.strip()]

    def run() -> None:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(sa.text(statement), params).all()

    return run


def _a_completed_participant(engine: sa.Engine) -> tuple[int, int]:
    """The site and id of the first completed participant: every kind of record to show."""
    with engine.connect() as connection:
        site, pid = connection.execute(
            sa.text(
                "SELECT site_id, id FROM participants WHERE state = 'completed' ORDER BY id LIMIT 1"
            )
        ).one()
    return int(site), int(pid)


def pages(url: str, label: str, with_timing: bool) -> None:
    app = _app(url)
    engine = sa.create_engine(url)
    site, pid = _a_completed_participant(engine)
    with engine.connect() as connection:
        session_id = connection.scalar(
            sa.text(
                "SELECT min(id) FROM therapy_sessions WHERE participant_id = :p AND kind = 'dosing'"
            ),
            {"p": pid},
        )
    coordinator = _client(app, f"s{site:02d}-coordinator1")
    with engine.connect() as connection:
        token = connection.scalar(  # the session the client just opened
            sa.text("SELECT token_hash FROM login_sessions ORDER BY id DESC LIMIT 1")
        )
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    params = {
        "site": site,
        "pid": pid,
        "token": token,
        # The dashboard's week and the sessions left open (issue 17).
        "week_start": midnight,
        "week_end": midnight + timedelta(days=7),
        "open_before": datetime.now(UTC) - timedelta(hours=24),
    }
    cases = [
        ("dashboard", "/", RAW_DASHBOARD),
        ("participant list", "/participants/", RAW_LIST),
        ("participant page", f"/participants/{pid}", RAW_PARTICIPANT),
        ("session page", f"/sessions/{session_id}", None),
    ]
    for name, path, raw in cases:
        count = _statements(app, coordinator, path)
        report(
            f"statements, {name} ({label})", str(count), "", None, "same at N=100 and 10,000; <= 10"
        )
        if not with_timing:
            continue
        goal = "<= 3x" if name in ("dashboard", "participant list") else ""

        def page(path: str = path) -> None:
            coordinator.get(path).get_data()

        if raw is not None:  # what the page needs to read, written by hand
            page_t, raw_t = compared(page, _raw(engine, RAW_SIGNED_IN + raw, params))
            report(
                f"{name} vs raw SQL ({label}), interleaved",
                shown(page_t),
                shown(raw_t),
                page_t[0] / raw_t[0],
                goal,
            )
        # What the page sends, replayed raw: a fair baseline for every page (the session page
        # too), statement for statement.
        page_t, replay_t = compared(page, _replay(engine, _sent(app, coordinator, path)))
        report(
            f"{name} vs its own statements replayed raw ({label}), interleaved",
            shown(page_t),
            shown(replay_t),
            page_t[0] / replay_t[0],
            goal,
        )
    if with_timing:
        # The floor under every page: a signed-in page that reads only its login session.
        floor_s = timed(lambda: coordinator.get("/account/password").get_data())
        report(
            f"signed-in page reading only its login session ({label})",
            f"{floor_s * 1000:.1f} ms",
            "",
            None,
            "",
        )
    engine.dispose()
    from tracker.db import get_database

    get_database(app).engine.dispose()


# --- a participant's compliance page: the audit trail verified since the last verified head --


def compliance_page(url: str, label: str) -> None:
    """One participant's compliance page against their participant page, interleaved (issue
    19: within 3x). The page verifies the audit trail from the signed mark the last
    verification left; the first page after the mark is removed verifies it all, once."""
    from tracker.audit.services import CHECKPOINTS
    from tracker.db import get_database

    app = _app(url)
    engine = sa.create_engine(url)
    site, pid = _a_completed_participant(engine)
    with engine.connect() as connection:
        events = connection.scalar(sa.text("SELECT count(*) FROM audit_events"))
    coordinator = _client(app, f"s{site:02d}-coordinator1")
    store = app.extensions[CHECKPOINTS]
    compliance_path = f"/reports/compliance/participants/{pid}"
    store.forget_verified()
    started = time.perf_counter()
    response = coordinator.get(compliance_path)
    assert response.status_code == 200, response.status_code
    assert "does not verify" not in response.get_data(as_text=True)
    report(
        f"compliance page, first after the mark is removed: the whole trail ({label}, "
        f"{events:,} events)",
        f"{(time.perf_counter() - started) * 1000:.0f} ms",
        "",
        None,
        "",
    )

    def compliance() -> None:
        coordinator.get(compliance_path).get_data()

    def participant() -> None:
        coordinator.get(f"/participants/{pid}").get_data()

    page_t, base_t = compared(compliance, participant)
    report(
        f"compliance page vs the participant page ({label}), interleaved",
        shown(page_t),
        shown(base_t),
        page_t[0] / base_t[0],
        "<= 3x",
    )
    engine.dispose()
    get_database(app).engine.dispose()


# --- the outcomes report -----------------------------------------------------------------------

# What the outcomes report reads: the protocol versions, then every assessment's total of the
# participants under a protocol with outcome measures (the page adds the signed-in session).
RAW_OUTCOMES = """
SELECT id, source FROM protocol_versions ORDER BY id;
SELECT a.participant_id, a.timepoint, a.instrument, a.total FROM assessments a
  JOIN participants p ON p.id = a.participant_id WHERE p.protocol_version_id = :version;
"""


def outcomes_report(url: str, label: str, with_timing: bool) -> None:
    """The outcomes report page (study-wide, as the auditor reads it) against the raw SQL of
    the rows it summarises."""
    app = _app(url)
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        version = connection.scalar(
            sa.text("SELECT id FROM protocol_versions WHERE code = 'mdma-mdd'")
        )
        assessments = connection.scalar(sa.text("SELECT count(*) FROM assessments"))
        followed = connection.scalar(
            sa.text("SELECT count(*) FROM participants WHERE protocol_version_id = :v"),
            {"v": version},
        )
    auditor = _client(app, "auditor")
    with engine.connect() as connection:
        token = connection.scalar(
            sa.text("SELECT token_hash FROM login_sessions ORDER BY id DESC LIMIT 1")
        )
    path = "/reports/outcomes"
    count = _statements(app, auditor, path)
    report(
        f"statements, outcomes report ({label})", str(count), "", None, "same at N=100 and 10,000"
    )
    if with_timing:
        page_s = timed(lambda: auditor.get(path).get_data())
        raw_s = timed(
            _raw(engine, RAW_SIGNED_IN + RAW_OUTCOMES, {"token": token, "version": version})
        )
        report(
            f"outcomes report vs raw SQL ({label}; {followed:,} under the depression protocol, "
            f"{assessments:,} assessments)",
            f"{page_s * 1000:.1f} ms",
            f"{raw_s * 1000:.1f} ms",
            page_s / raw_s,
            "<= 3x",
        )
    engine.dispose()
    from tracker.db import get_database

    get_database(app).engine.dispose()


# --- exports ------------------------------------------------------------------------------


def _measured(command: list[str], timeout: float) -> tuple[float, float, str]:
    """Seconds and peak RSS (MB) of a child process; ``timeout`` bounds it."""
    database_url = next(
        a.split("=", 1)[1] for a in command if a.startswith("TRACKER_DATABASE_URL=")
    )
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    code = subprocess.run(sys.argv[2:], timeout=float(sys.argv[1]),"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode\n"
        "except subprocess.TimeoutExpired:\n"
        "    code = 'timeout'\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(time.perf_counter() - start, peak, code)\n"
    )
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", wrapper, str(timeout), *command],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TRACKER_INSTANCE_PATH": instance_for(database_url)},
    ).stdout.split()
    return float(out[0]), float(out[1]), out[2]


def compliance_exports(urls: dict[str, str], pdf_timeout: float) -> None:
    peaks: dict[tuple[str, str], float] = {}
    for database in ("bench1k", "bench10k"):
        for fmt in ("csv", "pdf"):
            env_url = urls[database]
            output = f"/tmp/tracker-bench-compliance.{fmt}"  # noqa: S108
            seconds, peak, code = _measured(
                [
                    "env",
                    f"TRACKER_DATABASE_URL={env_url}",
                    TRACKER,
                    "report",
                    "compliance",
                    "--format",
                    fmt,
                    "-o",
                    output,
                ],
                timeout=pdf_timeout if fmt == "pdf" else 600,
            )
            peaks[(database, fmt)] = peak
            status = "" if code == "0" else f" ({code} after {seconds:.0f} s)"
            report(
                f"compliance {fmt.upper()}, {SIZES[database]:,} participants",
                f"{seconds:.1f} s{status}",
                f"peak RSS {peak:.0f} MB",
                None,
                "linear time, flat memory",
            )
    for fmt in ("csv", "pdf"):
        growth = peaks[("bench10k", fmt)] - peaks[("bench1k", fmt)]
        report(
            f"compliance {fmt.upper()} peak RSS growth 1k -> 10k",
            f"{growth:.0f} MB",
            "",
            None,
            "< 50 MB",
        )


# Every table the data exchange reads, with the audit events it reads, for the raw baseline.
_EXCHANGE_TABLES = (
    "participants", "randomisation_entries", "consents", "checklist_answers",
    "checklist_signatures", "transition_events", "protocol_deviations", "adverse_events",
    "suicidality_screens", "assessments", "missed_timepoints", "therapy_sessions",
    "dose_administrations", "vital_sign_readings", "session_effects",
)  # fmt: skip


def _raw_exchange_read(url: str) -> float:
    """Seconds to read every row an export reads, raw: each table streamed whole, and the
    participants' and sessions' audit events, with nothing built from them."""
    engine = sa.create_engine(url)
    start = time.perf_counter()
    with engine.connect() as connection:
        for table in _EXCHANGE_TABLES:
            result = connection.execution_options(stream_results=True, yield_per=5000).execute(
                sa.text(f"SELECT * FROM {table}")  # noqa: S608 - our own table names
            )
            for _ in result:
                pass
        result = connection.execution_options(stream_results=True, yield_per=5000).execute(
            sa.text(
                "SELECT seq, hash, action, actor, role, occurred_at, reason, entity_type,"
                " entity_id, new_values FROM audit_events"
                " WHERE entity_type IN ('participant', 'session')"
            )
        )
        for _ in result:
            pass
    engine.dispose()
    return time.perf_counter() - start


def data_exchange(urls: dict[str, str]) -> None:
    """Each export of SPEC §13 through the command line at 1,000 and 10,000 participants:
    its time against reading the same rows raw, and its peak memory (flat is the goal)."""
    exports = {
        "ODM": ["odm", "-o", "/tmp/tracker-bench-odm.xml"],  # noqa: S108
        "SDTM XPORT": ["sdtm", "--format", "xpt", "-o", "/tmp/tracker-bench-sdtm-xpt"],  # noqa: S108
        "SDTM Dataset-JSON": ["sdtm", "--format", "json", "-o", "/tmp/tracker-bench-sdtm-json"],  # noqa: S108
        "FHIR": ["fhir", "-o", "/tmp/tracker-bench-fhir"],  # noqa: S108
    }
    # A command's own start (imports, app) is paid by every export: measured once.
    start_seconds, start_peak, _ = _measured(
        ["env", f"TRACKER_DATABASE_URL={urls['bench1k']}", TRACKER, "db", "current"], 120
    )
    report(
        "tracker command start (db current)",
        f"{start_seconds:.1f} s",
        f"peak RSS {start_peak:.0f} MB",
        None,
    )
    peaks: dict[tuple[str, str], float] = {}
    for database in ("bench1k", "bench10k"):
        raw = _raw_exchange_read(urls[database])
        report(
            f"raw read of the exported rows, {SIZES[database]:,} participants",
            f"{raw:.1f} s",
            "",
            None,
        )
        for name, arguments in exports.items():
            seconds, peak, code = _measured(
                ["env", f"TRACKER_DATABASE_URL={urls[database]}", TRACKER, "export", *arguments],
                timeout=3600,
            )
            peaks[(database, name)] = peak
            status = "" if code == "0" else f" ({code})"
            report(
                f"export {name}, {SIZES[database]:,} participants",
                f"{seconds:.1f} s{status}",
                f"raw read {raw:.1f} s; peak RSS {peak:.0f} MB",
                (seconds - start_seconds) / raw if raw else None,
                "linear time, flat memory",
            )
    for name in exports:
        growth = peaks[("bench10k", name)] - peaks[("bench1k", name)]
        report(f"export {name} peak RSS growth 1k -> 10k", f"{growth:.0f} MB", "", None, "< 50 MB")


def audit_export(url: str) -> None:
    from sqlalchemy.orm import Session

    from tracker.audit.export import AuditCsv
    from tracker.db import create_engine

    engine = create_engine(url)

    def export() -> int:
        size = 0
        with Session(engine) as db:
            for chunk in AuditCsv(db):
                size += len(chunk)
        return size

    def copy() -> int:
        size = 0
        raw = engine.raw_connection()
        try:
            with (
                raw.driver_connection.cursor() as cursor,
                cursor.copy(
                    "COPY (SELECT seq, occurred_at, actor, role, action, entity_type, entity_id, "
                    "old_values, new_values, reason, ip_address, prev_hash, hash FROM audit_events "
                    "ORDER BY seq) TO STDOUT WITH (FORMAT csv, HEADER)"
                ) as stream,
            ):
                for block in stream:
                    size += len(block)
        finally:
            raw.close()
        return size

    with engine.connect() as connection:
        events = connection.scalar(sa.text("SELECT count(*) FROM audit_events"))
    export_s = timed(export, budget=1, at_most=3)
    copy_s = timed(copy, budget=1, at_most=3)
    report(
        f"audit CSV export vs COPY ({events:,} events)",
        f"{export_s:.2f} s",
        f"{copy_s:.2f} s",
        export_s / copy_s,
        "<= 4x (a quarter of COPY's speed)",
    )
    engine.dispose()


def transitions(url: str) -> None:
    """place_on_hold through the service (facts, guards, version-checked UPDATE, transition
    event, audit event) against the bare version-checked UPDATE; both rolled back."""
    from sqlalchemy.orm import Session

    from tracker.audit.services import Actor
    from tracker.db import create_engine
    from tracker.participants.models import Participant
    from tracker.participants.transitions import apply_transition

    engine = create_engine(url)
    with engine.connect() as connection:
        ids = list(
            connection.scalars(
                sa.text("SELECT id FROM participants WHERE state = 'preparation' LIMIT 50")
            )
        )
    actor = Actor(username="bench", role="coordinator")
    position = {"i": 0}

    def audited() -> None:
        pid = ids[position["i"] % len(ids)]
        position["i"] += 1
        with Session(engine) as db:
            participant = db.get(Participant, pid)
            assert participant is not None
            apply_transition(
                db,
                actor,
                participant,
                "place_on_hold",
                expected_version=participant.version,
                reason="benchmark",
            )
            db.rollback()

    def bare() -> None:
        pid = ids[position["i"] % len(ids)]
        position["i"] += 1
        with Session(engine) as db:
            version = db.scalar(
                sa.text("SELECT version FROM participants WHERE id = :p"), {"p": pid}
            )
            result = db.execute(
                sa.text(
                    "UPDATE participants SET state = 'on_hold', held_from = state, "
                    "version = version + 1 WHERE id = :p AND version = :v"
                ),
                {"p": pid, "v": version},
            )
            assert result.rowcount == 1
            db.rollback()

    audited_s = timed(audited)
    bare_s = timed(bare)
    report(
        "audited transition vs bare version-checked UPDATE",
        f"{audited_s * 1000:.2f} ms",
        f"{bare_s * 1000:.2f} ms",
        audited_s / bare_s,
        "<= 2x",
    )
    engine.dispose()


# --- gunicorn -----------------------------------------------------------------------------


def _login_cookie(port: int, username: str) -> str:
    """Sign in through the login form (with its CSRF token); the session cookie to send."""
    import http.client
    import re
    from urllib.parse import urlencode

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/login")
    response = connection.getresponse()
    page = response.read().decode()
    cookie = response.getheader("Set-Cookie", "").split(";")[0]
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token, "no CSRF token on /login"
    form = urlencode(
        {"username": username, "password": BENCH_PASSWORD, "csrf_token": token.group(1)}
    )
    connection.request(
        "POST",
        "/login",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
    )
    response = connection.getresponse()
    response.read()
    assert response.status == 302, response.status
    return response.getheader("Set-Cookie", "").split(";")[0]


def throughput(url: str, seconds: float, path: str = "/participants/") -> None:
    """Requests per second of a signed-in page under a closed-loop Python load generator
    (8 keep-alive connections on 127.0.0.1, ``seconds`` long) at 1, 2 and 4 gunicorn workers.
    The generator shares the two cores with the server, so the figures are a floor."""
    import http.client
    import threading

    port = 8765
    environment = {
        **os.environ,
        "TRACKER_DATABASE_URL": url,
        "TRACKER_ENV": "development",
        "TRACKER_SECRET_KEY": "benchmark-secret-key-that-is-long-enough-0123456789",
        "TRACKER_INSTANCE_PATH": instance_for(url),
        "TRACKER_LOGIN_RATE_LIMIT": "1000 per minute",
    }
    for workers in (1, 2, 4):
        server = subprocess.Popen(  # noqa: S603
            [
                str(ROOT / ".venv" / "bin" / "gunicorn"),
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "wsgi:app",
            ],
            cwd=ROOT,
            env=environment,
        )
        try:
            for _ in range(100):
                try:
                    probe = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                    probe.request("GET", "/login")
                    probe.getresponse().read()
                    break
                except OSError:
                    time.sleep(0.2)
            cookie = _login_cookie(port, "s01-coordinator1")
            counts: list[int] = []
            errors: list[int] = []
            stop = time.perf_counter() + seconds

            def load(
                stop: float = stop,
                cookie: str = cookie,
                counts: list[int] = counts,
                errors: list[int] = errors,
            ) -> None:
                done = failed = 0
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                while time.perf_counter() < stop:
                    connection.request("GET", path, headers={"Cookie": cookie})
                    response = connection.getresponse()
                    response.read()
                    if response.status == 200:
                        done += 1
                    else:
                        failed += 1
                counts.append(done)
                errors.append(failed)

            threads = [threading.Thread(target=load) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            report(
                f"gunicorn, {workers} worker(s), GET {path} (N=10,000)",
                f"{sum(counts) / seconds:.0f} req/s",
                f"{sum(errors)} non-200",
                None,
                "",
            )
        finally:
            server.terminate()
            server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    # The PDF lays out some 0.2 s a participant: 10,000 take most of an hour.
    parser.add_argument("--pdf-timeout", type=float, default=3600)
    parser.add_argument("--load-seconds", type=float, default=10)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    host = make_url(args.postgres).host
    if host not in ("127.0.0.1", "localhost", "::1", None):
        raise SystemExit("benchmarks run against a server on loopback only")
    urls = {name: ensure_seeded(args.postgres, name, n) for name, n in SIZES.items()}
    wanted = set(
        args.only
        or [
            "pages",
            "compliance",
            "outcomes",
            "exports",
            "audit",
            "transitions",
            "gunicorn",
            "exchange",
        ]
    )
    print("| benchmark | value | baseline | ratio | goal |\n|---|---|---|---|---|", flush=True)
    if "pages" in wanted:
        pages(urls["bench100"], "N=100", with_timing=False)
        pages(urls["bench10k"], "N=10,000", with_timing=True)
    if "compliance" in wanted:
        compliance_page(urls["bench1k"], "N=1,000")
        compliance_page(urls["bench10k"], "N=10,000")
    if "outcomes" in wanted:
        outcomes_report(urls["bench100"], "N=100", with_timing=False)
        outcomes_report(urls["bench1k"], "N=1,000", with_timing=True)
        outcomes_report(urls["bench10k"], "N=10,000", with_timing=True)
    if "audit" in wanted:
        audit_export(urls["bench10k"])
    if "transitions" in wanted:
        transitions(urls["bench10k"])
    if "gunicorn" in wanted:
        throughput(urls["bench10k"], args.load_seconds)
    if "exchange" in wanted:
        data_exchange(urls)
    if "exports" in wanted:  # last: the longest by far
        compliance_exports(urls, args.pdf_timeout)
    out = ROOT / "artifacts" / "benchmarks.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(RESULTS, indent=2))


if __name__ == "__main__":
    main()
