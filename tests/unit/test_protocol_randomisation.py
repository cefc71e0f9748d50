"""The randomisation core (SPEC §11): the protocol's design, the stratified permuted-block
generator tested as a statistician would (1,000 simulated lists), strata, imported lists, and
Bang's blinding index against a hand-worked example."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from tracker.paths import FIXTURES
from tracker.protocol import load_protocol, load_protocol_file
from tracker.protocol.loader import ProtocolFileError
from tracker.protocol.randomisation import (
    Arm,
    ListEntry,
    RandomisationDesign,
    StratumFactor,
    all_strata,
    bang_index,
    generate_list,
    largest_imbalance,
    list_problems,
    stratum_code,
)

DESIGN = load_protocol_file(FIXTURES / "protocols" / "mdma-mdd-v2.toml").randomisation
assert DESIGN is not None
STRATA = all_strata(DESIGN, ["S01", "S02"], ["moderate", "severe"])


def test_the_depression_protocol_randomises_one_to_one_by_site_and_baseline_band() -> None:
    assert DESIGN.arm_codes == ("midomafetamine", "active_placebo")
    assert [a.ratio for a in DESIGN.arms] == [1, 1]
    assert DESIGN.strata == (StratumFactor.SITE, StratumFactor.BASELINE_BAND)
    assert DESIGN.block_sizes == (4, 6)
    assert STRATA == ["S01|moderate", "S01|severe", "S02|moderate", "S02|severe"]
    assert stratum_code(DESIGN, site="S02", baseline_band="severe") == "S02|severe"
    with pytest.raises(ValueError, match="baseline_band"):
        stratum_code(DESIGN, site="S02", baseline_band=None)


def test_the_same_seed_gives_the_same_list_and_another_seed_another() -> None:
    first = generate_list(DESIGN, STRATA, 40, seed=11)
    assert first == generate_list(DESIGN, STRATA, 40, seed=11)
    assert first != generate_list(DESIGN, STRATA, 40, seed=12)
    # A stratum's sequence does not depend on the other strata of the list.
    alone = generate_list(DESIGN, ["S02|severe"], 40, seed=11)
    assert [e.arm for e in alone] == [e.arm for e in first if e.stratum == "S02|severe"]


def test_a_thousand_simulated_lists_keep_balance_and_ratio() -> None:
    """Over 1,000 lists of 4 strata: in every stratum, at every point of the sequence, no arm
    is further from its share than half the largest block; every block holds the ratio; and
    each arm's share of all allocations matches the ratio (1:1) within sampling error."""
    half_largest = max(DESIGN.block_sizes) / 2
    totals: Counter[str] = Counter()
    first_arms: Counter[str] = Counter()
    for seed in range(1000):
        entries = generate_list(DESIGN, STRATA, 30, seed=seed)
        assert not list_problems(DESIGN, entries)
        for stratum in STRATA:
            arms = [e.arm for e in entries if e.stratum == stratum]
            assert len(arms) >= 30
            assert largest_imbalance(DESIGN, arms) <= half_largest
            first_arms[arms[0]] += 1
            totals.update(arms)
    share = totals["midomafetamine"] / sum(totals.values())
    assert share == 0.5  # whole blocks: exact
    # Which arm comes first is a fair coin: 4,000 first allocations, 1:1 within 4 sigma.
    n = sum(first_arms.values())
    assert abs(first_arms["midomafetamine"] - n / 2) < 4 * math.sqrt(n) / 2


def test_an_unequal_ratio_is_kept_too() -> None:
    design = RandomisationDesign(
        (Arm("a", "A", 2), Arm("b", "B", 1)), (StratumFactor.SITE,), (3, 6)
    )
    entries = generate_list(design, ["S01"], 300, seed=3)
    counts = Counter(e.arm for e in entries)
    assert counts["a"] == 2 * counts["b"]
    assert largest_imbalance(design, [e.arm for e in entries]) <= 3


