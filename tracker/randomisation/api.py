"""Randomisation and blinding in the JSON API (SPEC §11)."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from tracker.api import bp
from tracker.api.openapi import api_route, parse_body
from tracker.api.schemas import (
    AllocationList,
    AllocationOut,
    BlindingGuessIn,
    BlindingGuessOut,
    EmergencyUnblindIn,
    EmergencyUnblindOut,
    RandomisationOut,
    RandomiseIn,
)
from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.extensions import password_check_limit
from tracker.participants.models import Participant
from tracker.participants.queries import get_participant
from tracker.randomisation import queries, services
from tracker.security import Permission, authenticated_user, requires


def _participant(participant_id: int) -> Participant:
    return get_participant(get_db(), authenticated_user(), participant_id)


@api_route(
    bp,
    "/participants/<int:participant_id>/randomisation",
    "POST",
    tag="randomisation",
    status=201,
    summary="Randomise the participant: the next unused entry of their stratum, once",
    body=RandomiseIn,
    response=RandomisationOut,
)
@requires(Permission.RANDOMISE)
def randomisation_record(participant_id: int) -> ResponseReturnValue:
    body = parse_body(RandomiseIn)
    entry = services.randomise(
        get_db(),
        current_actor(),
        _participant(participant_id),
        expected_version=body.expected_version,
    )
    return RandomisationOut(
        randomisation_number=entry.randomisation_number,
        stratum=entry.stratum,
        randomised_at=services.randomised_at(entry),
    ).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/unblinding",
    "POST",
    tag="randomisation",
    summary="Emergency unblinding by an investigator, who re-enters their password",
    body=EmergencyUnblindIn,
    response=EmergencyUnblindOut,
)
@requires(Permission.EMERGENCY_UNBLIND)
@password_check_limit
def emergency_unblinding(participant_id: int) -> ResponseReturnValue:
    body = parse_body(EmergencyUnblindIn)
    participant = _participant(participant_id)
    arm = services.emergency_unblind(
        get_db(),
        current_actor(),
        authenticated_user(),
        participant,
        password=body.password,
        reason=body.reason,
    )
    return EmergencyUnblindOut(arm=arm.code, label=arm.label).model_dump(mode="json")


@api_route(
    bp,
    "/participants/<int:participant_id>/blinding-guesses",
    "POST",
    tag="randomisation",
    status=201,
    summary="A blinding-integrity guess after a dosing session or at the primary endpoint",
    body=BlindingGuessIn,
    response=BlindingGuessOut,
)
@requires(Permission.BLINDING_GUESS_RECORD)
def blinding_guess_record(participant_id: int) -> ResponseReturnValue:
    body = parse_body(BlindingGuessIn)
    row = services.record_guess(
        get_db(), current_actor(), _participant(participant_id), **body.model_dump()
    )
    return BlindingGuessOut.model_validate(row, from_attributes=True).model_dump(mode="json"), 201


@api_route(
    bp,
    "/randomisation/allocations",
    "GET",
    tag="randomisation",
    summary="Every allocation with its arm (statistician: the study; pharmacist: their site)",
    response=AllocationList,
)
@requires(Permission.ALLOCATIONS_VIEW)
def allocation_list() -> ResponseReturnValue:
    rows = queries.allocations(get_db(), authenticated_user())
    return AllocationList(
        allocations=[AllocationOut.model_validate(r, from_attributes=True) for r in rows]
    ).model_dump(mode="json")
