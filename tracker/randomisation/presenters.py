"""What the pages show of a participant's randomisation, decided by the one rule of who may
see an arm (``queries.may_see_arm``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.participants.models import Participant
from tracker.protocol import State
from tracker.randomisation import queries
from tracker.security import Permission, role_has
from tracker.study.models import definition_of


def participant_randomisation(db: Session, user: User, participant: Participant) -> dict[str, Any]:
    """The participant page's randomisation card (empty for a protocol that does not
    randomise)."""
    design = definition_of(participant.protocol_version).randomisation
    if design is None:
        return {}
    allocation = queries.allocation_of(db, participant.id)
    arm_code = queries.visible_arm(db, user, participant.id) if allocation else None
    unblindings = [
        {"at": u.unblinded_at, "by": db.get_one(User, u.user_id).printed_name, "reason": u.reason}
        for u in queries.unblindings_of(db, participant.id)
    ]
    return {
        "allocation": allocation,
        "arm": design.arm(arm_code) if arm_code else None,
        "unblindings": unblindings,
        "may_randomise": allocation is None
        and participant.state == State.PREPARATION
        and role_has(user.role, Permission.RANDOMISE),
        "may_unblind": allocation is not None
        and arm_code is None
        and role_has(user.role, Permission.EMERGENCY_UNBLIND),
    }


def protocol_definition_for(db: Session, user: User, definition: dict[str, Any]) -> dict[str, Any]:
    """The protocol document as ``user`` may read it: the block sizes are known to the
    unblinded roles only (ICH E9: knowing them lets site staff predict the end of a block)."""
    design = definition.get("randomisation")
    if not isinstance(design, dict) or "block_sizes" not in design:
        return definition
    if user.role in queries.ALWAYS_UNBLINDED or queries.study_unblinded(db) is not None:
        return definition
    return {
        **definition,
        "randomisation": {
            **{k: v for k, v in design.items() if k != "block_sizes"},
            "block_sizes": "concealed",
        },
    }
