"""Who may see which participant: site-bound users see their site; therapists see only the
participants assigned to them. Anything else is a 404, never a 403 (SPEC §1)."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.orm import Session

from tracker.auth.models import SITELESS_ROLES, User
from tracker.errors import NotFound
from tracker.participants.models import (
    ChecklistAnswer,
    ChecklistSignature,
    Consent,
    Participant,
    ProtocolDeviation,
    RaterAssignment,
    ReviewAssessment,
    TherapistAssignment,
    TransitionEvent,
)
from tracker.protocol import Role, State
from tracker.sites.models import Site
from tracker.study.models import ProtocolVersion


def visible_to(user: User | None) -> sa.Select[Participant]:
    """The participants ``user`` may see; None is the study-wide view of the command line."""
    return sa.select(Participant).where(*visibility(user))


def visibility(user: User | None) -> list[sa.ColumnElement[bool]]:
    """The conditions on ``Participant`` of what ``user`` may see, for a query that joins
    participants to other records (no subquery of visible participants needed)."""
    if user is None:
        return []
    conditions: list[sa.ColumnElement[bool]] = []
    if user.role not in SITELESS_ROLES:
        conditions.append(Participant.site_id == user.site_id)
    if user.role == Role.THERAPIST:
        conditions.append(
            sa.exists().where(
                TherapistAssignment.participant_id == Participant.id,
                TherapistAssignment.user_id == user.id,
                TherapistAssignment.ended_at.is_(None),
            )
        )
    if user.role == Role.RATER:
        conditions.append(
            sa.exists().where(
                RaterAssignment.participant_id == Participant.id,
                RaterAssignment.user_id == user.id,
                RaterAssignment.ended_at.is_(None),
            )
        )
    return conditions


def get_participant(
    db: Session, user: User, participant_id: int, *, for_update: bool = False
) -> Participant:
    query = visible_to(user).where(Participant.id == participant_id)
    participant = db.scalar(query)
    if participant is None:
        raise NotFound(f"No participant {participant_id} that you can see.")
    return participant


@dataclass(frozen=True)
class ParticipantFilter:
    state: str | None = None
    site: str | None = None
    search: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[Participant]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def without_protocol_text() -> sa.orm.interfaces.LoaderOption:
    """For pages that list participants but apply no protocol rule: the protocol version's
    name only, not its text and parsed definition (some 20 kB a row, the same for every
    participant). Anything that needs the definition later loads it once."""
    return sa.orm.joinedload(Participant.protocol_version, innerjoin=True).load_only(
        ProtocolVersion.code, ProtocolVersion.version, ProtocolVersion.title
    )


def participant_page(
    db: Session, user: User, flt: ParticipantFilter, page: int, per_page: int
) -> Page:
    query = visible_to(user)
    if flt.state:
        query = query.where(Participant.state == flt.state)
    if flt.site:
        query = query.join(Site, Site.id == Participant.site_id).where(
            Site.code == flt.site.upper()
        )
    if flt.search:
        query = query.where(
            Participant.study_id.contains(flt.search.strip().upper(), autoescape=True)
        )
    total = db.scalar(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())) or 0
    items = list(
        db.scalars(
            query.options(without_protocol_text())
            .order_by(Participant.study_id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )
    return Page(items=items, total=total, page=page, per_page=per_page)


def counts_by_state(db: Session, user: User) -> dict[str, int]:
    rows = db.execute(
        sa.select(Participant.state, sa.func.count())
        .where(*visibility(user))
        .group_by(Participant.state)
    )
    counts = {state.value: 0 for state in State}
    counts.update({state: count for state, count in rows})
    return counts


def answers_of(db: Session, participant_id: int) -> list[ChecklistAnswer]:
    return list(
        db.scalars(
            sa.select(ChecklistAnswer).where(ChecklistAnswer.participant_id == participant_id)
        )
    )


def current_assessments(db: Session, participant_id: int) -> list[ReviewAssessment]:
    return list(
        db.scalars(
            sa.select(ReviewAssessment)
            .where(
                ReviewAssessment.participant_id == participant_id,
                ReviewAssessment.voided_at.is_(None),
            )
            .order_by(ReviewAssessment.assessed_at)
        )
    )


def signatures_of(db: Session, participant_id: int) -> list[ChecklistSignature]:
    return list(
        db.scalars(
            sa.select(ChecklistSignature)
            .where(ChecklistSignature.participant_id == participant_id)
            .order_by(ChecklistSignature.signed_at.desc(), ChecklistSignature.id.desc())
        )
    )


def consents_of(db: Session, participant_id: int) -> list[Consent]:
    return list(
        db.scalars(
            sa.select(Consent)
            .where(Consent.participant_id == participant_id)
            .order_by(Consent.recorded_at)
        )
    )


def transitions_of(db: Session, participant_id: int) -> list[TransitionEvent]:
    return list(
        db.scalars(
            sa.select(TransitionEvent)
            .where(TransitionEvent.participant_id == participant_id)
            .order_by(TransitionEvent.version_after)
        )
    )


def assigned_therapists(db: Session, participant_id: int) -> list[User]:
    return list(
        db.scalars(
            sa.select(User)
            .join(TherapistAssignment, TherapistAssignment.user_id == User.id)
            .where(
                TherapistAssignment.participant_id == participant_id,
                TherapistAssignment.ended_at.is_(None),
            )
            .order_by(User.username)
        )
    )


def therapists_of_site(db: Session, site_id: int) -> list[User]:
    return list(
        db.scalars(
            sa.select(User)
            .where(
                User.site_id == site_id, User.role == Role.THERAPIST.value, User.is_active.is_(True)
            )
            .order_by(User.username)
        )
    )


@dataclass(frozen=True)
class People:
    """The users a page shows: those its records name, the site's active therapists (the
    choices of its forms) and, for a participant's page, the therapists assigned."""

    by_id: dict[int, User] = field(default_factory=dict)
    site_therapists: list[User] = field(default_factory=list)
    assigned: list[User] = field(default_factory=list)


