"""The outbox of e-mail notifications (issue 17): a message per recipient, written in the
transaction of the finding that causes it and sent later by a worker (`tracker notify send`),
so a finding is never lost to an SMTP server that is down, and never sent for a finding that
was rolled back."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tracker.db import Base, utcnow

KINDS = ("serious_adverse_event", "positive_suicidality_screen", "serious_report_overdue")
STATUSES = ("pending", "sent", "failed", "undeliverable")


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        sa.UniqueConstraint("key", "recipient_id"),
        sa.CheckConstraint(
            "kind IN ('serious_adverse_event', 'positive_suicidality_screen', "
            "'serious_report_overdue')",
            name="kind_known",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'undeliverable')", name="status_known"
        ),
        sa.CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        sa.Index("ix_notifications_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(40))
    # What the message is about, so that a finding is announced once per recipient.
    key: Mapped[str] = mapped_column(sa.String(120))
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id"))
    participant_id: Mapped[int | None] = mapped_column(sa.ForeignKey("participants.id"))
    recipient_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    recipient_email: Mapped[str | None] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(300))
    body: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
