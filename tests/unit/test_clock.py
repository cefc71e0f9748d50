"""The simulated clock moves forward only, and catching up is one reading of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracker import clock


class _TickingDatetime(datetime):
    """Real time that passes one millisecond at every reading, as a busy machine's does."""

    start = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    readings = 0

    @classmethod
    def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
        cls.readings += 1
        return cls.start + timedelta(milliseconds=cls.readings)


def test_catch_up_to_a_moment_just_ahead_while_time_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "datetime", _TickingDatetime)
    clock.reset()
    ahead = clock.now() + timedelta(microseconds=500)  # ahead now, past at the next reading

    clock.catch_up(ahead)

    assert clock.now() >= ahead
    # Whereas a moment read from the clock and then moved to is past by the move.
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance_to(clock.now() + timedelta(microseconds=500))


def test_catch_up_never_moves_back() -> None:
    clock.reset()
    before = clock.now()
    clock.catch_up(before - timedelta(days=3))
    assert clock.now() >= before
    clock.catch_up(before + timedelta(days=3))
    assert clock.now() >= before + timedelta(days=3)
    clock.reset()
