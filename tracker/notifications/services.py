"""Safety notifications (issue 17): a finding queues one message per active investigator of
the participant's site, in the finding's own transaction; the worker sends what is due, one
message per transaction, retrying with a growing delay. Every message queued, sent, retried or
given up on is an audit event.

A message names the participant's study id, what happened and where to look; no free text a
user typed travels by e-mail."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, record_event
from tracker.auth.models import User
from tracker.config import SmtpSettings
from tracker.db import utcnow
from tracker.notifications.models import Notification
from tracker.protocol import Role

MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)
WORKER = Actor.system("notifier")


def recipients(db: Session, site_id: int) -> list[User]:
    """The site's active investigators."""
    return list(
        db.scalars(
            sa.select(User)
            .where(
                User.site_id == site_id,
                User.role == Role.INVESTIGATOR.value,
                User.is_active.is_(True),
            )
            .order_by(User.id)
        )
    )


def queue(
    db: Session,
    actor: Actor,
    *,
    site_id: int,
    kind: str,
    key: str,
    subject: str,
    body: str,
    participant_id: int | None = None,
) -> list[Notification]:
    """One message per investigator of the site, once per ``key``; an investigator without an
    e-mail address gets an undeliverable message, so the gap is on record and on the page."""
    already = set(db.scalars(sa.select(Notification.recipient_id).where(Notification.key == key)))
    made = []
    people = recipients(db, site_id)
    if not people and not already:
        # Nobody to tell is itself a finding: on the trail, where the auditor sees it.
        record_event(
            db,
            actor,
            "notification.no_recipient",
            "site",
            site_id,
            new={"kind": kind, "key": key, "subject": subject},
        )
    for user in people:
        if user.id in already:
            continue
        row = Notification(
            kind=kind,
            key=key,
            site_id=site_id,
            participant_id=participant_id,
            recipient_id=user.id,
            recipient_email=user.email,
            subject=subject,
            body=body,
            status="pending" if user.email else "undeliverable",
            last_error=None if user.email else "no e-mail address on file",
        )
        db.add(row)
        made.append(row)
    db.flush()
    for row in made:
        record_event(
            db,
            actor,
            "notification.queue",
            "notification",
            row.id,
            new={"kind": kind, "key": key, "recipient": row.recipient_id, "status": row.status},
        )
    return made


@dataclass(frozen=True)
class Sent:
    sent: int
    retried: int
    failed: int


Mailer = Callable[[EmailMessage], None]


def smtp_mailer(settings: SmtpSettings) -> Mailer:
    """Send through the configured SMTP server (STARTTLS and login when set)."""

    def send(message: EmailMessage) -> None:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.username:
                smtp.login(settings.username, settings.password)
            smtp.send_message(message)

    return send


def _message(row: Notification, settings: SmtpSettings) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = row.recipient_email or ""
    message["Subject"] = row.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(idstring=f"tracker-notification-{row.id}")
    link = (
        f"\n\nOpen: {settings.base_url}/participants/{row.participant_id}"
        if settings.base_url and row.participant_id
        else ""
    )
    message.set_content(row.body + link + "\n\n-- \nSent by tracker; do not reply.\n")
    return message


def _retry_delay(attempts: int) -> timedelta:
    delay: timedelta = FIRST_RETRY * (2 ** (attempts - 1))
    return min(delay, LONGEST_RETRY)


def due_ids(db: Session, now: datetime, limit: int) -> list[int]:
    return list(
        db.scalars(
            sa.select(Notification.id)
            .where(Notification.status == "pending", Notification.next_attempt_at <= now)
            .order_by(Notification.id)
            .limit(limit)
        )
    )


LEASE = timedelta(minutes=5)


def claim(db: Session, notification_id: int, settings: SmtpSettings) -> EmailMessage | None:
    """Take one due message for sending: its attempt is counted and it is leased for a few
    minutes (SKIP LOCKED on PostgreSQL: another worker takes the next one). The caller
    commits, sends outside any transaction (an SMTP server's wait never holds a database
    lock), then records the outcome with ``finish``. A worker that dies in between leaves
    the lease to run out and the message to be sent again: at least once, never lost."""
    now = utcnow()
    row = db.scalar(
        sa.select(Notification)
        .where(
            Notification.id == notification_id,
            Notification.status == "pending",
            Notification.next_attempt_at <= now,
        )
        .with_for_update(skip_locked=True)
    )
    if row is None:
        return None
    row.attempts += 1
    row.next_attempt_at = now + LEASE
    db.flush()
    return _message(row, settings)


def finish(db: Session, notification_id: int, error: Exception | None) -> str:
    """Record what became of a claimed message: sent, to be retried later, or failed."""
    row = db.get(Notification, notification_id, with_for_update=True)
    assert row is not None
    if error is None:
        row.status = "sent"
        row.sent_at = utcnow()
        row.last_error = None
        db.flush()
        record_event(
            db,
            WORKER,
            "notification.send",
            "notification",
            row.id,
            new={"kind": row.kind, "recipient": row.recipient_id, "attempts": row.attempts},
        )
        return "sent"
    row.last_error = f"{type(error).__name__}: {error}"[:1000]
    if row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
    else:
        row.next_attempt_at = utcnow() + _retry_delay(row.attempts)
    db.flush()
    record_event(
        db,
        WORKER,
        "notification.fail" if row.status == "failed" else "notification.retry",
        "notification",
        row.id,
        new={"attempts": row.attempts, "error": row.last_error, "next": row.next_attempt_at},
    )
    return row.status if row.status == "failed" else "retry"


def send_due(
    unit: Callable[[], AbstractContextManager[Session]],
    mailer: Mailer,
    settings: SmtpSettings,
    limit: int = 100,
) -> Sent:
    """Send every message that is due, each in transactions of its own (``unit`` opens
    one and commits it)."""
    with unit() as db:
        ids = due_ids(db, utcnow(), limit)
    counts = {"sent": 0, "retry": 0, "failed": 0}
    for notification_id in ids:
        with unit() as db:
            message = claim(db, notification_id, settings)
        if message is None:
            continue
        error: Exception | None = None
        try:
            mailer(message)
        except (smtplib.SMTPException, OSError) as failure:
            error = failure
        with unit() as db:
            counts[finish(db, notification_id, error)] += 1
    return Sent(counts["sent"], counts["retry"], counts["failed"])
