"""The pharmacist's ledger in a real browser (SPEC §12): the site's DEA registration, a safe,
a lot and its receipt; a loss beyond the balance refused where the form is, with the figures;
a destruction signed by two witnesses with their passwords; the accountability log and its
PDF, read back by a PDF reader."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect
from pypdf import PdfReader

from tests.e2e.conftest import LiveServer
from tests.e2e.test_login_journey import sign_in
from tests.factories import PASSWORD

Screenshot = Callable[[Page, str], Path]
SITE = "S09"  # a site of its own: once registered, its doses need dispensings


def _submit(page: Page, form_selector: str, button: str) -> None:
    with page.expect_navigation():
        page.locator(form_selector).get_by_role("button", name=button).click()


def test_a_pharmacist_keeps_the_ledger(
    page: Page, live_server: LiveServer, screenshot: Screenshot
) -> None:
    live_server.create_site(SITE, "Ledger Site")
    pharmacist = live_server.create_user("pharmacist", site=SITE)
    coordinator = live_server.create_user("coordinator", site=SITE)
    investigator = live_server.create_user("investigator", site=SITE)

    page.goto("/login")
    sign_in(page, pharmacist.username)
    page.get_by_role("link", name="Drug ledger").click()
    expect(page.get_by_role("heading", name=f"Drug ledger — {SITE}")).to_be_visible()
    expect(page.get_by_text("has no DEA registration on file")).to_be_visible()

    page.locator("summary", has_text="Record the registration").click()
    registration = page.locator("form[action$='/inventory/registration']")
    registration.get_by_label("DEA registration number").fill("RL1234563")
    registration.get_by_label("Registrant").fill("Ledger Site research pharmacy")
    registration.get_by_label("Expires on").fill("2031-03-31")
    _submit(page, "form[action$='/inventory/registration']", "Record the registration")
    expect(page.get_by_role("status")).to_contain_text("RL1234563")

    page.locator("summary", has_text="Add a storage location").click()
    page.locator("form[action$='/inventory/storage']").get_by_label("Name").fill("Safe B")
    _submit(page, "form[action$='/inventory/storage']", "Add")

    lot = page.locator("form[action$='/inventory/lots']")
    lot.get_by_label("Product", exact=True).fill("Midomafetamine HCl 20 mg capsules")
    lot.get_by_label("Lot number").fill("E2E-0001")
    lot.get_by_label("Strength per unit (mg)").fill("20")
    lot.get_by_label("Expires on").fill("2030-12-31")
    lot.get_by_label("Storage location").select_option("Safe B")
    _submit(page, "form[action$='/inventory/lots']", "Add the lot")
    expect(
        page.get_by_role("heading", name="Midomafetamine HCl 20 mg capsules — lot E2E-0001")
    ).to_be_visible()

    page.locator("#entry-receipt summary").click()
    receipt = page.locator("#entry-receipt form")
    receipt.get_by_label("Units").fill("40")
    receipt.get_by_label("DEA Form 222 number").fill("221004242")
    receipt.get_by_label("Witness (username)").fill(coordinator.username)
    _submit(page, "#entry-receipt form", "Record the receipt")
    expect(page.get_by_role("status")).to_contain_text("Receipt of 40 units")

    # A loss beyond the balance: refused at its own form, in view, with the figures.
    page.locator("#entry-loss summary").click()
    loss = page.locator("#entry-loss form")
    loss.get_by_label("Units").fill("41")
    loss.get_by_label("What was lost and how it was found").fill("A bottle broke.")
    _submit(page, "#entry-loss form", "Record the loss")
    refusal = page.locator("#entry-loss .alert-error")
    expect(refusal).to_contain_text("the lot's balance is 40 units; it would fall to -1")
    expect(refusal).to_be_in_viewport()
    expect(loss.get_by_label("What was lost and how it was found")).to_have_value("A bottle broke.")
    screenshot(page, "01-loss-refused")

    page.goto(page.url.split("/entries/")[0])
    page.locator("#entry-destruction summary").click()
    destruction = page.locator("#entry-destruction form")
    destruction.get_by_label("Units").fill("2")
    destruction.get_by_label("DEA Form 41 reference").fill("F41-E2E-1")
    destruction.get_by_label("First witness (username)").fill(investigator.username)
    destruction.get_by_label("First witness's password").fill(PASSWORD)
    destruction.get_by_label("Second witness (username)").fill(coordinator.username)
    destruction.get_by_label("Second witness's password").fill(PASSWORD)
    _submit(page, "#entry-destruction form", "Record the destruction")
    expect(page.get_by_role("status")).to_contain_text("Destruction of 2 units")
    ledger = page.locator("#ledger")
    expect(ledger).to_contain_text("Ledger (2 entries)")
    expect(ledger).to_contain_text(f"Witness: {investigator.printed_name}")
    expect(ledger).to_contain_text("38")
    screenshot(page, "02-lot-ledger")

    page.get_by_role("link", name="Accountability log").click()
    expect(
        page.get_by_role("heading", name="Investigational product accountability log")
    ).to_be_visible()
    screenshot(page, "03-accountability-log")
    pdf = page.request.get(page.url + "?format=pdf")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(pdf.body())).pages[0].extract_text()
    assert "E2E-0001" in text and "221004242" in text and "F41-E2E-1" in text
    assert investigator.printed_name in text
