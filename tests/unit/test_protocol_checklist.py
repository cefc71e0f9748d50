"""The contraindication checklist's derived outcome and its reasons (SPEC §2.1)."""

import json
from pathlib import Path

import pytest

from tracker.protocol import (
    ChecklistAnswer,
    ChecklistOutcome,
    ReviewAssessment,
    checklist_content_for_signature,
    evaluate_checklist,
    load_protocol_file,
    unknown_item_codes,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "mdma-at-v1.toml"
ITEMS = load_protocol_file(FIXTURE).checklist


def answers(yes: tuple[str, ...] = (), blank: tuple[str, ...] = ()) -> dict[str, ChecklistAnswer]:
    """Every item answered no, except those named."""
    result = {item.code: ChecklistAnswer(item.code, False) for item in ITEMS}
    for code in yes:
        result[code] = ChecklistAnswer(code, True, note="see chart")
    for code in blank:
        result[code] = ChecklistAnswer(code, None)
    return result


def acceptable(code: str) -> ReviewAssessment:
    return ReviewAssessment(code, acceptable=True, rationale="Stable for years.")


def test_all_no_is_eligible_with_no_reasons() -> None:
    evaluation = evaluate_checklist(ITEMS, answers(), {})
    assert evaluation.outcome is ChecklistOutcome.ELIGIBLE
    assert evaluation.reasons == ()
    assert evaluation.to_dict() == {"outcome": "eligible", "reasons": []}


def test_nothing_answered_is_incomplete_and_lists_every_item() -> None:
    evaluation = evaluate_checklist(ITEMS, {}, {})
    assert evaluation.outcome is ChecklistOutcome.INCOMPLETE
    assert len(evaluation.reasons) == 21
    assert evaluation.reasons[0] == "Unanswered: Bipolar I disorder, current or past"
    assert evaluation.reasons[-1] == "Unanswered: Body weight under 48 kg"


def test_a_blank_answer_counts_as_unanswered() -> None:
    evaluation = evaluate_checklist(ITEMS, answers(blank=("hepatic_impairment",)), {})
    assert evaluation.outcome is ChecklistOutcome.INCOMPLETE
    assert evaluation.reasons == ("Unanswered: Hepatic impairment",)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("bipolar_i", "Exclusion: Bipolar I disorder, current or past — answered yes"),
        (
            "psychotic_disorder",
            "Exclusion: Schizophrenia or another primary psychotic disorder, current or past"
            " — answered yes",
        ),
        (
            "substance_use_disorder",
            "Exclusion: Moderate or severe substance use disorder in the past 12 months"
            " (caffeine and nicotine aside) — answered yes",
        ),
        (
            "qtc_prolongation",
            "Exclusion: QTc above 450 ms in men or 460 ms in women — answered yes",
        ),
        (
            "suicidal_ideation",
            "Exclusion: Active suicidal ideation with intent or plan — answered yes",
        ),
    ],
)
def test_an_exclusion_answered_yes_is_ineligible(code: str, reason: str) -> None:
    evaluation = evaluate_checklist(ITEMS, answers(yes=(code,)), {})
    assert evaluation.outcome is ChecklistOutcome.INELIGIBLE
    assert evaluation.reasons == (reason,)


@pytest.mark.parametrize(
    ("code", "question"),
    [
        ("bipolar_ii", "Bipolar II disorder"),
        ("psychotic_relative", "First-degree relative with a psychotic disorder"),
        ("substance_remission", "Substance use disorder in sustained remission"),
        ("controlled_hypertension", "Hypertension controlled on medication"),
    ],
)
def test_a_review_item_answered_yes_needs_an_assessment(code: str, question: str) -> None:
    unassessed = evaluate_checklist(ITEMS, answers(yes=(code,)), {})
    assert unassessed.outcome is ChecklistOutcome.INCOMPLETE
    assert unassessed.reasons == (f"Review item needs an investigator's assessment: {question}",)

    accepted = evaluate_checklist(ITEMS, answers(yes=(code,)), {code: acceptable(code)})
    assert accepted.outcome is ChecklistOutcome.ELIGIBLE
    assert accepted.reasons == ()

    rejected = ReviewAssessment(code, acceptable=False, rationale="Too recent.")
    refused = evaluate_checklist(ITEMS, answers(yes=(code,)), {code: rejected})
    assert refused.outcome is ChecklistOutcome.INELIGIBLE
    assert refused.reasons == (f"Review item assessed not acceptable: {question} — Too recent.",)


def test_every_reason_is_listed_ineligible_ones_first() -> None:
    given = answers(
        yes=("bipolar_ii", "coronary_disease", "hepatic_impairment", "pregnancy_or_breastfeeding"),
        blank=("arrhythmia",),
    )
    assessments = {
        "hepatic_impairment": ReviewAssessment("hepatic_impairment", False, "ALT 5x normal."),
    }
    evaluation = evaluate_checklist(ITEMS, given, assessments)
    assert evaluation.outcome is ChecklistOutcome.INELIGIBLE
    assert evaluation.reasons == (
        "Exclusion: Myocardial infarction, stroke or coronary artery disease — answered yes",
        "Exclusion: Pregnancy or breastfeeding — answered yes",
        "Review item assessed not acceptable: Hepatic impairment — ALT 5x normal.",
        "Review item needs an investigator's assessment: Bipolar II disorder",
        "Unanswered: Arrhythmia other than isolated premature beats",
    )


def test_an_assessment_of_an_item_answered_no_is_stale_and_ignored() -> None:
    stale = {"bipolar_ii": ReviewAssessment("bipolar_ii", False, "Was yes before.")}
    evaluation = evaluate_checklist(ITEMS, answers(), stale)
    assert evaluation.outcome is ChecklistOutcome.ELIGIBLE


def test_an_assessment_cannot_clear_an_exclusion() -> None:
    evaluation = evaluate_checklist(
        ITEMS, answers(yes=("bipolar_i",)), {"bipolar_i": acceptable("bipolar_i")}
    )
    assert evaluation.outcome is ChecklistOutcome.INELIGIBLE


def test_unknown_item_codes() -> None:
    codes = ["bipolar_i", "nope", "bipolar_ii", "nope", "other"]
    assert unknown_item_codes(ITEMS, codes) == ("nope", "other")


def test_signature_content_is_canonical_and_changes_with_any_answer() -> None:
    given = answers(yes=("bipolar_ii",))
    assessments = {"bipolar_ii": acceptable("bipolar_ii")}
    content = checklist_content_for_signature(ITEMS, given, assessments)
    reordered = dict(reversed(list(given.items())))
    assert checklist_content_for_signature(ITEMS, reordered, assessments) == content
    data = json.loads(content)
    assert data["outcome"] == "eligible"
    assert len(data["items"]) == 21
    assert data["items"][1] == {
        "answer": "yes",
        "assessment": {"acceptable": True, "rationale": "Stable for years."},
        "category": "bipolar",
        "code": "bipolar_ii",
        "kind": "review",
        "note": "see chart",
        "question": "Bipolar II disorder",
    }
    assert data["items"][0]["answer"] == "no"
    assert data["items"][0]["assessment"] is None
    assert " " not in content.split('"question"')[0]

    renoted = dict(given, bipolar_i=ChecklistAnswer("bipolar_i", False, note="asked twice"))
    assert checklist_content_for_signature(ITEMS, renoted, assessments) != content
    reassessed = {"bipolar_ii": ReviewAssessment("bipolar_ii", True, "Other words.")}
    assert checklist_content_for_signature(ITEMS, given, reassessed) != content
    assert checklist_content_for_signature(ITEMS, answers(), assessments) != content
