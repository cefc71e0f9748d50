"""One definition of a plausible reading, read by the form, the API schema, the service and
the CHECK constraints."""

from __future__ import annotations

import pytest

from tracker.api.schemas import VitalsIn
from tracker.dosing.forms import VitalSignsForm
from tracker.dosing.models import VitalSignReading
from tracker.protocol import PLAUSIBLE_RANGES, plausible_check, reading_problems


def test_the_api_schema_states_the_plausible_ranges() -> None:
    properties = VitalsIn.model_json_schema()["properties"]
    for name, (low, high) in PLAUSIBLE_RANGES.items():
        assert (properties[name]["minimum"], properties[name]["maximum"]) == (low, high), name


def test_the_check_constraints_are_the_same_ranges() -> None:
    checks = {
        str(c.sqltext) for c in VitalSignReading.__table__.constraints if hasattr(c, "sqltext")
    }
    assert {plausible_check(name) for name in PLAUSIBLE_RANGES} <= checks


def test_the_form_validates_the_same_ranges() -> None:
    for name, (low, high) in PLAUSIBLE_RANGES.items():
        field = getattr(VitalSignsForm, name)
        ranges = [v for v in field.kwargs["validators"] if hasattr(v, "min")]
        assert [(v.min, v.max) for v in ranges] == [(low, high)], name


@pytest.mark.parametrize(
    ("reading", "problem"),
    [
        ((301, 80, 70, 36.8), "systolic 301 is outside the plausible range 40 to 300."),
        ((120, 80, 19, 36.8), "heart_rate 19 is outside the plausible range 20 to 250."),
        ((120, 80, 70, 45.5), "temperature_c 45.5 is outside the plausible range 30 to 45."),
        ((80, 90, 70, 36.8), "systolic must be above diastolic."),
    ],
)
def test_the_service_rule_names_each_problem(
    reading: tuple[int, int, int, float], problem: str
) -> None:
    assert reading_problems(*reading) == [problem]
