"""Randomisation and blinding (SPEC §11): the statistician's list, randomising a participant
once and race-safe, emergency unblinding, blinding-integrity guesses, the study's unblinding.

The audit trail records every act with its reason, but never an arm, and never a list's seed
(from the seed and the generator anyone could rebuild the list): a list is on record by its
content hash."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, record_event
from tracker.auth.models import User
from tracker.auth.services import check_password
from tracker.db import utcnow
from tracker.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RuleViolation
from tracker.outcomes.models import Assessment
from tracker.participants.models import Participant
from tracker.participants.recording import require_version, text_field
from tracker.protocol import ProtocolDefinition, Role, State
from tracker.protocol.randomisation import (
    UNSURE,
    Arm,
    ListEntry,
    RandomisationDesign,
    StratumFactor,
    all_strata,
    generate_list,
    list_problems,
    stratum_code,
)
from tracker.randomisation import queries
from tracker.randomisation.models import (
    BlindingGuess,
    EmergencyUnblinding,
    RandomisationEntry,
    RandomisationList,
    StudyUnblinding,
)
from tracker.sessions.models import TherapySession
from tracker.sites.models import Site
from tracker.study.models import ProtocolVersion, definition_of

LIST_COLUMNS = ("stratum", "position", "block", "block_size", "arm")
MAX_CONFIDENCE = 5


def _design(version: ProtocolVersion) -> tuple[ProtocolDefinition, RandomisationDesign]:
    protocol = definition_of(version)
    if protocol.randomisation is None:
        raise RuleViolation(
            f"{protocol.code} v{protocol.version} does not randomise: it has no [randomisation]."
        )
    return protocol, protocol.randomisation


def _require(actor: Actor, *roles: Role, what: str) -> None:
    if actor.role not in {r.value for r in roles} | {"system"}:
        allowed = " or ".join(r.value for r in roles)
        raise PermissionDenied(f"Only the {allowed} {what}.")


def list_hash(entries: Sequence[ListEntry]) -> str:
    """SHA-256 of the list as CSV lines in stratum and position order: the same list, however
    it was written or generated, has the same hash."""
    lines = [
        f"{e.stratum},{e.position},{e.block},{e.block_size},{e.arm}"
        for e in sorted(entries, key=lambda e: (e.stratum, e.position))
    ]
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def baseline_bands(protocol: ProtocolDefinition) -> list[str]:
    """The labels of the primary instrument's bands: the values of the baseline-band factor."""
    assert protocol.outcomes is not None
    return [b.label for b in protocol.instrument(protocol.outcomes.primary_instrument).bands]


def study_strata(
    db: Session, protocol: ProtocolDefinition, design: RandomisationDesign
) -> list[str]:
    sites = list(db.scalars(sa.select(Site.code).order_by(Site.code)))
    bands = baseline_bands(protocol) if StratumFactor.BASELINE_BAND in design.strata else []
    return all_strata(design, sites, bands)


def store_list(
    db: Session,
    actor: Actor,
    version: ProtocolVersion,
    entries: Sequence[ListEntry],
    *,
    source: str,
    seed: int | None = None,
    per_stratum: int | None = None,
) -> RandomisationList:
    """Store a list for ``version`` (statistician only). Refused with every reason when it
    does not fit the protocol's design, and while the list in use has allocations (an
    allocation is never moved to another list)."""
    _require(actor, Role.STATISTICIAN, what="generates or imports the randomisation list")
    _, design = _design(version)
    problems = list_problems(design, entries)
    if not entries:
        problems.append("The list has no entries.")
    if problems:
        raise RuleViolation(
            "The randomisation list cannot be used: " + " ".join(problems), problems
        )
    current = queries.active_list(db, version.id)
    if current is not None and queries.used_entries(db, current.id):
        raise Conflict(
            f"The list in use for {version.code} v{version.version} has allocations; it is "
            "not replaced."
        )
    assert actor.user_id is not None
    row = RandomisationList(
        protocol_version_id=version.id,
        source=source,
        seed=seed,
        per_stratum=per_stratum,
        entries_count=len(entries),
        content_hash=list_hash(entries),
        created_by_id=actor.user_id,
    )
    db.add(row)
    db.flush()
    ordered = sorted(entries, key=lambda e: (e.stratum, e.position))
    db.execute(
        sa.insert(RandomisationEntry),
        [
            {
                "list_id": row.id,
                "stratum": e.stratum,
                "position": e.position,
                "block": e.block,
                "block_size": e.block_size,
                "arm": e.arm,
                # Numbers in list order carry no arm; they identify the entry to the pharmacy.
                "randomisation_number": f"R{row.id:02d}-{index:05d}",
            }
            for index, e in enumerate(ordered, start=1)
        ],
    )
    record_event(
        db,
        actor,
        "randomisation.list_store",
        "randomisation_list",
        str(row.id),
        new={
            "protocol": f"{version.code} v{version.version}",
            "source": source,
            "entries": len(entries),
            "strata": len({e.stratum for e in entries}),
            "content_hash": row.content_hash,
        },
    )
    return row


