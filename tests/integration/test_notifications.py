"""Safety notifications by e-mail (issue 17), through a real SMTP server on loopback
(aiosmtpd): a serious adverse event and a positive suicidality screen queue a message per
investigator of the site in their own transaction; the worker sends them, retries when the
server is down and gives up after the last attempt; an overdue serious report is announced
once; every step is on the audit trail; no typed text travels by e-mail."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email import message_from_bytes
from email.message import Message

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlalchemy.orm import Session

from tests.factories import make_user
from tracker import clock
from tracker.audit.models import AuditEvent
from tracker.audit.services import Actor
from tracker.auth.services import set_email
from tracker.config import SmtpSettings
from tracker.histories import protocol_history, run_histories
from tracker.notifications import queries as notification_queries
from tracker.notifications import services
from tracker.notifications.models import Notification
from tracker.participants.models import Participant
from tracker.safety import services as safety

TERM = "Chest pain, private words typed by a clinician"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, SmtpSettings]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield (
            inbox,
            SmtpSettings(
                host="127.0.0.1",
                port=controller.port,
                sender="tracker@site.test",
                base_url="https://tracker.site.test",
            ),
        )
    finally:
        controller.stop()


def _unit(db: Session):  # type: ignore[no-untyped-def]
    @contextmanager
    def unit() -> Iterator[Session]:
        yield db
        db.flush()

    return unit


@pytest.fixture
def participant(db_session: Session, team) -> Participant:  # type: ignore[no-untyped-def]
    set_email(db_session, Actor.system(), team.investigator, "Investigator@Site.test")
    make_user(db_session, "investigator", "S01")  # no address: undeliverable, on record
    run_histories([protocol_history(db_session, team, random.Random(3), "integration")])
    return db_session.scalar(sa.select(Participant))


def test_a_serious_event_reaches_the_sites_investigators(
    db_session, team, participant, smtp
) -> None:  # type: ignore[no-untyped-def]
    inbox, settings = smtp
    event = safety.record_adverse_event(
        db_session,
        team.as_investigator,
        participant,
        term=TERM,
        onset_at=clock.now() - timedelta(hours=1),
        grade=3,
        serious=True,
        serious_criteria=["hospitalisation"],
    )
    rows = list(db_session.scalars(sa.select(Notification).order_by(Notification.id)))
    assert [(r.kind, r.status) for r in rows] == [
        ("serious_adverse_event", "pending"),
        ("serious_adverse_event", "undeliverable"),
    ]
    sent = services.send_due(_unit(db_session), services.smtp_mailer(settings), settings)
    assert (sent.sent, sent.retried, sent.failed) == (1, 0, 0)
    (message,) = inbox.messages
    assert message["To"] == "investigator@site.test"
    assert message["Subject"] == f"[tracker] Serious adverse event: {participant.study_id}"
    body = message.get_payload()
    assert f"#{event.id}" in body and "automatic safety hold" in body
    assert f"https://tracker.site.test/participants/{participant.id}" in body
    assert TERM not in body and "Chest" not in body
    actions = list(
        db_session.scalars(
            sa.select(AuditEvent.action)
            .where(AuditEvent.entity_type == "notification")
            .order_by(AuditEvent.seq)
        )
    )
    assert actions == ["notification.queue", "notification.queue", "notification.send"]
    # Sent once: nothing is due any more.
    assert services.send_due(_unit(db_session), services.smtp_mailer(settings), settings).sent == 0


def test_a_down_server_is_retried_then_given_up_on(db_session, team, participant) -> None:  # type: ignore[no-untyped-def]
    safety.record_suicidality_screen(
        db_session,
        team.as_therapist(),
        participant,
        ideation=True,
        intent=True,
        plan=False,
        behaviour=False,
    )
    nowhere = SmtpSettings(host="127.0.0.1", port=_free_port(), timeout_seconds=2)
    mailer = services.smtp_mailer(nowhere)
    first = services.send_due(_unit(db_session), mailer, nowhere)
    assert (first.sent, first.retried) == (0, 1)
    row = db_session.scalar(sa.select(Notification).where(Notification.status == "pending"))
    assert row.kind == "positive_suicidality_screen" and row.attempts == 1
    assert "ConnectionRefusedError" in (row.last_error or "")
    assert services.send_due(_unit(db_session), mailer, nowhere).retried == 0  # not due yet
    for _ in range(services.MAX_ATTEMPTS - 1):
        clock.travel(timedelta(hours=2))
        services.send_due(_unit(db_session), mailer, nowhere)
    db_session.refresh(row)
    assert row.status == "failed" and row.attempts == services.MAX_ATTEMPTS
    assert row.id in {
        p.id for p in notification_queries.open_problems(db_session, participant.site_id)
    }
    actions = [
        a
        for (a,) in db_session.execute(
            sa.select(AuditEvent.action).where(
                AuditEvent.entity_type == "notification", AuditEvent.entity_id == str(row.id)
            )
        )
    ]
    assert actions.count("notification.retry") == services.MAX_ATTEMPTS - 1
    assert actions[-1] == "notification.fail"


def test_an_overdue_serious_report_is_announced_once(db_session, team, participant, smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, settings = smtp
    safety.record_adverse_event(
        db_session,
        team.as_investigator,
        participant,
        term=TERM,
        onset_at=clock.now() - timedelta(hours=1),
        grade=3,
        serious=True,
        serious_criteria=["hospitalisation"],
    )
    assert safety.queue_overdue_report_notices(db_session, services.WORKER) == 0  # not yet due
    clock.travel(timedelta(days=2))
    assert safety.queue_overdue_report_notices(db_session, services.WORKER) == 2
    assert safety.queue_overdue_report_notices(db_session, services.WORKER) == 0
    services.send_due(_unit(db_session), services.smtp_mailer(settings), settings)
    subjects = sorted(m["Subject"] for m in inbox.messages)
    assert subjects == [
        f"[tracker] Serious adverse event report overdue: {participant.study_id}",
        f"[tracker] Serious adverse event: {participant.study_id}",
    ]


def test_a_rolled_back_finding_sends_nothing(db_session, team, participant) -> None:  # type: ignore[no-untyped-def]
    db_session.commit()
    nested = db_session.begin_nested()
    safety.record_adverse_event(
        db_session,
        team.as_investigator,
        participant,
        term=TERM,
        onset_at=clock.now() - timedelta(hours=1),
        grade=3,
        serious=True,
        serious_criteria=["hospitalisation"],
    )
    nested.rollback()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 0


def test_the_worker_from_the_command_line(
    app, db_session, team, participant, smtp, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    inbox, settings = smtp
    safety.record_suicidality_screen(
        db_session,
        team.as_therapist(),
        participant,
        ideation=True,
        intent=True,
        plan=False,
        behaviour=False,
    )
    db_session.commit()
    runner = app.test_cli_runner()
    unset = runner.invoke(args=["notify", "send"])
    assert unset.exit_code == 1 and "TRACKER_SMTP_HOST is not set" in unset.output
    monkeypatch.setenv("TRACKER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TRACKER_SMTP_PORT", str(settings.port))
    done = runner.invoke(args=["notify", "send"])
    assert done.exit_code == 0, done.output
    assert "1 sent, 0 to retry, 0 failed" in done.output
    assert [m["Subject"] for m in inbox.messages] == [
        f"[tracker] Positive suicidality screen: {participant.study_id}"
    ]


def test_the_admin_sees_what_did_not_arrive(
    client, db_session, team, participant, signed_in
) -> None:  # type: ignore[no-untyped-def]
    safety.record_suicidality_screen(
        db_session,
        team.as_therapist(),
        participant,
        ideation=True,
        intent=True,
        plan=False,
        behaviour=False,
    )
    db_session.commit()
    signed_in("admin")
    page = client.get("/").get_data(as_text=True)
    section = page.split("did not reach an investigator")[1]
    assert "undeliverable" in section and "no e-mail address on file" in section
    assert f"Positive suicidality screen: {participant.study_id}" in section
