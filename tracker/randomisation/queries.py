"""Reading allocations, with the one rule of who may see an arm (SPEC §11): the statistician
and the pharmacist always; everyone else only after the study's unblinding, or, for one
participant, the investigator who unblinded them in an emergency. No other module selects
``RandomisationEntry.arm``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.participants.models import Participant
from tracker.protocol import Role
from tracker.randomisation.models import (
    BlindingGuess,
    EmergencyUnblinding,
    RandomisationEntry,
    RandomisationList,
    StudyUnblinding,
)
from tracker.sites.models import Site
from tracker.study.models import ProtocolVersion, definition_of

ALWAYS_UNBLINDED = frozenset({Role.STATISTICIAN.value, Role.PHARMACIST.value})


@dataclass(frozen=True)
class Allocation:
    """What every role that sees the participant may know of their randomisation."""

    randomisation_number: str
    stratum: str
    randomised_at: datetime


def is_randomised(db: Session, participant_id: int) -> bool:
    return (
        db.scalar(
            sa.select(RandomisationEntry.id).where(
                RandomisationEntry.participant_id == participant_id
            )
        )
        is not None
    )


def allocation_of(db: Session, participant_id: int) -> Allocation | None:
    """The participant's randomisation number, stratum and time, without the arm."""
    row = db.execute(
        sa.select(
            RandomisationEntry.randomisation_number,
            RandomisationEntry.stratum,
            RandomisationEntry.allocated_at,
        ).where(RandomisationEntry.participant_id == participant_id)
    ).first()
    if row is None or row.allocated_at is None:
        return None
    return Allocation(row.randomisation_number, row.stratum, row.allocated_at)


def study_unblinded(db: Session) -> StudyUnblinding | None:
    return db.get(StudyUnblinding, 1)


def arm_labels_by_version(db: Session) -> dict[int, dict[str, str]]:
    """Each randomised protocol version's arms, code to label (two protocols may use the same
    code for different arms)."""
    return {
        version.id: {arm.code: arm.label for arm in design.arms}
        for version in db.scalars(sa.select(ProtocolVersion).order_by(ProtocolVersion.id))
        if (design := definition_of(version).randomisation) is not None
    }


def may_see_arm(db: Session, user: User, participant_id: int) -> bool:
    """Whether ``user`` may see the arm of this participant."""
    if user.role in ALWAYS_UNBLINDED or study_unblinded(db) is not None:
        return True
    if user.role != Role.INVESTIGATOR:
        return False
    return (
        db.scalar(
            sa.select(EmergencyUnblinding.id).where(
                EmergencyUnblinding.participant_id == participant_id,
                EmergencyUnblinding.user_id == user.id,
            )
        )
        is not None
    )


def arm_of(db: Session, participant_id: int) -> str | None:
    """The allocated arm: callers decide with ``may_see_arm`` first (or are the services
    that reveal it under their own checks)."""
    return db.scalar(
        sa.select(RandomisationEntry.arm).where(RandomisationEntry.participant_id == participant_id)
    )


def visible_arm(db: Session, user: User, participant_id: int) -> str | None:
    """The arm if ``user`` may see it, else None."""
    if not may_see_arm(db, user, participant_id):
        return None
    return arm_of(db, participant_id)


def active_list(db: Session, protocol_version_id: int) -> RandomisationList | None:
    """The list in use for a protocol version: the newest."""
    return db.scalar(
        sa.select(RandomisationList)
        .where(RandomisationList.protocol_version_id == protocol_version_id)
        .order_by(RandomisationList.id.desc())
        .limit(1)
    )


def used_entries(db: Session, list_id: int) -> int:
    return int(
        db.scalar(
            sa.select(sa.func.count())
            .select_from(RandomisationEntry)
            .where(
                RandomisationEntry.list_id == list_id,
                RandomisationEntry.participant_id.is_not(None),
            )
        )
        or 0
    )


@dataclass(frozen=True)
class AllocationRow:
    """One used entry as the unblinded roles read it."""

    study_id: str
    site: str
    randomisation_number: str
    stratum: str
    arm: str
    randomised_at: datetime


def allocations(db: Session, user: User) -> list[AllocationRow]:
    """Every allocation the (unblinded) user may read: the statistician's are the study's,
    the pharmacist's their site's."""
    assert user.role in ALWAYS_UNBLINDED or study_unblinded(db) is not None
    query = (
        sa.select(
            Participant.study_id,
            Site.code,
            RandomisationEntry.randomisation_number,
            RandomisationEntry.stratum,
            RandomisationEntry.arm,
            RandomisationEntry.allocated_at,
        )
        .join(Participant, Participant.id == RandomisationEntry.participant_id)
        .join(Site, Site.id == Participant.site_id)
        .order_by(RandomisationEntry.allocated_at, RandomisationEntry.id)
    )
    if user.site_id is not None:
        query = query.where(Participant.site_id == user.site_id)
    return [
        AllocationRow(study_id, site, number, stratum, arm, at)
        for study_id, site, number, stratum, arm, at in db.execute(query)
        if at is not None
    ]


def unblindings_of(db: Session, participant_id: int) -> list[EmergencyUnblinding]:
    return list(
        db.scalars(
            sa.select(EmergencyUnblinding)
            .where(EmergencyUnblinding.participant_id == participant_id)
            .order_by(EmergencyUnblinding.id)
        )
    )


def guesses_of(db: Session, participant_id: int) -> list[BlindingGuess]:
    return list(
        db.scalars(
            sa.select(BlindingGuess)
            .where(BlindingGuess.participant_id == participant_id)
            .order_by(BlindingGuess.id)
        )
    )
