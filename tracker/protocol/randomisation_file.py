"""Reading a protocol file's ``[randomisation]`` (SPEC §11), every problem recorded at once."""

from tracker.protocol.outcomes import OutcomeRules
from tracker.protocol.randomisation import Arm, RandomisationDesign, StratumFactor
from tracker.protocol.tables import Table, describe


def _read_arms(table: Table) -> tuple[Arm, ...] | None:
    arms: list[Arm] = []
    valid = True
    for arm_table in table.tables("arms") or []:
        code = arm_table.code("code")
        label = arm_table.string("label")
        ratio = arm_table.integer("ratio")
        arm_table.finish()
        if code is None or label is None or ratio is None:
            valid = False
        elif code in {a.code for a in arms}:
            arm_table.problem("code", f"duplicate arm code {code!r}")
            valid = False
        else:
            arms.append(Arm(code, label, ratio))
    if valid and len(arms) < 2:
        table.problem("arms", "a randomised protocol needs at least two arms")
        return None
    return tuple(arms) if valid else None


def read_randomisation(root: Table, outcomes: OutcomeRules | None) -> RandomisationDesign | None:
    """The design, or None when the protocol does not randomise or (with problems recorded)
    when it cannot be used."""
    if not root.has("randomisation"):
        return None
    table = root.table("randomisation")
    if table is None:
        return None
    arms = _read_arms(table)
    strata: list[StratumFactor] = []
    for value in table.list_of("strata") or []:
        if not isinstance(value, str) or value not in {f.value for f in StratumFactor}:
            known = ", ".join(f.value for f in StratumFactor)
            table.problem("strata", f"{describe(value)} is not a stratification factor ({known})")
            continue
        strata.append(StratumFactor(value))
    if StratumFactor.BASELINE_BAND in strata and outcomes is None:
        table.problem("strata", "baseline_band needs [outcomes] with a primary instrument")
    sizes: list[int] = []
    for value in table.list_of("block_sizes") or []:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            table.problem("block_sizes", f"{describe(value)} is not a block size")
            continue
        sizes.append(value)
    table.finish()
    if arms is None:
        return None
    ratio_sum = sum(a.ratio for a in arms)
    for size in sizes:
        if size % ratio_sum:
            table.problem(
                "block_sizes", f"{size} is not a multiple of the ratio's sum ({ratio_sum})"
            )
            return None
    if not sizes:
        table.problem("block_sizes", "needs at least one block size")
        return None
    return RandomisationDesign(arms, tuple(strata), tuple(sorted(set(sizes))))
