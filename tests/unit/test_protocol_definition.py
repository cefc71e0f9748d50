"""The protocol file: the shipped fixture matches SPEC §2, and bad files name every problem."""

import json
from pathlib import Path

import pytest

from tracker.protocol import (
    ItemKind,
    ProtocolFileError,
    load_protocol,
    load_protocol_file,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "mdma-at-v1.toml"
PROTOCOL = load_protocol_file(FIXTURE)


def test_fixture_header_and_settings_match_spec_section_2() -> None:
    assert (PROTOCOL.code, PROTOCOL.version) == ("mdma-at", "1")
    schedule = PROTOCOL.schedule
    assert schedule.preparation_sessions == 3
    assert schedule.dosing_cycles == 3
    assert schedule.integration_sessions_per_cycle == 3
    assert schedule.first_integration_within_hours == 24
    assert (schedule.dosing_interval_min_days, schedule.dosing_interval_max_days) == (21, 42)
    dosing = PROTOCOL.dosing
    assert dosing.initial_doses_mg == (80, 120)
    assert dosing.supplemental_fraction == 0.5
    assert dosing.supplemental_dose_mg(120) == 60.0
    assert (dosing.supplemental_window_min_minutes, dosing.supplemental_window_max_minutes) == (
        90,
        150,
    )
    assert dosing.max_per_session_mg == 180
    assert dosing.monitoring_min_hours == 8.0
    assert dosing.therapists_present == 2
    assert dosing.overnight_stay_required is True
    assert dosing.pregnancy_test_within_hours == 48
    vitals = PROTOCOL.vital_signs
    assert (vitals.baseline_within_minutes, vitals.max_gap_minutes) == (60, 60)
    thresholds = vitals.alert_thresholds
    assert (thresholds.systolic_mmhg, thresholds.diastolic_mmhg) == (160, 110)
    assert (thresholds.heart_rate_bpm, thresholds.temperature_c) == (110, 38.0)
    assert PROTOCOL.overridable_guards == frozenset({"dosing_interval", "integration_sessions"})


def test_fixture_has_the_five_categories_of_spec_section_2_1() -> None:
    assert [(c.code, c.title) for c in PROTOCOL.categories] == [
        ("bipolar", "Bipolar disorder"),
        ("psychotic", "Schizophrenia and psychotic disorders"),
        ("substance", "Substance-abuse history"),
        ("cardiovascular", "Cardiovascular risk"),
        ("other", "Other"),
    ]


@pytest.mark.parametrize(
    ("category", "exclusions", "reviews"),
    [
        ("bipolar", ["bipolar_i"], ["bipolar_ii", "bipolar_relative"]),
        (
            "psychotic",
            ["psychotic_disorder", "psychotic_depression"],
            ["psychotic_relative"],
        ),
        (
            "substance",
            ["substance_use_disorder"],
            ["substance_remission", "mdma_adverse_reaction"],
        ),
        (
            "cardiovascular",
            [
                "uncontrolled_hypertension",
                "coronary_disease",
                "arrhythmia",
                "qtc_prolongation",
                "structural_heart_disease",
            ],
            ["controlled_hypertension", "cardiovascular_risk_factors"],
        ),
        (
            "other",
            ["pregnancy_or_breastfeeding", "contraindicated_medication", "suicidal_ideation"],
            ["hepatic_impairment", "low_body_weight"],
        ),
    ],
)
def test_fixture_items_per_category_and_kind(
    category: str, exclusions: list[str], reviews: list[str]
) -> None:
    items = PROTOCOL.items_in(category)
    assert [i.code for i in items if i.kind is ItemKind.EXCLUSION] == exclusions
    assert [i.code for i in items if i.kind is ItemKind.REVIEW] == reviews
    assert len(items) == len(exclusions) + len(reviews)


def test_fixture_totals_and_question_texts() -> None:
    assert len(PROTOCOL.checklist) == 21
    assert sum(i.kind is ItemKind.EXCLUSION for i in PROTOCOL.checklist) == 12
    assert PROTOCOL.item("bipolar_i").question == "Bipolar I disorder, current or past"
    assert (
        PROTOCOL.item("qtc_prolongation").question == "QTc above 450 ms in men or 460 ms in women"
    )
    assert PROTOCOL.item("low_body_weight").question == "Body weight under 48 kg"
    with pytest.raises(KeyError):
        PROTOCOL.item("no_such_item")


def test_to_dict_is_json_and_round_trips_through_the_loader() -> None:
    data = PROTOCOL.to_dict()
    text = json.dumps(data)
    assert json.loads(text)["dosing"]["initial_doses_mg"] == [80, 120]
    assert data["overrides"] == {"guards": ["dosing_interval", "integration_sessions"]}
    checklist = data["checklist"]
    assert isinstance(checklist, dict)
    assert checklist["items"][0] == {
        "code": "bipolar_i",
        "category": "bipolar",
        "question": "Bipolar I disorder, current or past",
        "kind": "exclusion",
    }


def test_content_hash_ignores_formatting_but_not_settings() -> None:
    text = FIXTURE.read_text(encoding="utf-8")
    digest = PROTOCOL.content_hash()
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    reformatted = "# a new comment\n" + text.replace("max_gap_minutes = 60", "max_gap_minutes=60")
    assert load_protocol(reformatted).content_hash() == digest
    changed = text.replace("max_gap_minutes = 60", "max_gap_minutes = 45")
    assert load_protocol(changed).content_hash() != digest
    reworded = text.replace('question = "Hepatic impairment"', 'question = "Liver impairment"')
    assert load_protocol(reworded).content_hash() != digest


BAD_FILE = """
[protocol]
code = "mdma-at"
title = 3

[schedule]
preparation_sessions = "three"
dosing_cycles = 3
integration_sessions_per_cycle = 3
first_integration_within_hours = 24
dosing_interval_min_days = 50
dosing_interval_max_days = 42
typo_key = 1

[dosing]
initial_doses_mg = [80, 80, 250]
supplemental_fraction = 1.5
supplemental_window_min_minutes = 150
supplemental_window_max_minutes = 90
max_per_session_mg = 180
monitoring_min_hours = 8
therapists_present = true
overnight_stay_required = "yes"
pregnancy_test_within_hours = 48

[vital_signs]
baseline_within_minutes = 60
max_gap_minutes = 60

[vital_signs.alert_thresholds]
systolic_mmhg = 160
diastolic_mmhg = 110
heart_rate_bpm = 110

[overrides]
guards = ["dosing_interval", "consent_missing", "coffee_break"]

[[checklist.categories]]
code = "bipolar"
title = "Bipolar disorder"

[[checklist.categories]]
code = "cardiovascular"
title = "Cardiovascular risk"

[[checklist.items]]
code = "bipolar_i"
category = "bipolar"
kind = "exclusion"
question = "Bipolar I disorder, current or past"

[[checklist.items]]
code = "bipolar_i"
category = "bipolar"
kind = "review"
question = "Bipolar II disorder"

[[checklist.items]]
code = "qtc"
category = "cardio"
kind = "exlusion"
question = "QTc prolonged"
"""


def test_a_bad_file_names_every_problem() -> None:
    with pytest.raises(ProtocolFileError) as raised:
        load_protocol(BAD_FILE)
    assert raised.value.problems == [
        "protocol.version: missing",
        "protocol.title: expected a string, found an integer (3)",
        "schedule.preparation_sessions: expected an integer, found a string ('three')",
        "schedule.typo_key: unknown key",
        "schedule: dosing_interval_min_days (50) is greater than dosing_interval_max_days (42)",
        "dosing.initial_doses_mg[1]: duplicate dose 80",
        "dosing.supplemental_fraction: must be 0 to 1, found 1.5",
        "dosing.therapists_present: expected an integer, found a boolean (true)",
        "dosing.overnight_stay_required: expected a boolean, found a string ('yes')",
        "dosing: supplemental_window_min_minutes (150) is greater than "
        "supplemental_window_max_minutes (90)",
        "dosing: the largest initial dose (250 mg) is above max_per_session_mg (180 mg)",
        "vital_signs.alert_thresholds.temperature_c: missing",
        "overrides.guards[1]: guard 'consent_missing' is never overridable (SPEC §3)",
        "overrides.guards[2]: unknown guard 'coffee_break'",
        "checklist.items[1].code: duplicate item code 'bipolar_i' (also checklist.items[0])",
        "checklist.items[2].kind: unknown kind 'exlusion' (expected one of exclusion, review)",
        "checklist.items[2].category: unknown category 'cardio'",
    ]
    message = str(raised.value)
    assert message.startswith("protocol file has 17 problems:\n- protocol.version: missing\n")
    for problem in raised.value.problems:
        assert problem in message


def test_missing_sections_and_empty_lists_are_reported() -> None:
    text = '[protocol]\ncode = "x"\nversion = "1"\ntitle = "X"\n[checklist]\ncategories = []\n'
    text += "items = []\n[extra]\n"
    with pytest.raises(ProtocolFileError) as raised:
        load_protocol(text)
    assert raised.value.problems == [
        "schedule: missing",
        "dosing: missing",
        "vital_signs: missing",
        "overrides: missing",
        "checklist.categories: must list at least one category",
        "checklist.items: must list at least one item",
        "extra: unknown key",
    ]


def test_a_category_without_items_and_a_bad_code_are_reported() -> None:
    text = FIXTURE.read_text(encoding="utf-8").replace(
        'code = "other"\ntitle = "Other"',
        'code = "other"\ntitle = "Other"\n\n[[checklist.categories]]\ncode = "renal"\n'
        'title = "Renal"',
    )
    text = text.replace('code = "low_body_weight"', 'code = "Low Body Weight"')
    with pytest.raises(ProtocolFileError) as raised:
        load_protocol(text)
    assert raised.value.problems == [
        "checklist.items[20].code: 'Low Body Weight' is not a snake_case code (a-z, 0-9 and _)",
    ]
    text = text.replace('code = "Low Body Weight"', 'code = "low_body_weight"')
    with pytest.raises(ProtocolFileError) as raised:
        load_protocol(text)
    assert raised.value.problems == ["checklist.categories: category 'renal' has no items"]


def test_invalid_toml_is_one_problem() -> None:
    with pytest.raises(ProtocolFileError) as raised:
        load_protocol("[protocol\ncode = ")
    assert len(raised.value.problems) == 1
    assert raised.value.problems[0].startswith("not valid TOML: ")


def test_load_protocol_file_reads_a_path(tmp_path: Path) -> None:
    copy = tmp_path / "copy.toml"
    copy.write_text(FIXTURE.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_protocol_file(str(copy)) == PROTOCOL


def test_the_supplemental_fraction_is_named_from_the_protocol_not_assumed() -> None:
    from dataclasses import replace

    from tracker.paths import FIXTURES
    from tracker.protocol import load_protocol_file

    rules = load_protocol_file(FIXTURES / "protocols" / "mdma-at-v1.toml").dosing
    assert rules.supplemental_share == "half"
    assert replace(rules, supplemental_fraction=0.6).supplemental_share == "60%"
