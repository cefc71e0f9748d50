"""Randomisation as protocol data (SPEC §11): the arms and their ratio, the stratification
factors, the permuted blocks of varying size; the list generator, a participant's stratum, and
Bang's blinding index. Pure functions over plain values, so the statistician's command, the
import and the tests share them."""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class StratumFactor(StrEnum):
    SITE = "site"
    BASELINE_BAND = "baseline_band"  # the severity band of the primary instrument's baseline


@dataclass(frozen=True)
class Arm:
    code: str
    label: str
    ratio: int


@dataclass(frozen=True)
class RandomisationDesign:
    arms: tuple[Arm, ...]
    strata: tuple[StratumFactor, ...]
    block_sizes: tuple[int, ...]

    @property
    def ratio_sum(self) -> int:
        return sum(arm.ratio for arm in self.arms)

    @property
    def arm_codes(self) -> tuple[str, ...]:
        return tuple(arm.code for arm in self.arms)

    def arm(self, code: str) -> Arm:
        for arm in self.arms:
            if arm.code == code:
                return arm
        raise KeyError(code)


@dataclass(frozen=True)
class ListEntry:
    """One line of a randomisation list: the ``position``-th allocation of its stratum."""

    stratum: str
    position: int
    block: int
    block_size: int
    arm: str


STRATUM_SEPARATOR = "|"


def stratum_code(
    design: RandomisationDesign, *, site: str | None, baseline_band: str | None
) -> str:
    """The stratum a participant belongs to, e.g. ``S01|severe``; the factors in the order
    the protocol lists them. A factor the participant lacks raises ``ValueError`` naming it."""
    parts = []
    for factor in design.strata:
        value = site if factor is StratumFactor.SITE else baseline_band
        if not value:
            raise ValueError(factor.value)
        parts.append(value)
    return STRATUM_SEPARATOR.join(parts) if parts else "all"


def all_strata(
    design: RandomisationDesign, sites: Sequence[str], bands: Sequence[str]
) -> list[str]:
    """Every stratum of the study: each combination of the factors' values."""
    combos: list[list[str]] = [[]]
    for factor in design.strata:
        values = sites if factor is StratumFactor.SITE else bands
        combos = [[*combo, value] for combo in combos for value in values]
    return [STRATUM_SEPARATOR.join(c) if c else "all" for c in combos]


def block_of(design: RandomisationDesign, size: int) -> list[str]:
    """The arms of one block of ``size`` before shuffling, in the protocol's ratio."""
    if size % design.ratio_sum:
        raise ValueError(f"a block of {size} is not a multiple of the ratio's sum")
    share = size // design.ratio_sum
    return [arm.code for arm in design.arms for _ in range(arm.ratio * share)]


def generate_list(
    design: RandomisationDesign, strata: Iterable[str], per_stratum: int, seed: int
) -> list[ListEntry]:
    """Stratified permuted blocks of varying size: per stratum, blocks of a size drawn from
    the protocol's, each shuffled, until at least ``per_stratum`` entries (whole blocks, so the
    ratio holds at every block's end). The same seed gives the same list."""
    if per_stratum < 1:
        raise ValueError("per_stratum must be at least 1")
    entries = []
    for stratum in strata:
        # A generator per stratum, seeded from the list's seed and the stratum's code, so a
        # stratum's sequence does not depend on which other strata the list has.
        digest = hashlib.sha256(f"{seed}:{stratum}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 (seeded on purpose)
        position = block = 0
        while position < per_stratum:
            block += 1
            size = rng.choice(design.block_sizes)
            arms = block_of(design, size)
            rng.shuffle(arms)
            for arm in arms:
                position += 1
                entries.append(ListEntry(stratum, position, block, size, arm))
    return entries


def list_problems(design: RandomisationDesign, entries: Sequence[ListEntry]) -> list[str]:
    """Why an imported list cannot be used (empty when it can): unknown arms, positions that
    are not 1..n in each stratum, blocks that break the ratio."""
    problems = []
    known = set(design.arm_codes)
    by_stratum: dict[str, list[ListEntry]] = {}
    for entry in entries:
        if entry.arm not in known:
            problems.append(f"{entry.stratum} #{entry.position}: unknown arm {entry.arm!r}")
        by_stratum.setdefault(entry.stratum, []).append(entry)
    for stratum, rows in by_stratum.items():
        positions = sorted(e.position for e in rows)
        if positions != list(range(1, len(rows) + 1)):
            problems.append(f"{stratum}: positions must run 1 to {len(rows)} without gaps")
        blocks: dict[int, list[str]] = {}
        for e in rows:
            blocks.setdefault(e.block, []).append(e.arm)
        for number, arms in sorted(blocks.items()):
            if sorted(arms) != sorted(block_of_or_empty(design, len(arms))):
                problems.append(f"{stratum} block {number}: its arms do not follow the ratio")
    return problems


def block_of_or_empty(design: RandomisationDesign, size: int) -> list[str]:
    try:
        return block_of(design, size)
    except ValueError:
        return []


def largest_imbalance(design: RandomisationDesign, arms: Sequence[str]) -> float:
    """The largest distance, over every prefix of an allocation sequence, between an arm's
    count and its share by the ratio (0 when the ratio is exact)."""
    counts: Counter[str] = Counter()
    worst = 0.0
    for index, arm in enumerate(arms, start=1):
        counts[arm] += 1
        for candidate in design.arms:
            expected = index * candidate.ratio / design.ratio_sum
            worst = max(worst, abs(counts[candidate.code] - expected))
    return worst


# --- blinding integrity -----------------------------------------------------------------------

UNSURE = "unsure"


@dataclass(frozen=True)
class BlindingIndex:
    """Bang's blinding index for one arm and kind of respondent (Bang, Ni and Davis, 2004):
    (correct - incorrect) / all guesses, from -1 (all guess the other arm) through 0 (as by
    chance) to 1 (all guess right); "unsure" counts in the denominator only."""

    arm: str
    respondent: str
    n: int
    correct: int
    incorrect: int
    unsure: int
    index: float | None
    standard_error: float | None

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.index is None or self.standard_error is None:
            return None
        # A Wald interval, cut to the index's range of -1 to 1.
        half = 1.96 * self.standard_error
        return (round(max(-1.0, self.index - half), 3), round(min(1.0, self.index + half), 3))


def bang_index(arm: str, respondent: str, guesses: Sequence[str]) -> BlindingIndex:
    """The index of ``guesses`` (arm codes or "unsure") made about participants of ``arm``."""
    n = len(guesses)
    correct = sum(1 for g in guesses if g == arm)
    unsure = sum(1 for g in guesses if g == UNSURE)
    incorrect = n - correct - unsure
    if n == 0:
        return BlindingIndex(arm, respondent, 0, 0, 0, 0, None, None)
    p_correct, p_incorrect = correct / n, incorrect / n
    variance = (
        p_correct * (1 - p_correct) + p_incorrect * (1 - p_incorrect) + 2 * p_correct * p_incorrect
    ) / n
    return BlindingIndex(
        arm,
        respondent,
        n,
        correct,
        incorrect,
        unsure,
        round(p_correct - p_incorrect, 3),
        round(math.sqrt(variance), 3),
    )
