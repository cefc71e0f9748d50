"""The hash chain: canonical content of an event, its hash, and verification."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from tracker.audit.models import GENESIS_HASH

CONTENT_FIELDS = (
    "seq",
    "occurred_at",
    "actor_id",
    "actor",
    "role",
    "action",
    "entity_type",
    "entity_id",
    "old_values",
    "new_values",
    "reason",
    "ip_address",
)


class ChainedEvent(Protocol):
    seq: int
    occurred_at: datetime
    actor_id: int | None
    actor: str
    role: str | None
    action: str
    entity_type: str
    entity_id: str | None
    old_values: dict[str, Any] | None
    new_values: dict[str, Any] | None
    reason: str | None
    ip_address: str | None
    prev_hash: str
    hash: str


def jsonable(value: Any) -> Any:
    """Turn a value into plain JSON types, the same way every time it is hashed."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in an audit value")
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    raise TypeError(f"cannot record {type(value).__name__} in the audit trail")


# The sequence number sorts last among the members: the canonical content is the rest, then
# ``"seq":N}`` (what lets the database append an event whose number it alone knows).
assert max(CONTENT_FIELDS) == "seq"


def content_before_seq(event: ChainedEvent) -> str:
    """The canonical content up to its sequence number: that, the number and ``}`` are the
    whole (``canonical_content``)."""
    content = {name: getattr(event, name) for name in CONTENT_FIELDS if name != "seq"}
    content["occurred_at"] = jsonable(event.occurred_at)
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text[:-1] + ',"seq":'


def canonical_content(event: ChainedEvent) -> str:
    return f"{content_before_seq(event)}{json.dumps(event.seq)}}}"


def compute_hash(prev_hash: str, event: ChainedEvent) -> str:
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_content(event).encode("utf-8"))
    return digest.hexdigest()


@dataclass(frozen=True)
class VerificationResult:
    ok: bool
    events: int
    head: str
    first_bad_seq: int | None = None
    problem: str | None = None
    # Signed checkpoints the chain was held against (see tracker.audit.checkpoints).
    checkpoints: int = 0
    # Events up to here were verified before (the signed mark) and not read again.
    verified_from: int = 0

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "ok": self.ok,
            "events": self.events,
            "head": self.head,
            "checkpoints": self.checkpoints,
        }
        if not self.ok:
            result["first_bad_seq"] = self.first_bad_seq
            result["problem"] = self.problem
        return result


def verify_chain(
    events: Iterable[ChainedEvent], after_seq: int = 0, after_hash: str = GENESIS_HASH
) -> VerificationResult:
    """Re-compute the chain in sequence order; stop at the first event that does not fit.
    ``events`` follow event ``after_seq`` whose hash is ``after_hash`` (the genesis: the
    whole chain)."""
    expected_prev = after_hash
    count = after_seq
    for event in events:
        expected_seq = count + 1
        if event.seq != expected_seq:
            return VerificationResult(
                False,
                count,
                expected_prev,
                event.seq,
                f"event {event.seq}: sequence gap, expected {expected_seq}",
            )
        if event.prev_hash != expected_prev:
            return VerificationResult(
                False,
                count,
                expected_prev,
                event.seq,
                f"event {event.seq}: previous hash does not match event {event.seq - 1}",
            )
        recomputed = compute_hash(event.prev_hash, event)
        if recomputed != event.hash:
            return VerificationResult(
                False,
                count,
                expected_prev,
                event.seq,
                f"event {event.seq}: content does not match its hash (altered)",
            )
        expected_prev = event.hash
        count += 1
    return VerificationResult(True, count, expected_prev)
