"""The protocol versions in use: the file on disk, loaded into a ProtocolVersion row."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker import ROOT
from tracker.audit.services import Actor, record_event
from tracker.errors import Conflict
from tracker.protocol import ProtocolDefinition, load_protocol
from tracker.study.models import ProtocolVersion

CURRENT_PROTOCOL_FILE = ROOT / "fixtures" / "protocols" / "mdma-at-v1.toml"


@lru_cache(maxsize=16)
def _parse(source: str) -> ProtocolDefinition:
    # A definition is immutable and keyed by its text, so caching it per process is safe.
    return load_protocol(source)


def definition_of(version: ProtocolVersion) -> ProtocolDefinition:
    return _parse(version.source)


def ensure_protocol_version(
    session: Session, source: str, actor: Actor | None = None
) -> ProtocolVersion:
    """The row for this protocol text, created on first use. A different text under an existing
    code and version is refused: a changed protocol needs a new version."""
    definition = _parse(source)
    row = session.scalar(
        sa.select(ProtocolVersion).where(
            ProtocolVersion.code == definition.code, ProtocolVersion.version == definition.version
        )
    )
    if row is not None:
        if row.content_hash != definition.content_hash():
            raise Conflict(
                f"The protocol file for {definition.code} version {definition.version} differs "
                "from the one participants were enrolled under; give the changed protocol a new "
                "version."
            )
        return row
    row = ProtocolVersion(
        code=definition.code,
        version=definition.version,
        title=definition.title,
        definition=definition.to_dict(),
        source=source,
        content_hash=definition.content_hash(),
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        actor or Actor.system(),
        "protocol_version.load",
        "protocol_version",
        row.id,
        new={"code": row.code, "version": row.version, "content_hash": row.content_hash},
    )
    return row


def current_protocol_version(
    session: Session, path: Path = CURRENT_PROTOCOL_FILE
) -> ProtocolVersion:
    """The protocol new participants are enrolled under."""
    return ensure_protocol_version(session, path.read_text(encoding="utf-8"))
