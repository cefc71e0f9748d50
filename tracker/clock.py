"""The one source of "now".

Production never changes it. Two things move it: tests of multi-week protocols, which step
forward through the weeks, and the demo, which builds its histories on a simulated timeline
that starts in the past and ends before the real now, so every timestamp stays in order and
none lies in the future.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def now() -> datetime:
    return datetime.now(UTC) + _offset


def advance_to(moment: datetime) -> None:
    """Move the clock forward to ``moment`` (never back: the audit trail is in time order)."""
    global _offset
    current = now()
    if moment < current:
        raise ValueError(f"the clock only moves forward: {moment:%Y-%m-%d %H:%M} is past")
    _offset += moment - current


def catch_up(moment: datetime) -> None:
    """Move the clock forward to ``moment`` unless it is already there.

    One reading of the clock decides and moves: checking ``now()`` and then calling
    ``advance_to`` lets real time pass between the two, and a moment a microsecond ahead at
    the check is in the past at the move.
    """
    global _offset
    current = now()
    if moment > current:
        _offset += moment - current


def travel(delta: timedelta) -> None:
    advance_to(now() + delta)


def start_simulation(start: datetime) -> None:
    """Begin a simulated timeline at ``start`` (in the past); ``reset`` ends it."""
    global _offset
    _offset = start - datetime.now(UTC)


def reset() -> None:
    global _offset
    _offset = timedelta(0)
