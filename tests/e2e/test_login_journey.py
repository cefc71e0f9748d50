"""The first journeys in a real browser: sign in, see the dashboard, sign out; create a user."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer
from tests.factories import PASSWORD

LOGIN_URL = re.compile(r"/login(\?.*)?$")
Screenshot = Callable[[Page, str], Path]
DASHBOARD_URL = re.compile(r"^http://127\.0\.0\.1:\d+/$")


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_coordinator_signs_in_and_out(
    page: Page, live_server: LiveServer, screenshot: Screenshot
) -> None:
    user = live_server.create_user("coordinator", site="S01")

    # Not signed in: the dashboard sends the browser to the login page.
    page.goto("/")
    expect(page).to_have_url(LOGIN_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)

    # A wrong password: the generic refusal, still signed out, no login session anywhere.
    sign_in(page, user.username, "not-the-password-at-all")
    expect(page.get_by_role("alert")).to_have_text("Invalid username or password.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    assert live_server.open_sign_ins(user.username) == 0
    screenshot(page, "wrong-password")
    page.goto("/")
    expect(page).to_have_url(LOGIN_URL)

    # The right password: the dashboard, with who is signed in shown in the header.
    sign_in(page, user.username)
    expect(page).to_have_url(DASHBOARD_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    who = page.locator("header .who")
    expect(who).to_contain_text(f"{user.printed_name} · coordinator · S01")
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("Dashboard")
    assert live_server.open_sign_ins(user.username) == 1
    screenshot(page, "dashboard")

    # Signing out ends the session and says so on the login page.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(LOGIN_URL)
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert live_server.open_sign_ins(user.username) == 0

    # And the dashboard is closed again.
    page.goto("/")
    expect(page).to_have_url(LOGIN_URL)
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


def test_admin_creates_a_therapist(
    page: Page, live_server: LiveServer, screenshot: Screenshot
) -> None:
    live_server.create_site("S01")
    admin = live_server.create_user("admin")
    new_username = f"therapist-{secrets.token_hex(3)}"
    new_password = "a-long-enough-passphrase-42"

    page.goto("/login")
    sign_in(page, admin.username)
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    expect(page.locator("header .who")).to_contain_text(f"{admin.printed_name} · admin")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    expect(page).to_have_url(re.compile(r"/admin/users$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Users")
    page.get_by_role("link", name="New user").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New user")

    page.get_by_label("Username", exact=True).fill(new_username)
    page.get_by_label("Printed name", exact=True).fill("Thea Pist")
    page.get_by_label("Role", exact=True).select_option("therapist")
    page.get_by_label("Site", exact=True).select_option("S01")
    page.get_by_label("New password", exact=True).fill(new_password)
    page.get_by_label("Repeat the new password", exact=True).fill(new_password)
    screenshot(page, "new-user-form")
    page.get_by_role("button", name="Create user").click()

    expect(page).to_have_url(re.compile(r"/admin/users/\d+$"))
    expect(page.get_by_role("status")).to_have_text(
        f"User {new_username} created with a temporary password: they choose their own at their"
        " first sign-in."
    )
    expect(page.get_by_role("heading", level=1)).to_have_text(new_username)
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("Thea Pist")
    expect(facts).to_contain_text("therapist")
    expect(facts).to_contain_text("S01")
    expect(facts).to_contain_text("active")
    screenshot(page, "user-created")

    # The new user appears in the list.
    page.get_by_role("link", name="← Users").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=new_username))
    expect(row).to_contain_text("Thea Pist")
    expect(row).to_contain_text("therapist")
    expect(row).to_contain_text("S01")

    # The new therapist signs in with the admin's password: nothing opens until they choose
    # their own (SPEC §6: nobody signs with a password someone else chose).
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, new_username, new_password)
    expect(page).to_have_url(re.compile(r"/account/password$"))
    expect(page.get_by_role("status").first).to_contain_text("set by an administrator")
    page.goto("/participants/")
    expect(page).to_have_url(re.compile(r"/account/password$"))
    screenshot(page, "temporary-password")
    own = "the-therapists-own-passphrase"
    page.get_by_label("Current password", exact=True).fill(new_password)
    page.get_by_label("New password", exact=True).fill(own)
    page.get_by_label("Repeat the new password", exact=True).fill(own)
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(LOGIN_URL)
    sign_in(page, new_username, own)
    expect(page).to_have_url(DASHBOARD_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