def generate_for(
    db: Session, actor: Actor, version: ProtocolVersion, *, per_stratum: int, seed: int
) -> RandomisationList:
    """Generate and store a list over every stratum of the study (each site, each band)."""
    _require(actor, Role.STATISTICIAN, what="generates or imports the randomisation list")
    protocol, design = _design(version)
    if per_stratum < 1 or per_stratum > 10_000:
        raise InvalidInput("--per-stratum must be 1 to 10,000.")
    strata = study_strata(db, protocol, design)
    if not strata:
        raise RuleViolation("The study has no sites yet; add them before generating the list.")
    entries = generate_list(design, strata, per_stratum, seed)
    return store_list(
        db, actor, version, entries, source="generated", seed=seed, per_stratum=per_stratum
    )


def parse_list_csv(text: str) -> list[ListEntry]:
    """Entries of an imported CSV (columns ``stratum,position,block,block_size,arm``); every
    unreadable line named."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or set(LIST_COLUMNS) - set(reader.fieldnames):
        raise InvalidInput(f"The list needs the columns {', '.join(LIST_COLUMNS)}.")
    entries, problems = [], []
    for number, line in enumerate(reader, start=2):
        try:
            entries.append(
                ListEntry(
                    line["stratum"].strip(),
                    int(line["position"]),
                    int(line["block"]),
                    int(line["block_size"]),
                    line["arm"].strip(),
                )
            )
        except (TypeError, ValueError):
            problems.append(f"Line {number}: position, block and block_size must be whole numbers.")
    if problems:
        raise InvalidInput(" ".join(problems[:20]), problems)
    return entries


def import_list(
    db: Session, actor: Actor, version: ProtocolVersion, text: str
) -> RandomisationList:
    _require(actor, Role.STATISTICIAN, what="generates or imports the randomisation list")
    protocol, design = _design(version)
    entries = parse_list_csv(text)
    known = set(study_strata(db, protocol, design))
    unknown = sorted({e.stratum for e in entries} - known)
    if unknown:
        raise RuleViolation(
            "The list names strata the study does not have: " + ", ".join(unknown[:10]),
            [f"unknown stratum {s!r}" for s in unknown],
        )
    return store_list(db, actor, version, entries, source="imported")


def stratum_of(db: Session, participant: Participant, protocol: ProtocolDefinition) -> str:
    """The participant's stratum; refused, naming what is missing, before the baseline."""
    design = protocol.randomisation
    assert design is not None
    band = None
    if StratumFactor.BASELINE_BAND in design.strata:
        assert protocol.outcomes is not None
        rules = protocol.outcomes
        band = db.scalar(
            sa.select(Assessment.band).where(
                Assessment.participant_id == participant.id,
                Assessment.timepoint == rules.baseline_timepoint,
                Assessment.instrument == rules.primary_instrument,
            )
        )
        if band is None:
            raise RuleViolation(
                f"{participant.study_id} cannot be randomised yet: the stratum needs the baseline "
                f"{rules.primary_instrument} band, and no baseline {rules.primary_instrument} is "
                "recorded.",
                ["baseline_missing"],
            )
    return stratum_code(design, site=participant.site.code, baseline_band=band)