def people_of_page(
    db: Session, site_id: int, ids: set[int | None], participant_id: int | None = None
) -> People:
    """Every user a page needs, in one query instead of one per purpose."""
    wanted = {i for i in ids if i is not None}
    site_therapist = sa.and_(
        User.site_id == site_id, User.role == Role.THERAPIST.value, User.is_active.is_(True)
    )
    assigned: sa.ColumnElement[bool] = sa.false()
    if participant_id is not None:
        assigned = sa.exists().where(
            TherapistAssignment.participant_id == participant_id,
            TherapistAssignment.user_id == User.id,
            TherapistAssignment.ended_at.is_(None),
        )
    conditions = [site_therapist, assigned]
    if wanted:
        conditions.append(User.id.in_(wanted))
    rows = db.execute(
        sa.select(User, site_therapist.label("choice"), assigned.label("assigned"))
        .where(sa.or_(*conditions))
        .order_by(User.username)
    ).all()
    return People(
        by_id={user.id: user for user, _, _ in rows},
        site_therapists=[user for user, choice, _ in rows if choice],
        assigned=[user for user, _, is_assigned in rows if is_assigned],
    )


def transitions_with_deviations(
    db: Session, participant_id: int
) -> tuple[list[TransitionEvent], dict[int, list[ProtocolDeviation]]]:
    """The participant's transitions in order and the deviations recorded with each, in one
    query."""
    rows = db.execute(
        sa.select(TransitionEvent, ProtocolDeviation)
        .outerjoin(ProtocolDeviation, ProtocolDeviation.transition_event_id == TransitionEvent.id)
        .where(TransitionEvent.participant_id == participant_id)
        .order_by(TransitionEvent.version_after, ProtocolDeviation.occurred_at)
    ).all()
    events: dict[int, TransitionEvent] = {}
    deviations: dict[int, list[ProtocolDeviation]] = {}
    for event, deviation in rows:
        events.setdefault(event.id, event)
        if deviation is not None:
            deviations.setdefault(event.id, []).append(deviation)
    return list(events.values()), deviations


def users_by_id(db: Session, ids: set[int | None]) -> dict[int, User]:
    """The people named on a page's records, in one query."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {u.id: u for u in db.scalars(sa.select(User).where(User.id.in_(wanted)))}


def enrolled_by_version(db: Session) -> dict[int, int]:
    """How many participants were enrolled under each protocol version."""
    rows = db.execute(
        sa.select(Participant.protocol_version_id, sa.func.count()).group_by(
            Participant.protocol_version_id
        )
    )
    return {version_id: count for version_id, count in rows}
