"""Reading the outbox: the messages that did not reach their investigator."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.notifications.models import Notification


def open_problems(db: Session, site_id: int | None = None, limit: int = 50) -> list[Notification]:
    """Messages that did not reach their investigator: failed, or undeliverable."""
    query = sa.select(Notification).where(Notification.status.in_(("failed", "undeliverable")))
    if site_id is not None:
        query = query.where(Notification.site_id == site_id)
    return list(db.scalars(query.order_by(Notification.id.desc()).limit(limit)))