def randomise(
    db: Session, actor: Actor, participant: Participant, *, expected_version: int
) -> RandomisationEntry:
    """Allocate the next unused entry of the participant's stratum, exactly once (SPEC §11).
    The list's row is locked first, so concurrent randomisations on any worker or database
    take their entries one after another; the unique participant column makes a second
    allocation impossible even so."""
    _require(actor, Role.COORDINATOR, Role.INVESTIGATOR, what="randomises a participant")
    protocol = definition_of(participant.protocol_version)
    if protocol.randomisation is None:
        raise RuleViolation(
            f"{participant.study_id}'s protocol ({protocol.code} v{protocol.version}) does not "
            "randomise."
        )
    existing = queries.allocation_of(db, participant.id)
    if existing is not None:
        raise Conflict(
            f"{participant.study_id} is already randomised "
            f"({existing.randomisation_number}, {existing.randomised_at:%Y-%m-%d %H:%M} UTC); a "
            "participant is randomised once."
        )
    if participant.state != State.PREPARATION:
        raise RuleViolation(
            f"{participant.study_id} is in {participant.state.replace('_', ' ')}; a participant "
            "is randomised in preparation, once eligible, signed and consented.",
            ["wrong_state"],
        )
    require_version(participant, expected_version)
    stratum = stratum_of(db, participant, protocol)
    current = queries.active_list(db, participant.protocol_version_id)
    if current is None:
        raise RuleViolation(
            "No randomisation list is loaded for this protocol; the statistician generates or "
            "imports one.",
            ["no_list"],
        )
    # Serialise allocations on this list (PostgreSQL: a row lock until commit; SQLite: the
    # request's write lock already does).
    db.execute(
        sa.select(RandomisationList.id).where(RandomisationList.id == current.id).with_for_update()
    )
    entry = db.scalar(
        sa.select(RandomisationEntry)
        .where(
            RandomisationEntry.list_id == current.id,
            RandomisationEntry.stratum == stratum,
            RandomisationEntry.participant_id.is_(None),
        )
        .order_by(RandomisationEntry.position)
        .limit(1)
    )
    if entry is None:
        raise RuleViolation(
            f"The randomisation list has no unused entry left in stratum {stratum}; the "
            "statistician extends it.",
            ["stratum_exhausted"],
        )
    now = utcnow()
    bumped = db.execute(
        sa.update(Participant)
        .where(Participant.id == participant.id, Participant.version == expected_version)
        .values(version=expected_version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if bumped.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            f"{participant.study_id} was changed by someone else a moment ago; reload and "
            "decide again.",
            [{"expected_version": expected_version}],
        )
    # The entry is taken only while unused: with the lock this always holds; without it a
    # second writer would fail here instead of overwriting another participant's allocation.
    taken = db.execute(
        sa.update(RandomisationEntry)
        .where(RandomisationEntry.id == entry.id, RandomisationEntry.participant_id.is_(None))
        .values(participant_id=participant.id, allocated_at=now, allocated_by_id=actor.user_id)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("The entry was taken by another randomisation a moment ago; try again.")
    db.refresh(entry)
    db.refresh(participant)
    record_event(
        db,
        actor,
        "participant.randomise",
        "participant",
        participant.study_id,
        new={"randomisation_number": entry.randomisation_number, "stratum": stratum},
    )
    return entry


def emergency_unblind(
    db: Session, actor: Actor, user: User, participant: Participant, *, password: str, reason: str
) -> Arm:
    """Reveal the arm to the investigator who asks, after they re-enter their password, for
    the reason they give; on record (C18) and on the participant page."""
    _require(actor, Role.INVESTIGATOR, what="unblinds a participant in an emergency")
    problems: list[str] = []
    reason_text = text_field(reason, "The reason", problems, required=True)
    if problems:
        raise InvalidInput(" ".join(problems), problems)
    arm_code = queries.arm_of(db, participant.id)
    if arm_code is None:
        raise RuleViolation(f"{participant.study_id} is not randomised; there is no arm to reveal.")
    check_password(db, user, actor, password, "emergency unblinding")
    db.add(EmergencyUnblinding(participant_id=participant.id, user_id=user.id, reason=reason_text))
    db.flush()
    record_event(
        db,
        actor,
        "participant.emergency_unblind",
        "participant",
        participant.study_id,
        new={"unblinded_by": user.username},
        reason=reason_text,
    )
    _, design = _design(participant.protocol_version)
    return design.arm(arm_code)


def record_guess(
    db: Session,
    actor: Actor,
    participant: Participant,
    *,
    respondent: str,
    guess: str,
    confidence: int,
    session_id: int | None = None,
    timepoint: str | None = None,
) -> BlindingGuess:
    """A blinding-integrity guess after a dosing session or at the primary endpoint: by the
    participant (entered by their team), a therapist present at the session (their own), or
    the rater (their own)."""
    _require(
        actor,
        Role.COORDINATOR,
        Role.THERAPIST,
        Role.INVESTIGATOR,
        Role.RATER,
        what="records a blinding guess",
    )
    protocol, design = _design(participant.protocol_version)
    problems = []
    if respondent not in ("participant", "therapist", "rater"):
        problems.append("The respondent must be participant, therapist or rater.")
    if respondent in ("therapist", "rater") and actor.role != respondent:
        problems.append(f"A {respondent}'s guess is recorded by that {respondent}.")
    if respondent == "participant" and actor.role == Role.RATER:
        problems.append("The participant's guess is entered by their study team.")
    if guess != UNSURE and guess not in design.arm_codes:
        problems.append(f"The guess must be one of {', '.join(design.arm_codes)} or {UNSURE}.")
    if not isinstance(confidence, int) or not 1 <= confidence <= MAX_CONFIDENCE:
        problems.append(f"The confidence must be 1 to {MAX_CONFIDENCE}.")
    if (session_id is None) == (timepoint is None):
        problems.append("Name either the dosing session or the timepoint of the guess.")
    if timepoint is not None and (
        protocol.outcomes is None or timepoint != protocol.outcomes.primary_timepoint
    ):
        problems.append("A guess at a timepoint is made at the primary endpoint.")
    if session_id is not None:
        session = db.get(TherapySession, session_id)
        if session is None or session.participant_id != participant.id:
            raise NotFound(f"{participant.study_id} has no session {session_id}.")
        if session.kind != "dosing" or session.status != "completed":
            problems.append("A guess after a session follows a completed dosing session.")
        if respondent == "therapist" and actor.user_id not in {t.id for t in session.therapists}:
            problems.append("A therapist's guess is made by a therapist present at the session.")
        if respondent == "rater":
            problems.append("The rater guesses at the primary endpoint, not after a session.")
    if problems:
        raise RuleViolation(" ".join(problems), problems)
    if queries.arm_of(db, participant.id) is None:
        raise RuleViolation(f"{participant.study_id} is not randomised.")
    duplicate = db.scalar(
        sa.select(BlindingGuess.id).where(
            BlindingGuess.participant_id == participant.id,
            BlindingGuess.respondent == respondent,
            BlindingGuess.respondent_user_id.is_(None)
            if respondent == "participant"
            else BlindingGuess.respondent_user_id == actor.user_id,
            BlindingGuess.session_id.is_(None)
            if session_id is None
            else BlindingGuess.session_id == session_id,
            BlindingGuess.timepoint.is_(None)
            if timepoint is None
            else BlindingGuess.timepoint == timepoint,
        )
    )
    if duplicate is not None:
        raise Conflict("This guess is already recorded; a guess is recorded once.")
    assert actor.user_id is not None
    row = BlindingGuess(
        participant_id=participant.id,
        respondent=respondent,
        respondent_user_id=None if respondent == "participant" else actor.user_id,
        session_id=session_id,
        timepoint=timepoint,
        guess=guess,
        confidence=confidence,
        recorded_by_id=actor.user_id,
    )
    db.add(row)
    db.flush()
    # The guess itself is not on the trail: read with the allocation it would hint at it.
    record_event(
        db,
        actor,
        "participant.blinding_guess",
        "participant",
        participant.study_id,
        new={"respondent": respondent, "session": session_id, "timepoint": timepoint},
    )
    return row


def unblind_study(
    db: Session,
    actor: Actor,
    *,
    admin: User,
    admin_password: str,
    statistician: User,
    statistician_password: str,
    reason: str,
) -> StudyUnblinding:
    """Unblind the whole study: final. An admin and a statistician each re-enter their
    password; afterwards every role sees arms and the outcome reports are by arm."""
    problems: list[str] = []
    reason_text = text_field(reason, "The reason", problems, required=True)
    if admin.role != Role.ADMIN:
        problems.append(f"{admin.username} is not an admin.")
    if statistician.role != Role.STATISTICIAN:
        problems.append(f"{statistician.username} is not a statistician.")
    if problems:
        raise InvalidInput(" ".join(problems), problems)
    done = queries.study_unblinded(db)
    if done is not None:
        raise Conflict(
            f"The study was unblinded on {done.unblinded_at:%Y-%m-%d %H:%M} UTC; it is final."
        )
    check_password(db, admin, actor, admin_password, "study unblinding")
    check_password(db, statistician, actor, statistician_password, "study unblinding")
    row = StudyUnblinding(
        id=1, admin_id=admin.id, statistician_id=statistician.id, reason=reason_text
    )
    db.add(row)
    db.flush()
    record_event(
        db,
        actor,
        "study.unblind",
        "study",
        None,
        new={"admin": admin.username, "statistician": statistician.username},
        reason=reason_text,
    )
    return row


def randomised_at(entry: RandomisationEntry) -> datetime:
    assert entry.allocated_at is not None
    return entry.allocated_at
