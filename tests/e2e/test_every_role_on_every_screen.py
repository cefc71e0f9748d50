"""Each role's pages in Chromium at a desktop width (1366 px) and a phone's (390 px): every
page answers, none scrolls sideways, axe-core finds nothing serious or critical, and a
screenshot of each is kept under artifacts/e2e/."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser

from tests.e2e.conftest import ARTIFACTS, LiveServer
from tests.e2e.test_login_journey import sign_in
from tests.factories import keep_ledger, make_site, make_team, make_user
from tracker import clock
from tracker.db import get_database
from tracker.histories import protocol_history, run_histories
from tracker.participants.models import Participant
from tracker.safety.models import AdverseEvent
from tracker.sessions.models import TherapySession

SITE = "S07"
WIDTHS = (1366, 390)
SEVERE = ("serious", "critical")
# What is wider than the screen: an element outside any scrolling box, or a box whose
# content overflows it (a page-level overflow can come from either).
STICKING_OUT = """() => {
  const w = document.documentElement.clientWidth, out = [];
  const boxed = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(p).overflowX)) return true;
    }
    return false;
  };
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.right <= w + 1) continue;
    if (!boxed(el) || el.scrollWidth > w) {
      out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ':' + Math.round(r.right));
    }
  }
  return out.slice(0, 5);
}"""


def _study(live_server: LiveServer) -> dict[str, object]:
    """A site with a completed participant (a serious adverse event in cycle 1) and one in
    integration, made by the services on a timeline that ends in the past."""
    clock.start_simulation(datetime.now(UTC) - timedelta(days=120))
    try:
        with get_database(live_server.app).session_scope() as db:
            site = make_site(db, SITE, "Screens Site")
            team = make_team(
                db,
                site,
                usernames=("screens.coord", "screens.inv", "screens.ther1", "screens.ther2"),
            )
            make_user(db, "auditor", None, username="screens.audit")
            make_user(db, "admin", None, username="screens.admin")
            rng = random.Random(17)
            run_histories(
                [
                    protocol_history(db, team, rng, "completed", serious_event_in_cycle=1),
                    protocol_history(db, team, rng, "integration"),
                ]
            )
            participant = db.scalar(
                sa.select(Participant)
                .where(Participant.site_id == site.id)
                .order_by(Participant.id)
            )
            assert participant is not None
            session = db.scalar(
                sa.select(TherapySession.id)
                .where(
                    TherapySession.participant_id == participant.id,
                    TherapySession.kind == "dosing",
                )
                .order_by(TherapySession.id)
            )
            # The site's drug ledger, once its sessions are over (a dose before it needs none).
            make_user(db, "pharmacist", site, username="screens.pharm")
            receipt = keep_ledger(db, team)[1]
            event = db.scalar(
                sa.select(AdverseEvent.id).where(AdverseEvent.participant_id == participant.id)
            )
            return {
                "participant": participant.id,
                "session": session,
                "lot": receipt.lot_id,
                "event": event,
            }
    finally:
        clock.reset()


def _pages(role: str, ids: dict[str, object]) -> list[str]:
    participant = f"/participants/{ids['participant']}"
    clinical = ["/", "/participants/", participant, f"/sessions/{ids['session']}"]
    daily = ["/schedule", "/adverse-events/", f"/adverse-events/{ids['event']}"]
    ledger = [
        "/inventory/",
        f"/inventory/lots/{ids['lot']}",
        f"/inventory/lots/{ids['lot']}/log",
        "/inventory/reconciliation",
    ]
    return {
        "coordinator": [
            *clinical,
            *daily,
            f"{participant}/checklist",
            "/reports/compliance",
            *ledger,
        ],
        "therapist": [*clinical, *daily],
        "investigator": [
            *clinical,
            *daily,
            "/reports/compliance",
            "/reports/outcomes",
            "/exports/",
            *ledger,
        ],
        "auditor": [
            "/",
            "/participants/",
            participant,
            "/reports/compliance",
            "/audit/",
            "/exports/",
            *ledger,
        ],
        "admin": ["/", "/admin/users", "/admin/sites", "/admin/protocols"],
        "pharmacist": ["/", *ledger],
    }[role]


@pytest.fixture(scope="module")
def study(live_server: LiveServer) -> dict[str, object]:
    return _study(live_server)


@pytest.mark.parametrize(
    "role", ["coordinator", "therapist", "investigator", "auditor", "admin", "pharmacist"]
)
def test_each_page_fits_the_screen_and_passes_axe(
    role: str, browser: Browser, live_server: LiveServer, study: dict[str, object]
) -> None:
    username = {
        "coordinator": "screens.coord",
        "therapist": "screens.ther1",
        "investigator": "screens.inv",
        "auditor": "screens.audit",
        "admin": "screens.admin",
        "pharmacist": "screens.pharm",
    }[role]
    axe = Axe()
    problems: list[str] = []
    for width in WIDTHS:
        context = browser.new_context(
            base_url=live_server.base_url, viewport={"width": width, "height": 900}
        )
        context.set_default_timeout(10_000)
        page = context.new_page()
        try:
            page.goto("/login")
            sign_in(page, username)
            page.wait_for_url(re.compile(r"^(?!.*/login).*$"))
            for path in _pages(role, study):
                response = page.goto(path)
                assert response is not None and response.status == 200, (role, width, path)
                sideways = page.evaluate("document.documentElement.scrollWidth") - width
                if sideways > 0:
                    wide = page.evaluate(STICKING_OUT)
                    problems.append(f"{path} at {width} px scrolls {sideways} px sideways: {wide}")
                for violation in axe.run(page).response["violations"]:
                    if violation["impact"] in SEVERE:
                        targets = [n["target"] for n in violation["nodes"][:3]]
                        problems.append(f"{path} at {width} px: {violation['id']} {targets}")
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                name = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") or "dashboard"
                page.screenshot(
                    path=str(ARTIFACTS / f"screens-{role}-{width}-{name}.png"), full_page=True
                )
        finally:
            context.close()
    assert not problems, problems
