from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tracker.db import Base, utcnow


class Site(Base):
    """A study site; site-bound users and participants belong to one."""

    __tablename__ = "sites"
    __table_args__ = (
        sa.CheckConstraint(
            "code = upper(code) AND length(code) BETWEEN 2 AND 16", name="code_format"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(16), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The last participant number handed out here (S01-0001, S01-0002, …); bumped atomically.
    last_participant_number: Mapped[int] = mapped_column(default=0, server_default="0")
    # The IANA time zone the site works in: its pages show and take times in it (stored UTC).
    time_zone: Mapped[str] = mapped_column(sa.String(64), default="UTC", server_default="UTC")

    def __repr__(self) -> str:
        return f"<Site {self.code}>"
