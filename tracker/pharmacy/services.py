"""The investigational product's record at a site (SPEC §12): registration, storage, lots and
every ledger entry, each held to the core's rules under a lock on the lot, audited in the
same transaction.

The audit trail of an arm-bound lot never names its product or lot number (an auditor who
reads the trail is blinded): the event carries their SHA-256 instead, as a randomisation list
is on record by its hash."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, record_event
from tracker.auth.models import User
from tracker.auth.services import check_password
from tracker.db import utcnow
from tracker.errors import InvalidInput, NotFound, PermissionDenied, RuleViolation
from tracker.participants.models import Participant
from tracker.participants.recording import not_future, raise_problems, text_field
from tracker.pharmacy import queries
from tracker.pharmacy.models import (
    CountExplanation,
    DeaRegistration,
    DrugLot,
    EntryWitness,
    LedgerEntry,
    LossReport,
    StorageLocation,
)
from tracker.protocol import Role, SessionKind, SessionStatus
from tracker.protocol.accountability import (
    DESTRUCTION_WITNESSES,
    EntryKind,
    balance,
    correction_problems,
    dea_number_problems,
    dispensing_number,
    expiry_problems,
    return_problems,
    units_problems,
)
from tracker.randomisation.queries import arm_of
from tracker.sessions.models import TherapySession
from tracker.sites.models import Site
from tracker.study.models import definition_of

WITNESS_ROLES = frozenset({Role.PHARMACIST, Role.INVESTIGATOR, Role.COORDINATOR})
LOSS_REPORTS = {"initial_notice": "initial notice", "dea_form_106": "DEA Form 106"}
MAX_REFERENCE = 40


def _require_pharmacist(actor: Actor, site_id: int | None, user: User | None = None) -> None:
    if actor.role == "system":
        return
    if actor.role != Role.PHARMACIST.value:
        raise PermissionDenied("Only the site's pharmacist records the investigational product.")
    if user is not None and user.site_id != site_id:
        raise PermissionDenied("A pharmacist records the product of their own site only.")


def _site(db: Session, code: str) -> Site:
    site = db.scalar(sa.select(Site).where(Site.code == code))
    if site is None:
        raise NotFound(f"No site {code!r}.")
    return site


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def _reference(value: str | None, field: str, problems: list[str]) -> str | None:
    return text_field(value, field, problems, limit=MAX_REFERENCE)


def register_site(
    db: Session,
    actor: Actor,
    site_code: str,
    *,
    number: str,
    registrant: str,
    expires_on: date,
) -> DeaRegistration:
    """Record the site's DEA registration (an admin, or the site's pharmacist). From then on
    a dose at the site must name a dispensing."""
    site = _site(db, site_code)
    if actor.role not in ("admin", "system", Role.PHARMACIST.value):
        raise PermissionDenied("Only an administrator or the site's pharmacist records it.")
    if actor.role == Role.PHARMACIST.value:
        user = db.get(User, actor.user_id)
        _require_pharmacist(actor, site.id, user)
    problems: list[str] = []
    number = (number or "").strip().upper()
    problems += dea_number_problems(number)
    name = text_field(registrant, "The registrant", problems, limit=200)
    if expires_on <= utcnow().date():
        problems.append(f"The registration expired on {expires_on:%Y-%m-%d}.")
    raise_problems(problems, "The registration was not recorded")
    row = DeaRegistration(
        site_id=site.id,
        number=number,
        registrant=name,
        expires_on=expires_on,
        recorded_by_id=actor.user_id,
    )
    db.add(row)
    db.flush()
    record_event(
        db,
        actor,
        "inventory.registration",
        "site",
        site.id,
        new={"site": site.code, "number": number, "registrant": name, "expires_on": expires_on},
    )
    return row


def add_storage(
    db: Session,
    actor: Actor,
    user: User | None,
    site_code: str,
    *,
    name: str,
    description: str | None,
) -> StorageLocation:
    site = _site(db, site_code)
    _require_pharmacist(actor, site.id, user)
    problems: list[str] = []
    clean = text_field(name, "The name", problems, limit=120)
    note = text_field(description, "The description", problems, required=False)
    if clean and any(s.name == clean for s in queries.storage_of(db, site.id)):
        problems.append(f"{site.code} already has a storage location named {clean!r}.")
    raise_problems(problems, "The storage location was not added")
    row = StorageLocation(
        site_id=site.id, name=clean, description=note, created_by_id=actor.user_id
    )
    db.add(row)
    db.flush()
    record_event(
        db,
        actor,
        "inventory.storage",
        "storage_location",
        row.id,
        new={"site": site.code, "name": clean},
    )
    return row


def create_lot(
    db: Session,
    actor: Actor,
    user: User | None,
    *,
    site: str,
    product: str,
    lot: str,
    strength_mg: float,
    expires_on: date,
    arm: str | None = None,
    storage: str | None = None,
) -> DrugLot:
    """A new lot at a site with a DEA registration (the pharmacist of that site)."""
    site_row = _site(db, site)
    _require_pharmacist(actor, site_row.id, user)
    problems: list[str] = []
    name = text_field(product, "The product", problems, limit=200)
    number = text_field(lot, "The lot number", problems, limit=60)
    if not strength_mg or strength_mg <= 0:
        problems.append("The strength per unit is more than 0 mg.")
    if queries.registration_of(db, site_row.id) is None:
        problems.append(
            f"{site_row.code} has no DEA registration on file: record it before any lot."
        )
    arm = (arm or "").strip() or None
    if arm is not None and arm not in queries.arm_labels(db):
        problems.append(f"{arm!r} is not an arm of any randomised protocol.")
    location = None
    if storage:
        location = next((s for s in queries.storage_of(db, site_row.id) if s.name == storage), None)
        if location is None:
            problems.append(f"{site_row.code} has no storage location named {storage!r}.")
    if (
        name
        and number
        and db.scalar(
            sa.select(DrugLot.id).where(
                DrugLot.site_id == site_row.id,
                DrugLot.product == name,
                DrugLot.lot_number == number,
            )
        )
    ):
        problems.append(f"Lot {number} of {name} is already on file at {site_row.code}.")
    raise_problems(problems, "The lot was not added")
    row = DrugLot(
        site_id=site_row.id,
        product=name,
        lot_number=number,
        strength_mg=float(strength_mg),
        expires_on=expires_on,
        arm=arm,
        storage_location_id=location.id if location else None,
        created_by_id=actor.user_id,
    )
    db.add(row)
    db.flush()
    described: dict[str, Any] = (
        {"blinded": True, "content_hash": _fingerprint(name, number, arm)}
        if arm
        else {"product": name, "lot": number}
    )
    record_event(
        db,
        actor,
        "inventory.lot.create",
        "lot",
        row.id,
        new={
            "site": site_row.code,
            **described,
            "strength_mg": row.strength_mg,
            "expires_on": expires_on,
            "storage": storage,
        },
    )
    return row


@dataclass(frozen=True)
class Witness:
    username: str
    password: str


def _witness_user(db: Session, lot: DrugLot, username: str, problems: list[str]) -> User | None:
    user = db.scalar(sa.select(User).where(User.username == (username or "").strip()))
    if user is None or not user.is_active:
        problems.append(f"No active user {username!r} to witness.")
        return None
    if user.site_id != lot.site_id or user.role not in WITNESS_ROLES:
        problems.append(
            f"{username} cannot witness: a witness is a pharmacist, investigator or coordinator "
            "of the lot's site."
        )
        return None
    return user


def _dispensing_session(
    db: Session, lot: DrugLot, session_id: int | None, problems: list[str]
) -> tuple[TherapySession, Participant] | None:
    row = db.get(TherapySession, session_id) if session_id else None
    if row is None:
        problems.append("Choose the dosing session the dispensing is for.")
        return None
    # The session cannot be closed while its product is being dispensed (and the other way).
    db.execute(sa.select(TherapySession.id).where(TherapySession.id == row.id).with_for_update())
    db.refresh(row, attribute_names=["status"])
    participant = db.get(Participant, row.participant_id)
    assert participant is not None
    if participant.site_id != lot.site_id:
        problems.append(f"Session {row.id} is not at this lot's site.")
    if row.kind != SessionKind.DOSING:
        problems.append(
            f"Session {row.id} is a {row.kind} session: only a dosing session takes product."
        )
    if row.status in (SessionStatus.CANCELLED, SessionStatus.MISSED, SessionStatus.COMPLETED):
        problems.append(f"Session {row.id} is {row.status}.")
    protocol = definition_of(participant.protocol_version)
    if protocol.randomisation is not None:
        arm = arm_of(db, participant.id)
        if arm is None:
            problems.append(f"{participant.study_id} is not randomised yet: nothing is dispensed.")
        elif lot.arm != arm:
            problems.append(
                f"This lot is not the product {participant.study_id} was allocated: dispense "
                "from a lot of their arm."
            )
    elif lot.arm is not None:
        problems.append(
            f"This lot is a blinded product; {participant.study_id}'s protocol does not randomise."
        )
    return row, participant


def record_entry(
    db: Session,
    actor: Actor,
    user: User | None,
    lot: DrugLot,
    *,
    kind: str,
    occurred_at: datetime,
    units: int | None = None,
    reason: str | None = None,
    session_id: int | None = None,
    dispensing_id: int | None = None,
    supplier: str | None = None,
    dea_form_222: str | None = None,
    witness: str | None = None,
    dea_form_41: str | None = None,
    witnesses: Sequence[Witness] = (),
    description: str | None = None,
    counted_units: int | None = None,
    explanation: str | None = None,
    reverses: int | None = None,
) -> LedgerEntry:
    """Append one entry to the lot's ledger, held to every rule of SPEC §12 at once: the
    balance never below zero (a refusal gives the figures), a return no more than the
    dispensing's unused units, a destruction signed by two witnesses with their passwords,
    a correction that reverses one entry with a reason."""
    _require_pharmacist(actor, lot.site_id, user)
    try:
        entry_kind = EntryKind(kind)
    except ValueError:
        raise InvalidInput(
            f"kind is one of {', '.join(k.value for k in EntryKind)}, not {kind!r}."
        ) from None
    problems: list[str] = []
    not_future(occurred_at, "The time it happened", problems)
    fields: dict[str, Any] = {}
    signers: list[tuple[User, str]] = []
    if entry_kind is EntryKind.COUNT:
        if counted_units is None or counted_units < 0:
            problems.append("A count gives the units counted (0 or more).")
        units = counted_units if counted_units is not None else 0
    elif entry_kind is EntryKind.CORRECTION:
        fields["reason"] = text_field(reason, "The reason for the correction", problems)
        units = 0  # the reversed entry's, once it is found
    elif units is None:
        problems.append(f"A {entry_kind} gives its units.")
        units = 0
    if entry_kind is EntryKind.RECEIPT:
        fields["dea_form_222"] = _reference(dea_form_222, "The DEA Form 222 number", problems)
        fields["supplier"] = text_field(
            supplier, "The supplier", problems, required=False, limit=200
        )
        found = _witness_user(db, lot, witness or "", problems) if witness else None
        if not witness:
            problems.append("A receipt names its witness (a username).")
        elif found is not None and found.id == actor.user_id:
            problems.append("The witness of a receipt is someone other than who received it.")
        fields["witness_id"] = found.id if found else None
    elif entry_kind is EntryKind.DESTRUCTION:
        fields["dea_form_41"] = _reference(dea_form_41, "The DEA Form 41 reference", problems)
        names = [w.username.strip() for w in witnesses]
        if len(set(names)) < DESTRUCTION_WITNESSES:
            problems.append(
                f"A destruction is witnessed by {DESTRUCTION_WITNESSES} different people, "
                "each with their own password."
            )
        for w in witnesses:
            found = _witness_user(db, lot, w.username, problems)
            if found is not None:
                signers.append((found, w.password))
    elif entry_kind is EntryKind.LOSS:
        fields["description"] = text_field(
            description, "What was lost and how it was found", problems
        )
    note = (
        text_field(explanation, "The explanation", problems, required=False)
        if entry_kind is EntryKind.COUNT
        else None
    )
    raise_problems(problems, f"The {entry_kind} was not recorded")
    assert units is not None

    # Passwords before anything is written: a wrong one is audited and counts to the lockout.
    for signer, password in signers:
        check_password(db, signer, actor, password, "witnessed a destruction")
        if signer.password_temporary:
            raise RuleViolation(
                f"{signer.username}'s password was set by an administrator: they choose their "
                "own before they can sign.",
                ["A witness's password is temporary."],
            )

    # Two pharmacists dispensing the lot's last units cannot both pass the balance check.
    queries.lock_lot(db, lot.id)
    lines = queries.lines_of(db, lot.id)
    refusals = [*units_problems(entry_kind, units, lines)]
    refusals += expiry_problems(entry_kind, lot.expires_on, occurred_at)
    target_session = None
    if entry_kind is EntryKind.DISPENSING:
        found_session = _dispensing_session(db, lot, session_id, refusals)
        if found_session is not None:
            target_session = found_session[0]
            fields["session_id"] = target_session.id
    elif entry_kind is EntryKind.RETURN:
        use = queries.dispensing(db, dispensing_id) if dispensing_id else None
        if use is not None and (use.lot_id != lot.id or use.corrected):
            use = None
        refusals += return_problems(
            units, use.use if use else None, dispensing_number(dispensing_id or 0)
        )
        fields["dispensing_id"] = dispensing_id
    elif entry_kind is EntryKind.CORRECTION:
        target = next((line for line in lines if line.id == reverses), None)
        refusals += correction_problems(target, lines)
        if target is not None:
            units = target.units
            given = (
                queries.dispensing(db, target.id) if target.kind is EntryKind.DISPENSING else None
            )
            if given is not None and given.use.dosed_mg:
                refusals.append(
                    f"Dispensing {dispensing_number(target.id)} covers recorded doses: it is not "
                    "reversed."
                )
        fields["reverses_id"] = reverses
    if entry_kind is EntryKind.COUNT:
        fields["counted_units"] = counted_units
        fields["expected_units"] = balance(lines)
    if refusals:
        raise RuleViolation(f"The {entry_kind} is refused: " + " ".join(refusals), refusals)

    entry = LedgerEntry(
        lot_id=lot.id,
        kind=entry_kind.value,
        units=units,
        occurred_at=occurred_at,
        recorded_by_id=actor.user_id,
        **fields,
    )
    db.add(entry)
    db.flush()
    for signer, _ in signers:
        db.add(
            EntryWitness(
                entry_id=entry.id,
                user_id=signer.id,
                role=signer.role,
                printed_name=signer.printed_name,
                meaning=f"I witnessed the destruction of {units} units (DEA Form 41 "
                f"{fields['dea_form_41']})",
                content_hash=_fingerprint(
                    entry.id, lot.id, units, fields["dea_form_41"], occurred_at.isoformat()
                ),
            )
        )
    if note and fields.get("expected_units") != counted_units:
        db.add(CountExplanation(entry_id=entry.id, explanation=note, explained_by_id=actor.user_id))
    db.flush()
    audited = {
        # An arm-bound lot's id would sort the participants it was dispensed to by arm.
        **({"lot": lot.id} if lot.arm is None else {"blinded": True}),
        "units": units,
        "occurred_at": occurred_at,
        **{k: v for k, v in fields.items() if v is not None},
    }
    if signers:
        audited["witnesses"] = [s.username for s, _ in signers]
    record_event(db, actor, f"inventory.{entry_kind.value}", "ledger_entry", entry.id, new=audited)
    return entry


def get_entry(
    db: Session, user: User, entry_id: int, kind: EntryKind
) -> tuple[LedgerEntry, DrugLot]:
    """The entry, if it is of ``kind`` and at the user's site: any other answers as missing,
    so an entry's number never tells a blinded reader which lot it belongs to."""
    entry = db.get(LedgerEntry, entry_id)
    if entry is None or entry.kind != kind:
        raise NotFound(f"No {kind} entry {entry_id}.")
    return entry, queries.get_lot(db, user, entry.lot_id)


