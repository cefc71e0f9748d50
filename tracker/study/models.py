from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tracker.db import Base, utcnow
from tracker.protocol import ProtocolDefinition, load_protocol


class ProtocolVersion(Base):
    """A loaded protocol file. Participants keep the version they were enrolled under; a file
    changed under the same version is refused (its content hash differs)."""

    __tablename__ = "protocol_versions"
    __table_args__ = (sa.UniqueConstraint("code", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40))
    version: Mapped[str] = mapped_column(sa.String(20))
    title: Mapped[str] = mapped_column(sa.String(300))
    # Deferred: every participant query joins its protocol version, and the rules are built
    # from ``source``; the parsed JSON is read only where it is shown (GET /api/v1/protocol).
    definition: Mapped[dict[str, Any]] = mapped_column(sa.JSON, deferred=True)
    source: Mapped[str] = mapped_column(sa.Text)
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The version new enrolments use is the one activated last (SPEC §10); before any
    # activation, the shipped default file.
    activated_at: Mapped[datetime | None]


@lru_cache(maxsize=16)
def _parse(source: str) -> ProtocolDefinition:
    # A definition is immutable and keyed by its text, so caching it per process is safe.
    return load_protocol(source)


def definition_of(version: ProtocolVersion) -> ProtocolDefinition:
    """The rules of a stored protocol version (parsed once per process)."""
    return _parse(version.source)
