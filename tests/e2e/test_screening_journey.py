"""Screening in a real browser: enrol, fill the checklist, the investigator's assessment and
signature, consent, and eligibility confirmed; and the screen failure of an excluded participant."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.test_login_journey import sign_in
from tracker.protocol import load_protocol
from tracker.study.services import CURRENT_PROTOCOL_FILE

Screenshot = Callable[[Page, str], Path]
PARTICIPANT_URL = re.compile(r"/participants/(\d+)$")
PROTOCOL = load_protocol(CURRENT_PROTOCOL_FILE.read_text(encoding="utf-8"))


def _sign_in_at(page: Page, username: str) -> None:
    page.goto("/login")
    sign_in(page, username)
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")


def _sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")


def _enrol(page: Page, therapist: str, screenshot: Screenshot | None = None) -> str:
    page.get_by_role("link", name="Enrol participant").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Enrol participant")
    page.get_by_label("Sex", exact=True).select_option("female")
    page.get_by_label("Year of birth", exact=True).fill("1986")
    page.get_by_label("Therapists", exact=True).select_option(therapist)
    if screenshot:
        screenshot(page, "01-enrol-form")
    page.get_by_role("button", name="Enrol").click()
    expect(page).to_have_url(PARTICIPANT_URL)
    expect(page.get_by_role("status")).to_contain_text("enrolled; screening starts")
    return page.url


def _fill_checklist(page: Page, yes: dict[str, str]) -> None:
    """Every item answered: yes (with the note given) for the codes in ``yes``, no otherwise."""
    page.get_by_role("link", name="Fill in checklist").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Contraindication checklist")
    for item in PROTOCOL.checklist:
        group = page.get_by_role("group", name=item.question, exact=True)
        group.get_by_label("Yes" if item.code in yes else "No", exact=True).check()
        if item.code in yes:
            page.get_by_label(f"Note on {item.question}", exact=True).fill(yes[item.code])


def test_screening_to_preparation(
    page: Page, live_server: LiveServer, screenshot: Screenshot
) -> None:
    live_server.create_site("S01")
    coordinator = live_server.create_user("coordinator", site="S01")
    investigator = live_server.create_user("investigator", site="S01")
    therapist = live_server.create_user("therapist", site="S01")

    # The coordinator enrols a participant and fills the checklist: bipolar II answered yes.
    _sign_in_at(page, coordinator.username)
    detail_url = _enrol(page, therapist.username, screenshot)
    study_id = page.get_by_role("heading", level=1).inner_text().split()[0]
    expect(page.get_by_role("region", name="Therapists", exact=True)).to_contain_text(
        therapist.username
    )
    _fill_checklist(page, {"bipolar_ii": "Diagnosed 2015; stable, no episode in 5 years."})
    screenshot(page, "02-checklist-filled")
    page.get_by_role("button", name="Save checklist").click()
    expect(page).to_have_url(detail_url)
    expect(page.get_by_role("status")).to_contain_text("Checklist of")
    outcome = page.locator(".outcome").first
    expect(outcome).to_contain_text("incomplete")
    expect(outcome).to_contain_text(
        "Review item needs an investigator's assessment: Bipolar II disorder"
    )
    confirm = page.locator("#transition-confirm_eligibility")
    expect(confirm).to_contain_text("Not allowed")
    expect(confirm.get_by_role("button")).to_have_count(0)
    screenshot(page, "03-participant-incomplete")
    _sign_out(page)

    # The investigator assesses the review item and signs.
    _sign_in_at(page, investigator.username)
    page.goto(detail_url)
    page.get_by_role("link", name="Review and sign").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Review and sign")
    assessment = page.get_by_role("form", name="Assessment of Bipolar II disorder")
    assessment.get_by_label("Acceptable", exact=True).check()
    assessment.get_by_label("Rationale for Bipolar II disorder").fill(
        "Euthymic for 5 years on lamotrigine; psychiatrist agrees. Acceptable with monitoring."
    )
    screenshot(page, "04-review-assessment")
    assessment.get_by_role("button", name="Record assessment").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Assessment of “Bipolar II disorder” recorded"
    )
    meaning = page.get_by_label("Meaning of the signature", exact=True)
    expect(meaning).to_have_value(
        "I confirm that I have reviewed this contraindication checklist and its outcome"
    )
    page.get_by_label("Your password", exact=True).fill("correct-horse-battery")
    screenshot(page, "05-signature-form")
    page.get_by_role("button", name="Sign checklist").click()
    expect(page).to_have_url(detail_url)
    signature = page.get_by_label("Electronic signature")
    expect(signature).to_contain_text(investigator.printed_name)
    expect(signature).to_contain_text("UTC")
    expect(page.locator(".outcome").first).to_contain_text("eligible")
    _sign_out(page)

    # The coordinator records consent and confirms eligibility.
    _sign_in_at(page, coordinator.username)
    expect(page.get_by_role("row").filter(has_text=study_id)).to_contain_text(
        "Consent not recorded"
    )
    screenshot(page, "06-dashboard-needs-consent")
    page.goto(detail_url)
    page.get_by_role("link", name="Record consent").click()
    page.get_by_label("Consent document version", exact=True).fill("ICF v2.1 2026-01-15")
    page.get_by_label("Date signed", exact=True).fill(datetime.now(UTC).date().isoformat())
    page.get_by_role("button", name="Record consent").click()
    expect(page.get_by_role("status")).to_contain_text("Consent of")
    confirm = page.locator("#transition-confirm_eligibility")
    screenshot(page, "07-ready-to-confirm")
    confirm.get_by_role("button", name="Confirm eligibility").click()
    expect(page.get_by_role("status")).to_contain_text("moved from screening to preparation")
    expect(page.get_by_role("heading", level=1)).to_contain_text("preparation")
    expect(page.locator("table.timeline")).to_contain_text("Confirm eligibility")
    screenshot(page, "08-preparation")


def test_excluded_participant_fails_screening(
    page: Page, live_server: LiveServer, screenshot: Screenshot
) -> None:
    live_server.create_site("S01")
    coordinator = live_server.create_user("coordinator", site="S01")
    therapist = live_server.create_user("therapist", site="S01")

    _sign_in_at(page, coordinator.username)
    detail_url = _enrol(page, therapist.username)
    _fill_checklist(page, {"bipolar_i": "Hospitalised for mania in 2019."})
    page.get_by_role("button", name="Save checklist").click()
    expect(page).to_have_url(detail_url)

    # Why eligibility cannot be confirmed, shown before anyone tries.
    confirm = page.locator("#transition-confirm_eligibility")
    expect(confirm).to_contain_text("Exclusion: Bipolar I disorder, current or past — answered yes")
    expect(confirm.get_by_role("button")).to_have_count(0)
    expect(page.locator(".outcome").first).to_contain_text("ineligible")
    screenshot(page, "01-ineligible")

    failing = page.locator("#transition-fail_screening")
    failing.get_by_label("Reason for fail screening").fill(
        "Exclusion: bipolar I disorder (mania 2019)."
    )
    failing.get_by_role("button", name="Fail screening").click()
    expect(page.get_by_role("status")).to_contain_text("moved from screening to screen failed")
    expect(page.get_by_role("heading", level=1)).to_contain_text("screen failed")
    expect(page.locator("table.timeline")).to_contain_text("mania 2019")
    screenshot(page, "02-screen-failed")
