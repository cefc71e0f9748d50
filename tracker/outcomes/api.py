"""Outcome measures in the JSON API (SPEC §10): assessments, missed timepoints, raters."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from tracker.api import bp
from tracker.api.openapi import api_route, parse_body
from tracker.api.schemas import (
    MissedTimepointIn,
    OutcomeAssessmentIn,
    OutcomeAssessmentOut,
    OutcomeRecordOut,
    RatersIn,
    RatersOut,
    TimepointOut,
)
from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.outcomes import presenters, services
from tracker.participants.models import Participant
from tracker.participants.queries import get_participant
from tracker.security import Permission, authenticated_user, requires


def _participant(participant_id: int) -> Participant:
    return get_participant(get_db(), authenticated_user(), participant_id)


@api_route(
    bp,
    "/participants/<int:participant_id>/assessments",
    "POST",
    tag="outcomes",
    status=201,
    summary="Record an outcome assessment: scored by the core, placed in its timepoint's window",
    body=OutcomeAssessmentIn,
    response=OutcomeAssessmentOut,
)
@requires(Permission.OUTCOMES_RECORD)
def assessment_record(participant_id: int) -> ResponseReturnValue:
    body = parse_body(OutcomeAssessmentIn)
    participant = _participant(participant_id)
    row = services.record_assessment(get_db(), current_actor(), participant, **body.model_dump())
    out = presenters.recorded_assessment(get_db(), participant, row)
    return OutcomeAssessmentOut.model_validate(out).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/assessments",
    "GET",
    tag="outcomes",
    summary="The participant's timepoints (due, done, missed) and assessments",
    response=OutcomeRecordOut,
)
@requires(Permission.OUTCOMES_VIEW)
def assessment_list(participant_id: int) -> ResponseReturnValue:
    record = presenters.outcome_record(get_db(), _participant(participant_id))
    return OutcomeRecordOut.model_validate(record).model_dump(mode="json")


@api_route(
    bp,
    "/participants/<int:participant_id>/missed-timepoints",
    "POST",
    tag="outcomes",
    status=201,
    summary="Record that a timepoint will not be assessed, and why",
    body=MissedTimepointIn,
    response=TimepointOut,
)
@requires(Permission.OUTCOMES_RECORD)
def missed_timepoint_record(participant_id: int) -> ResponseReturnValue:
    body = parse_body(MissedTimepointIn)
    participant = _participant(participant_id)
    services.record_missed_timepoint(
        get_db(), current_actor(), participant, body.timepoint, body.reason
    )
    record = presenters.outcome_record(get_db(), participant)
    (row,) = [t for t in record["timepoints"] if t["code"] == body.timepoint]
    return TimepointOut.model_validate(row).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/raters",
    "PUT",
    tag="outcomes",
    summary="Assign the participant's blinded raters (exactly these)",
    body=RatersIn,
    response=RatersOut,
)
@requires(Permission.RATERS_ASSIGN)
def participant_raters(participant_id: int) -> ResponseReturnValue:
    body = parse_body(RatersIn)
    raters = services.set_raters(
        get_db(), current_actor(), _participant(participant_id), body.raters
    )
    return RatersOut(raters=[r.username for r in raters]).model_dump(mode="json")