def report_loss(
    db: Session,
    actor: Actor,
    user: User | None,
    entry: LedgerEntry,
    *,
    report: str,
    reference: str,
    reported_at: datetime,
) -> LossReport:
    """The initial notice or the DEA Form 106 of a loss, each once."""
    lot = db.get(DrugLot, entry.lot_id)
    assert lot is not None
    _require_pharmacist(actor, lot.site_id, user)
    problems: list[str] = []
    if entry.kind != EntryKind.LOSS:
        problems.append(f"Entry #{entry.id} is a {entry.kind}, not a loss.")
    if report not in LOSS_REPORTS:
        problems.append(f"report is initial_notice or dea_form_106, not {report!r}.")
    ref = text_field(reference, "The reference", problems, limit=80)
    not_future(reported_at, "The time it was sent", problems)
    if reported_at < entry.occurred_at:
        problems.append("A report is sent after the loss was discovered.")
    if db.scalar(
        sa.select(LossReport.id).where(LossReport.entry_id == entry.id, LossReport.report == report)
    ):
        problems.append(f"The {LOSS_REPORTS.get(report, report)} of loss #{entry.id} is on file.")
    raise_problems(problems, "The report was not recorded")
    row = LossReport(
        entry_id=entry.id,
        report=report,
        reference=ref,
        reported_at=reported_at,
        recorded_by_id=actor.user_id,
    )
    db.add(row)
    db.flush()
    record_event(
        db,
        actor,
        "inventory.loss_report",
        "ledger_entry",
        entry.id,
        new={"report": report, "reference": ref, "reported_at": reported_at},
    )
    return row


