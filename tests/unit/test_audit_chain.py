"""The chain arithmetic on plain objects, no database."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tracker.audit.chain import compute_hash, verify_chain
from tracker.audit.models import GENESIS_HASH


@dataclass
class Event:
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
    prev_hash: str = ""
    hash: str = ""


def _chain(n: int) -> list[Event]:
    events, prev = [], GENESIS_HASH
    for i in range(1, n + 1):
        e = Event(
            i,
            datetime(2026, 1, 1, 12, i, tzinfo=UTC),
            1,
            "u",
            "coordinator",
            "x.y",
            "thing",
            str(i),
            None,
            {"v": i},
            None,
            None,
            prev,
        )
        e.hash = compute_hash(prev, e)
        events.append(e)
        prev = e.hash
    return events


def test_an_intact_chain_verifies() -> None:
    events = _chain(4)
    result = verify_chain(events)
    assert result.ok and result.events == 4 and result.head == events[-1].hash


def test_an_altered_value_is_found() -> None:
    events = _chain(4)
    events[2].new_values = {"v": 999}
    result = verify_chain(events)
    assert not result.ok and result.first_bad_seq == 3 and "altered" in (result.problem or "")


def test_a_removed_event_is_found() -> None:
    events = _chain(4)
    del events[1]
    result = verify_chain(events)
    assert not result.ok and result.first_bad_seq == 3 and "gap" in (result.problem or "")


def test_a_rehashed_forgery_breaks_the_next_link() -> None:
    events = _chain(4)
    forged = replace(events[1], reason="forged")
    forged.hash = compute_hash(forged.prev_hash, forged)
    events[1] = forged
    result = verify_chain(events)
    assert not result.ok and result.first_bad_seq == 3 and "previous hash" in (result.problem or "")


def test_the_hash_covers_every_field() -> None:
    base = _chain(1)[0]
    for field, value in [
        ("actor", "v"),
        ("role", "auditor"),
        ("action", "a.b"),
        ("entity_id", "9"),
        ("old_values", {"x": 1}),
        ("ip_address", "10.0.0.1"),
        ("occurred_at", datetime(2026, 1, 2, tzinfo=UTC)),
    ]:
        changed = replace(base, **{field: value})
        assert compute_hash(GENESIS_HASH, changed) != base.hash, field


def test_the_content_before_the_sequence_number_and_the_number_make_the_whole() -> None:
    """What the database's append hashes (the content up to the number, the number, ``}``)
    is the canonical content the verification hashes, for any values."""
    from tracker.audit.chain import CONTENT_FIELDS, canonical_content, content_before_seq, jsonable

    awkward = replace(
        _chain(1)[0],
        seq=123456789012,
        new_values={"seq": 5, "text": 'ünïcødé "quoted" }', "nested": {"z": [1, 2.5]}},
        old_values=None,
        reason='a reason, with ,"seq":7}',
    )
    for event in [*_chain(3), awkward]:
        # The canonical content written out whole: every member, keys sorted, compact.
        whole = {name: getattr(event, name) for name in CONTENT_FIELDS}
        whole["occurred_at"] = jsonable(event.occurred_at)
        expected = json.dumps(whole, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert content_before_seq(event) + f"{event.seq}}}" == canonical_content(event)
        assert canonical_content(event) == expected
