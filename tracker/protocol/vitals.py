"""What a vital-sign reading can be (SPEC §4): the plausible range of each sign, outside which
a value is a typing error, not a patient. One definition, read by the form, the API schema
(so the OpenAPI document states the limits), the service and the database's CHECK
constraints. They are physiology, not protocol settings: a protocol's alert thresholds live
in its file; these bounds do not change with a protocol version (a CHECK could not follow)."""

from __future__ import annotations

PLAUSIBLE_RANGES: dict[str, tuple[int, int]] = {
    "systolic": (40, 300),
    "diastolic": (20, 200),
    "heart_rate": (20, 250),
    "temperature_c": (30, 45),
}


def reading_problems(
    systolic: int, diastolic: int, heart_rate: int, temperature_c: float
) -> list[str]:
    """Every reason a reading cannot be right."""
    values = {
        "systolic": systolic,
        "diastolic": diastolic,
        "heart_rate": heart_rate,
        "temperature_c": temperature_c,
    }
    problems = [
        f"{name} {values[name]} is outside the plausible range {low} to {high}."
        for name, (low, high) in PLAUSIBLE_RANGES.items()
        if not low <= values[name] <= high
    ]
    if systolic <= diastolic:
        problems.append("systolic must be above diastolic.")
    return problems


def plausible_check(name: str) -> str:
    """The SQL of the CHECK constraint that keeps ``name`` in its range."""
    low, high = PLAUSIBLE_RANGES[name]
    return f"{name} BETWEEN {low} AND {high}"