def test_an_imported_list_with_faults_is_refused_with_every_reason() -> None:
    good = generate_list(DESIGN, ["S01|severe"], 4, seed=1)
    assert not list_problems(DESIGN, good)
    faulty = [
        *good[:3],
        ListEntry("S01|severe", 4, good[3].block, good[3].block_size, "caffeine"),
        ListEntry("S01|severe", 9, 9, 4, "active_placebo"),
    ]
    problems = list_problems(DESIGN, faulty)
    assert any("unknown arm 'caffeine'" in p for p in problems)
    assert any("positions must run 1 to 5" in p for p in problems)
    assert any("do not follow the ratio" in p for p in problems)


def test_bang_index_hand_worked() -> None:
    """Ten participants of the MDMA arm: 7 guess MDMA, 1 placebo, 2 are unsure.
    BI = (7 - 1) / 10 = 0.6; variance = [0.7 x 0.3 + 0.1 x 0.9 + 2 x 0.7 x 0.1] / 10 = 0.044,
    standard error = 0.2098 -> 0.21, 95 % interval 0.6 +- 0.41 = (0.188, 1.012), cut to the
    index's range: (0.188, 1.0).
    Eight of the placebo arm: 2 guess placebo, 6 MDMA: BI = (2 - 6) / 8 = -0.5."""
    mdma = bang_index("mdma", "participant", ["mdma"] * 7 + ["placebo"] + ["unsure"] * 2)
    assert (mdma.n, mdma.correct, mdma.incorrect, mdma.unsure) == (10, 7, 1, 2)
    assert mdma.index == 0.6
    assert mdma.standard_error == 0.21
    assert mdma.interval == (0.188, 1.0)
    placebo = bang_index("placebo", "participant", ["placebo"] * 2 + ["mdma"] * 6)
    assert placebo.index == -0.5
    assert bang_index("placebo", "rater", []).index is None


def _with(randomisation: str) -> str:
    text = (FIXTURES / "protocols" / "mdma-mdd-v2.toml").read_text(encoding="utf-8")
    head, _, _ = text.partition("[randomisation]")
    return head + randomisation


def test_a_bad_design_names_every_problem() -> None:
    with pytest.raises(ProtocolFileError) as raised:
        load_protocol(
            _with(
                """[randomisation]
strata = ["site", "weather"]
block_sizes = [4, 5]

[[randomisation.arms]]
code = "midomafetamine"
label = "MDMA"
ratio = 1

[[randomisation.arms]]
code = "midomafetamine"
label = "Placebo"
ratio = 1
"""
            )
        )
    problems = "\n".join(raised.value.problems)
    assert "is not a stratification factor" in problems
    assert "duplicate arm code 'midomafetamine'" in problems
    with pytest.raises(ProtocolFileError) as raised:
        load_protocol(
            _with(
                """[randomisation]
strata = ["site"]
block_sizes = [4, 5]

[[randomisation.arms]]
code = "a"
label = "A"
ratio = 1

[[randomisation.arms]]
code = "b"
label = "B"
ratio = 1
"""
            )
        )
    assert "5 is not a multiple of the ratio's sum (2)" in "\n".join(raised.value.problems)


def test_the_ptsd_protocol_randomises_in_a_new_version() -> None:
    """Version 3 of the PTSD protocol randomises by site and baseline CAPS-5 band; version 2,
    already in use, is unchanged and does not."""
    v3 = load_protocol_file(FIXTURES / "protocols" / "mdma-at-v3.toml")
    v2 = load_protocol_file(FIXTURES / "protocols" / "mdma-at-v2.toml")
    assert (v3.code, v3.version, v2.version) == ("mdma-at", "3", "2")
    assert v2.randomisation is None
    assert v3.randomisation is not None
    assert v3.randomisation.arm_codes == ("midomafetamine", "active_placebo")
    assert v3.outcomes is not None and v3.outcomes.primary_instrument == "caps5"
    bands = [b.label for b in v3.instrument("caps5").bands]
    assert bands == ["asymptomatic to mild", "moderate", "severe", "extreme"]
    assert all_strata(v3.randomisation, ["S01"], bands)[0] == "S01|asymptomatic to mild"
