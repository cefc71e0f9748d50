"""The checks every service that records something about a participant makes first: the
recorder's role, a participant still open to that kind of record (the protocol core's rule),
free text within its limits and no moment in the future. Every problem is collected, then
raised at once."""

from __future__ import annotations

from datetime import datetime

from tracker.audit.services import Actor
from tracker.db import utcnow
from tracker.errors import Conflict, InvalidInput, PermissionDenied, RuleViolation
from tracker.participants.models import Participant
from tracker.protocol import RecordKind, Role, State, closed_record_refusal

RECORDING_ROLES = (Role.THERAPIST, Role.COORDINATOR, Role.INVESTIGATOR)
MAX_TEXT = 5000
MAX_TERM = 200


def require_open(participant: Participant, kind: RecordKind) -> None:
    """A closed participant takes no new record (the rule is the protocol core's)."""
    refusal = closed_record_refusal(State(participant.state), kind, participant.study_id)
    if refusal is not None:
        raise RuleViolation(refusal, [refusal])


def require_role(actor: Actor, *roles: Role) -> None:
    if actor.role not in {r.value for r in roles}:
        raise PermissionDenied(f"The {actor.role} role may not do this.")


def text_field(
    value: str | None,
    field: str,
    problems: list[str],
    *,
    required: bool = True,
    limit: int = MAX_TEXT,
) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            problems.append(f"{field} is required.")
        return None
    if len(text) > limit:
        problems.append(f"{field} is longer than {limit} characters.")
    return text


def not_future(moment: datetime | None, field: str, problems: list[str]) -> None:
    if moment is not None and moment > utcnow():
        problems.append(f"{field} cannot be in the future.")


def raise_problems(problems: list[str], what: str) -> None:
    if problems:
        raise InvalidInput(f"{what}: " + " ".join(problems), problems)


def require_version(participant: Participant, expected_version: int) -> None:
    """Refuse an action decided on an outdated version of the participant (409)."""
    if participant.version != expected_version:
        raise Conflict(
            f"{participant.study_id} changed since you looked at it (version {expected_version}, "
            f"now {participant.version}); reload and decide again.",
            [{"expected_version": expected_version, "current_version": participant.version}],
        )
