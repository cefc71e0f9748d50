"""The protocol versions in use: the file on disk, loaded into a ProtocolVersion row."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, record_event
from tracker.db import utcnow, write_unit
from tracker.errors import Conflict, PermissionDenied
from tracker.paths import FIXTURES
from tracker.protocol import ProtocolDefinition
from tracker.study.models import ProtocolVersion, _parse
from tracker.study.models import definition_of as definition_of

CURRENT_PROTOCOL_FILE = FIXTURES / "protocols" / "mdma-at-v1.toml"


def _stored_version(db: Session, definition: ProtocolDefinition) -> ProtocolVersion | None:
    row = db.scalar(
        sa.select(ProtocolVersion).where(
            ProtocolVersion.code == definition.code, ProtocolVersion.version == definition.version
        )
    )
    if row is not None and row.content_hash != definition.content_hash():
        raise Conflict(
            f"The protocol file for {definition.code} version {definition.version} differs "
            "from the one participants were enrolled under; give the changed protocol a new "
            "version."
        )
    return row


def ensure_protocol_version(
    db: Session, source: str, actor: Actor | None = None
) -> ProtocolVersion:
    """The row for this protocol text, created on first use. A different text under an existing
    code and version is refused: a changed protocol needs a new version."""
    definition = _parse(source)
    row = _stored_version(db, definition)
    if row is not None:
        return row
    row = ProtocolVersion(
        code=definition.code,
        version=definition.version,
        title=definition.title,
        definition=definition.to_dict(),
        source=source,
        content_hash=definition.content_hash(),
    )
    db.add(row)
    db.flush()
    record_event(
        db,
        actor or Actor.system(),
        "protocol_version.load",
        "protocol_version",
        row.id,
        new={"code": row.code, "version": row.version, "content_hash": row.content_hash},
    )
    return row


def activate_protocol(db: Session, actor: Actor, source: str) -> ProtocolVersion:
    """Make this protocol text the version new enrolments use (SPEC §10, admin only). Every
    participant keeps the version they were enrolled under."""
    if actor.role not in ("admin", "system"):
        raise PermissionDenied("Only an admin chooses the protocol version new enrolments use.")
    row = ensure_protocol_version(db, source, actor)
    previous = active_protocol_version(db)
    row.activated_at = utcnow()
    db.flush()
    record_event(
        db,
        actor,
        "protocol_version.activate",
        "protocol_version",
        row.id,
        old={"code": previous.code, "version": previous.version} if previous else None,
        new={"code": row.code, "version": row.version, "content_hash": row.content_hash},
    )
    return row


def active_protocol_version(db: Session) -> ProtocolVersion | None:
    """The version activated last, or None before any activation."""
    return db.scalar(
        sa.select(ProtocolVersion)
        .where(ProtocolVersion.activated_at.is_not(None))
        .order_by(ProtocolVersion.activated_at.desc(), ProtocolVersion.id.desc())
        .limit(1)
    )


def protocol_versions(db: Session) -> list[ProtocolVersion]:
    return list(db.scalars(sa.select(ProtocolVersion).order_by(ProtocolVersion.id)))


def current_protocol_version(db: Session, path: Path = CURRENT_PROTOCOL_FILE) -> ProtocolVersion:
    """The protocol new participants are enrolled under: the version an admin activated last,
    else the shipped default file. The default's row is made on first use, in ``write_unit``,
    so that a page that only reads may be the first to ask."""
    active = active_protocol_version(db)
    if active is not None:
        return active
    source = path.read_text(encoding="utf-8")
    row = _stored_version(db, _parse(source))
    if row is None:
        with write_unit(db) as writes:
            row = ensure_protocol_version(writes, source)
        if writes is not db:
            row = db.merge(row, load=False)
    return row
