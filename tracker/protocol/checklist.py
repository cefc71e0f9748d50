"""The contraindication checklist's outcome, derived from answers and assessments (SPEC §2.1)."""

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from tracker.protocol.definition import ChecklistItem, ItemKind


class ChecklistOutcome(StrEnum):
    """What the checklist says about eligibility; never typed in, always derived."""

    INCOMPLETE = "incomplete"
    INELIGIBLE = "ineligible"
    ELIGIBLE = "eligible"


@dataclass(frozen=True)
class ChecklistAnswer:
    """A yes (True) or no (False) answer to one item; None while it is still blank."""

    item_code: str
    answer: bool | None
    note: str = ""


@dataclass(frozen=True)
class ReviewAssessment:
    """An investigator's judgement of a review item answered yes."""

    item_code: str
    acceptable: bool
    rationale: str


@dataclass(frozen=True)
class ChecklistEvaluation:
    """The outcome and every reason behind it, ineligibility reasons first."""

    outcome: ChecklistOutcome
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-able form for the participant's ``eligibility`` field."""
        return {"outcome": str(self.outcome), "reasons": list(self.reasons)}


def evaluate_checklist(
    items: Sequence[ChecklistItem],
    answers: Mapping[str, ChecklistAnswer],
    assessments: Mapping[str, ReviewAssessment],
) -> ChecklistEvaluation:
    """Derive the checklist outcome from the answers and the investigator's assessments.

    ``answers`` and ``assessments`` are keyed by item code. The outcome is ``ineligible`` when an
    exclusion item is answered yes or a review item answered yes is assessed not acceptable;
    otherwise ``incomplete`` when an item is unanswered or a review item answered yes has no
    assessment; otherwise ``eligible``. Every reason is listed, ineligibility reasons first, so
    a coordinator sees what is still missing even on an ineligible checklist. An assessment only
    counts while its item is answered yes: after the answer changes to no it is stale. Answers
    and assessments for codes not in ``items`` are ignored (see ``unknown_item_codes``).
    """
    ineligible: list[str] = []
    incomplete: list[str] = []
    for item in items:
        entry = answers.get(item.code)
        answer = entry.answer if entry is not None else None
        if answer is None:
            incomplete.append(f"Unanswered: {item.question}")
        elif answer and item.kind is ItemKind.EXCLUSION:
            ineligible.append(f"Exclusion: {item.question} — answered yes")
        elif answer and item.kind is ItemKind.REVIEW:
            assessment = assessments.get(item.code)
            if assessment is None:
                incomplete.append(
                    f"Review item needs an investigator's assessment: {item.question}"
                )
            elif not assessment.acceptable:
                ineligible.append(
                    f"Review item assessed not acceptable: {item.question} — {assessment.rationale}"
                )
    if ineligible:
        outcome = ChecklistOutcome.INELIGIBLE
    elif incomplete:
        outcome = ChecklistOutcome.INCOMPLETE
    else:
        outcome = ChecklistOutcome.ELIGIBLE
    return ChecklistEvaluation(outcome=outcome, reasons=(*ineligible, *incomplete))


def unknown_item_codes(items: Sequence[ChecklistItem], codes: Iterable[str]) -> tuple[str, ...]:
    """Return the codes (in the order given, without repeats) that name no item in ``items``."""
    known = {item.code for item in items}
    unknown: dict[str, None] = {}
    for code in codes:
        if code not in known:
            unknown[code] = None
    return tuple(unknown)


def checklist_content_for_signature(
    items: Sequence[ChecklistItem],
    answers: Mapping[str, ChecklistAnswer],
    assessments: Mapping[str, ReviewAssessment],
) -> str:
    """Return the canonical JSON text of what an investigator signs.

    It holds every item with its question, kind, answer, note and (for review items answered
    yes) the assessment, plus the derived outcome; keys are sorted and whitespace removed so the
    same checklist always gives the same text, and any change to an answer, note or assessment
    changes it, which is what voids a signature.
    """
    evaluation = evaluate_checklist(items, answers, assessments)
    rows: list[dict[str, object]] = []
    for item in items:
        entry = answers.get(item.code)
        answer = entry.answer if entry is not None else None
        assessment = assessments.get(item.code) if answer and item.kind is ItemKind.REVIEW else None
        rows.append(
            {
                "code": item.code,
                "category": item.category,
                "question": item.question,
                "kind": str(item.kind),
                "answer": None if answer is None else ("yes" if answer else "no"),
                "note": entry.note if entry is not None else "",
                "assessment": None
                if assessment is None
                else {"acceptable": assessment.acceptable, "rationale": assessment.rationale},
            }
        )
    content = {"items": rows, "outcome": str(evaluation.outcome)}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
