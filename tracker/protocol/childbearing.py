"""Childbearing potential and the pregnancy test before dosing (SPEC §4).

Childbearing potential is recorded for every participant who is not male. Until it is
recorded as no, the participant counts as of childbearing potential: a negative pregnancy
test within the protocol's window is due before each dosing. A participant whose sex is
unknown is treated the same way: nothing rules a pregnancy out.
"""

from __future__ import annotations

# The sexes for which childbearing potential is recorded (every one but male).
RECORDED_FOR = frozenset({"female", "intersex", "unknown"})


def childbearing_potential_applies(sex: str) -> bool:
    return sex in RECORDED_FOR


def pregnancy_test_required(sex: str, childbearing_potential: bool | None) -> bool:
    """Whether a negative pregnancy test is due before each dosing: yes unless the participant
    is male or recorded as not of childbearing potential."""
    return childbearing_potential_applies(sex) and childbearing_potential is not False


def childbearing_problems(sex: str, childbearing_potential: bool | None) -> list[str]:
    """What is wrong with recording ``childbearing_potential`` for a participant of ``sex``."""
    if childbearing_potential is not None and not childbearing_potential_applies(sex):
        return ["Childbearing potential is recorded only for participants who are not male."]
    return []
