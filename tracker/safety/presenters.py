"""What the adverse-event page shows, with its assessment and follow-up forms."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from sqlalchemy.orm import Session

from tracker.participants.models import Participant
from tracker.participants.queries import users_by_id
from tracker.safety.forms import AdverseEventAssessmentForm, AdverseEventFollowUpForm
from tracker.safety.models import AdverseEvent

Submitted = dict[str, FlaskForm]


def adverse_event_page(
    db: Session,
    participant: Participant,
    event: AdverseEvent,
    submitted: Submitted | None = None,
) -> dict[str, Any]:
    submitted = submitted or {}
    people = users_by_id(db, {event.recorded_by_id, event.assessed_by_id})
    assessment = submitted.get("assess") or AdverseEventAssessmentForm(
        prefix="assess",
        formdata=None,
        data={
            "relatedness": event.relatedness or "",
            "expected": None if event.expected is None else ("yes" if event.expected else "no"),
            "note": event.assessment_note or "",
        },
    )
    follow_up = submitted.get("follow") or AdverseEventFollowUpForm(
        prefix="follow",
        formdata=None,
        data={
            "outcome": event.outcome,
            "resolved_at": event.resolved_at,
            "reported_at": event.reported_at,
        },
    )
    return {
        "participant": participant,
        "event": event,
        "people": people,
        "assessment_form": assessment,
        "follow_up_form": follow_up,
    }