def explain_count(
    db: Session, actor: Actor, user: User | None, entry: LedgerEntry, *, explanation: str
) -> CountExplanation:
    """Why a count differed from the book balance (once; the pharmacist of the site or an
    investigator of it)."""
    lot = db.get(DrugLot, entry.lot_id)
    assert lot is not None
    if actor.role == Role.INVESTIGATOR.value:
        if user is None or user.site_id != lot.site_id:
            raise PermissionDenied("An investigator explains the counts of their own site.")
    else:
        _require_pharmacist(actor, lot.site_id, user)
    problems: list[str] = []
    text = text_field(explanation, "The explanation", problems)
    if entry.kind != EntryKind.COUNT:
        problems.append(f"Entry #{entry.id} is a {entry.kind}, not a count.")
    elif entry.counted_units == entry.expected_units:
        problems.append(f"Count #{entry.id} agreed with the ledger: there is nothing to explain.")
    if db.scalar(sa.select(CountExplanation.id).where(CountExplanation.entry_id == entry.id)):
        problems.append(f"Count #{entry.id} is explained already.")
    raise_problems(problems, "The explanation was not recorded")
    row = CountExplanation(entry_id=entry.id, explanation=text, explained_by_id=actor.user_id)
    db.add(row)
    db.flush()
    record_event(
        db, actor, "inventory.count.explain", "ledger_entry", entry.id, new={"explanation": text}
    )
    return row
