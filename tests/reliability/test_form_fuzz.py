"""Hypothesis on the forms: every POST form of the main pages, filled with arbitrary values,
gets a page (never a 5xx), and a refusal (4xx) writes nothing."""

from __future__ import annotations

import random
import re
from html.parser import HTMLParser

import sqlalchemy as sa
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from tests.conftest import login
from tracker.audit.models import AuditEvent
from tracker.histories import protocol_history, run_histories
from tracker.participants.models import Participant
from tracker.sessions.models import TherapySession


class _Forms(HTMLParser):
    """The POST forms of a page: action and field names (hidden values kept)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []
        self._current: dict[str, object] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form" and (values.get("method") or "").lower() == "post":
            self._current = {"action": values.get("action") or "", "fields": {}, "hidden": {}}
            self.forms.append(self._current)
        elif (
            self._current is not None
            and tag in ("input", "textarea", "select")
            and values.get("name")
        ):
            name = str(values["name"])
            if values.get("type") == "hidden":
                self._current["hidden"][name] = values.get("value") or ""  # type: ignore[index]
            else:
                self._current["fields"][name] = values.get("type") or tag  # type: ignore[index]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _forms(client: FlaskClient, path: str) -> list[dict[str, object]]:
    parser = _Forms()
    parser.feed(client.get(path).get_data(as_text=True))
    return [f for f in parser.forms if "logout" not in str(f["action"])]


junk = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "99999999999999999999",
            "1e309",
            "NaN",
            "yes",
            "no",
            "true",
            "2026-13-45",
            "2026-11-21T25:61",
            "<script>alert(1)</script>",
            "=1+1",
            "\x00",
            "é" * 3000,
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)


def test_every_form_survives_arbitrary_input(
    client: FlaskClient, db_session: Session, team
) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(41)
    run_histories(
        [
            protocol_history(db_session, team, rng, stage)
            for stage in ("awaiting_assessment", "preparation", "dosing_in_progress")
        ]
    )
    db_session.commit()
    assert login(client, team.investigator.username).status_code == 302
    participants = list(db_session.scalars(sa.select(Participant).order_by(Participant.id)))
    dosing = db_session.scalar(sa.select(TherapySession).where(TherapySession.kind == "dosing"))
    pages = (
        ["/participants/new"]
        + [f"/participants/{p.id}" for p in participants]
        + [
            f"/participants/{participants[0].id}/checklist",
            f"/participants/{participants[0].id}/review",
            f"/participants/{participants[0].id}/consent",
            f"/sessions/{dosing.id}",
        ]
    )
    forms = [(page, form) for page in pages for form in _forms(client, page)]
    assert len(forms) >= 15, [f["action"] for _, f in forms]
    statuses: dict[int, int] = {}

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(choice=st.integers(min_value=0, max_value=len(forms) - 1), data=st.data())
    def post_something(choice: int, data: st.DataObject) -> None:
        page, form = forms[choice]
        body = dict(form["hidden"])  # type: ignore[arg-type]
        for name in form["fields"]:  # type: ignore[attr-defined]
            if data.draw(st.booleans()):
                body[name] = data.draw(junk)
        before = db_session.scalar(sa.select(sa.func.max(AuditEvent.seq)))
        response = client.post(str(form["action"]) or page, data=body)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (
            form["action"],
            body,
            response.get_data(as_text=True)[:500],
        )
        if response.status_code >= 400:
            db_session.expire_all()
            assert db_session.scalar(sa.select(sa.func.max(AuditEvent.seq))) == before, form[
                "action"
            ]
            assert re.search(r"<html", response.get_data(as_text=True))

    post_something()
    # Not vacuous: the random input reached both the refusals and some successes.
    assert any(400 <= s < 500 for s in statuses) and any(s < 400 for s in statuses), statuses


def test_nul_in_a_page_filter_is_a_400(client: FlaskClient, signed_in) -> None:  # type: ignore[no-untyped-def]
    signed_in("coordinator")
    for path in (
        "/participants/?q=%00",
        "/participants/?state=%00",
        "/reports/compliance?site=%00",
    ):
        response = client.get(path)
        assert response.status_code == 400, path
