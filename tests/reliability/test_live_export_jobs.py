"""A background export end to end, as production runs it: gunicorn started by the test and
real worker processes (`tracker jobs work --once`) beside it, sharing only the database and
the exports folder. The browser asks over HTTP, two workers take the two jobs (one each), the
link downloads a PDF that a reader opens, and no transaction is left open."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from tests.factories import PASSWORD
from tests.reliability.seed import SmallStudy, open_database, seed_small_study
from tests.reliability.servers import CookieBrowser, Server, gunicorn, server_environment
from tests.reliability.test_live_exports import GENEROUS_RATE_LIMIT, wait_until_no_transaction
from tests.support.databases import BACKENDS, scratch_database
from tracker import ROOT
from tracker.audit.models import AuditEvent
from tracker.jobs.models import ExportJob

WORKER_TIMEOUT = 120


def start_worker(url: str, tmp: Path, exports: Path, name: str) -> subprocess.Popen[str]:
    """`tracker jobs work --once` in a process of its own (this checkout's code)."""
    environment = server_environment(url, tmp / "worker-instance", TRACKER_EXPORTS_DIR=str(exports))
    environment["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tracker.cli import main; main()",
            "jobs",
            "work",
            "--once",
            "--name",
            name,
        ],
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass
class Served:
    url: str
    study: SmallStudy
    server: Server
    browser: CookieBrowser  # signed in as the study's auditor
    exports: Path


@contextmanager
def served_study(backend: str, tmp_path: Path) -> Iterator[Served]:
    """A small study on a scratch database behind gunicorn, its auditor signed in."""
    exports = tmp_path / "exports"
    with scratch_database(backend, tmp_path) as url:
        study = seed_small_study(url)
        extra = {**GENEROUS_RATE_LIMIT, "TRACKER_EXPORTS_DIR": str(exports)}
        with gunicorn(url, tmp_path, workers=2, extra_env=extra) as server:
            browser = CookieBrowser(server.url)
            assert browser.login(study.usernames["auditor"], PASSWORD).status_code == 302
            yield Served(url, study, server, browser, exports)
            assert wait_until_no_transaction(url) == []
            assert "Traceback" not in server.log_text()


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_pdf_asked_for_in_the_browser_is_made_by_a_worker_and_downloaded(
    backend: str, tmp_path: Path
) -> None:
    with served_study(backend, tmp_path) as served:
        url, browser, exports = served.url, served.browser, served.exports
        for state in ("", "screening"):
            asked = browser.request(
                "POST",
                "/exports/jobs/compliance-pdf",
                data={"csrf_token": browser.csrf("/reports/compliance"), "state": state},
            )
            assert asked.status_code == 302, asked.text[:500]
            assert asked.headers["Location"].endswith("/exports/jobs/")
        listing = browser.request("GET", "/exports/jobs/").text
        assert listing.count(">waiting<") == 2

        workers = [start_worker(url, tmp_path, exports, f"w{i}") for i in (1, 2)]
        outputs = []
        for process in workers:
            out, err = process.communicate(timeout=WORKER_TIMEOUT)
            assert process.returncode == 0, err[-3000:]
            outputs.append(out)
        done = sorted(int(m) for o in outputs for m in re.findall(r"job (\d+): done", o))
        assert len(done) == 2 and len(set(done)) == 2, outputs  # one job each

        listing = browser.request("GET", "/exports/jobs/").text
        links = re.findall(r'href="(/exports/jobs/\d+/file)"', listing)
        assert len(links) == 2, listing[-3000:]
        for link in links:
            response = browser.request("GET", link)
            assert response.status_code == 200
            assert response.headers["Content-Type"] == "application/pdf"
            reader = PdfReader(io.BytesIO(response.content))
            text = " ".join(page.extract_text() for page in reader.pages)
            assert "Protocol compliance" in text or "compliance" in text.lower()

        database = open_database(url)
        try:
            with database.session_scope() as session:
                jobs = session.scalars(sa.select(ExportJob).order_by(ExportJob.id)).all()
                assert [(j.state, j.attempts, j.downloads) for j in jobs] == [("done", 1, 1)] * 2
                assert {j.worker for j in jobs} == {"w1", "w2"}
        finally:
            database.engine.dispose()
        assert sorted(p.suffix for p in exports.iterdir()) == [".pdf", ".pdf"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_data_exchange_export_prepared_in_the_background_downloads_whole(
    backend: str, tmp_path: Path
) -> None:
    """Past what a download carries, the ODM is a job: a real worker makes it, from a read
    session of its own that has ended before the export goes on record."""
    import xml.etree.ElementTree as ET

    with served_study(backend, tmp_path) as served:
        url, browser, exports = served.url, served.browser, served.exports
        asked = browser.request(
            "POST",
            "/exports/jobs/exchange",
            data={"csrf_token": browser.csrf("/exports/"), "kind": "odm"},
        )
        assert asked.status_code == 302, asked.text[:500]
        process = start_worker(url, tmp_path, exports, "w1")
        out, err = process.communicate(timeout=WORKER_TIMEOUT)
        assert process.returncode == 0 and "Traceback" not in err, err[-3000:]
        assert re.search(r"job \d+: done", out), out
        listing = browser.request("GET", "/exports/jobs/").text
        (link,) = re.findall(r'href="(/exports/jobs/\d+/file)"', listing)
        response = browser.request("GET", link)
        assert response.status_code == 200
        root = ET.fromstring(response.content)  # noqa: S314 (the tracker's own file)
        assert root.tag == "{http://www.cdisc.org/ns/odm/v1.3}ODM"
        database = open_database(url)
        try:
            with database.session_scope() as session:
                job = session.scalars(sa.select(ExportJob)).one()
                assert (job.kind, job.state, job.downloads) == ("odm", "done", 1)
                export = session.scalars(
                    sa.select(AuditEvent).where(AuditEvent.action == "data.export")
                ).one()
                assert export.actor == served.study.usernames["auditor"]
        finally:
            database.engine.dispose()
