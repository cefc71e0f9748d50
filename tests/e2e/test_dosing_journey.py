"""A dosing session recorded in a real browser, as it happens: the baseline reading, the initial
dose, a reading that breaches the systolic threshold and its alert, the supplemental dose
refused because of it, the acknowledgement, more readings, the session ended and completed; and
the vital-signs chart with its readings, thresholds and alert marker."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.test_login_journey import sign_in
from tests.factories import make_site, make_team
from tracker import clock
from tracker.db import get_database
from tracker.histories import protocol_history, run_histories, start_cycle
from tracker.participants.models import Participant

Screenshot = Callable[[Page, str], Path]
SESSION_URL = re.compile(r"/sessions/(\d+)")


def _participant_in_dosing(live_server: LiveServer) -> tuple[int, str, list[str]]:
    """Screening and preparation made by the services on a simulated timeline that ends in
    the past; the participant is in dosing, cycle 1, with no dosing session yet."""
    clock.start_simulation(datetime.now(UTC) - timedelta(days=60))
    with get_database(live_server.app).session_scope() as session:
        site = make_site(session, "S01")
        team = make_team(session, site)
        run_histories([protocol_history(session, team, random.Random(11), "preparation")])
        participant = session.scalar(sa.select(Participant).order_by(Participant.id.desc()))
        assert participant is not None
        clock.travel(timedelta(days=4))
        start_cycle(session, team, participant)
        return participant.id, participant.study_id, [t.username for t in team.therapists]


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def _wait(page: Page, minutes: int) -> None:
    """Time passes at the bedside; the page is reloaded every 20 minutes."""
    while minutes > 0:
        step = min(minutes, 20)
        clock.travel(timedelta(minutes=step))
        page.reload()
        minutes -= step


def _reading(page: Page, systolic: int, diastolic: int = 84, heart_rate: int = 88) -> None:
    form = page.locator("form[action$='/vitals']")
    form.get_by_label("Systolic (mmHg)").fill(str(systolic))
    form.get_by_label("Diastolic (mmHg)").fill(str(diastolic))
    form.get_by_label("Heart rate (bpm)").fill(str(heart_rate))
    form.get_by_label("Temperature (°C)").fill("36.9")
    # The POST and its redirect must finish before the next step reloads the page.
    with page.expect_navigation():
        form.get_by_role("button", name="Record reading").click()


def _dose(page: Page, kind: str, mg: int) -> None:
    form = page.locator("#dose-form")
    form.get_by_label("Dose", exact=True).select_option(kind)
    form.get_by_label("Amount (mg)").fill(str(mg))
    with page.expect_navigation():
        form.get_by_role("button", name="Record dose").click()


def test_a_therapist_records_a_dosing_session(
    page: Page, live_server: LiveServer, screenshot: Screenshot
) -> None:
    participant_id, study_id, therapists = _participant_in_dosing(live_server)

    page.goto("/login")
    sign_in(page, therapists[0])
    expect(page.get_by_role("heading", name="My participants")).to_be_visible()
    expect(page.get_by_role("region", name="My participants", exact=True)).to_contain_text(study_id)
    page.get_by_role("link", name=study_id).first.click()

    # Schedule the dosing session from the participant page, then start it.
    schedule = page.locator("form[action$='/sessions']")
    expect(schedule.get_by_label("Kind")).to_have_value("dosing")
    start = clock.now().replace(second=0, microsecond=0)
    schedule.get_by_label("Scheduled for (UTC)").fill(_at(start))
    schedule.get_by_label("Therapists").select_option(therapists)
    screenshot(page, "01-participant-page")
    schedule.get_by_role("button", name="Schedule").click()
    expect(page).to_have_url(SESSION_URL)
    session_url = page.url
    page.get_by_label("Started at (UTC)").fill(_at(start))
    page.get_by_role("button", name="Save session").click()
    expect(page.get_by_role("status")).to_contain_text("Session saved")

    # Baseline reading, then the initial dose, each at the time it happens (the default).
    _wait(page, 5)
    _reading(page, 126, 80, 76)
    expect(page.get_by_role("status")).to_contain_text("recorded")
    _wait(page, 5)
    _dose(page, "initial", 120)
    expect(page.get_by_role("status")).to_contain_text("Initial dose of 120 mg")
    for systolic in (138, 146, 152, 158):
        _wait(page, 20)
        _reading(page, systolic, 88, 96)

    # A reading breaches the systolic threshold: the alert shows.
    _wait(page, 15)
    _reading(page, 165, 96, 104)
    alerts = page.get_by_role("region", name=re.compile("^Vital-sign alerts"))
    expect(alerts).to_contain_text("1 open")
    expect(alerts).to_contain_text("Systolic 165")
    expect(page.locator(".readings-table tr.breach")).to_have_count(1)
    screenshot(page, "02-alert-raised")

    # The supplemental dose is refused while the latest reading breaches, with the reason.
    _wait(page, 5)
    _dose(page, "supplemental", 60)
    refusals = page.locator(".dose-refusals li")
    expect(refusals.first).to_be_visible()
    expect(page.locator("#dose-form")).to_contain_text("threshold")
    # The reason is where the user looks: in the first screen, with the focus on it, and the
    # page's top says so and links to it.
    reasons = page.locator("#dose-refused")
    expect(reasons).to_be_in_viewport()
    expect(reasons).to_be_focused()
    expect(page.locator(".refusal-summary")).to_contain_text("Not saved.")
    expect(page.locator(".refusal-summary a")).to_have_attribute("href", "#dose-refused")
    screenshot(page, "03-supplemental-refused")

    # The alert is acknowledged with a note.
    page.goto(session_url)
    alerts.get_by_label(re.compile("Acknowledgement note")).fill(
        "Participant calm; rechecked manually after 10 minutes at 150/92. Investigator informed."
    )
    alerts.get_by_role("button", name="Acknowledge alert").click()
    expect(page.get_by_role("status")).to_contain_text("acknowledged")
    expect(alerts).to_contain_text("No open alerts")
    screenshot(page, "04-alert-acknowledged")

    # More readings, then the session ends and is completed.
    for systolic in (148, 140, 134):
        _wait(page, 20)
        _reading(page, systolic, 86, 90)
    effects = page.locator("form[action$='/effects']")
    effects.get_by_label("Euphoria").check()
    effects.get_by_label("Emotional openness").check()
    effects.get_by_role("button", name="Save effects").click()
    expect(page.get_by_role("status")).to_contain_text("Effects checklist saved")
    _wait(page, 5)
    page.get_by_label("Ended at (UTC)").fill(_at(clock.now()))
    page.get_by_label("Status").select_option("completed")
    page.get_by_label("Overnight stay").select_option("yes")
    page.get_by_role("button", name="Save session").click()
    expect(page.get_by_role("status")).to_contain_text("Session saved (completed)")
    expect(page.get_by_role("heading", level=1)).to_contain_text("completed")

    # The chart: four series, four thresholds, the alert circled; the readings beside it.
    chart = page.locator("svg.vitals-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("polyline.series")).to_have_count(4)
    expect(chart.locator("line.threshold")).to_have_count(4)
    expect(chart.locator("circle.alert-marker")).to_have_count(1)
    expect(chart.locator("line.dose")).to_have_count(1)
    expect(page.locator(".readings-table tbody tr")).to_have_count(9)
    completed = screenshot(page, "05-session-completed")
    vitals = page.get_by_role("region", name="Vital signs", exact=True)
    vitals.screenshot(path=str(completed).replace("05-session-completed", "06-vitals-chart"))

    page.goto(f"/participants/{participant_id}")
    expect(page.get_by_role("region", name="Sessions", exact=True)).to_contain_text("completed")
