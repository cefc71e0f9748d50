"""A realistic study of any size, written with bulk inserts.

Realism comes from the real services: a handful of *template* participants are taken through
the protocol by ``tracker.histories`` (the same code the pages and the API call) in a private
in-memory SQLite database, one template per kind of history (every state, with and without a
serious adverse event, a screen failure, a withdrawal, side effects, assessed adverse events).
Speed comes from cloning: each of the N participants copies one template's rows, with new ids,
its own site, study id, team and a whole-day time shift, and every table is written in chunks
(Core ``insert()`` of lists of dicts on SQLite, ``COPY`` on PostgreSQL).

The audit trail is rebuilt as one chain: the cloned events of all participants are ordered by
time, numbered, and hashed in sequence with ``tracker.audit.chain.compute_hash``, so
``tracker audit verify`` accepts it.

Run it with ``tracker bench seed --participants N [--database-url URL]``, or
``python benchmarks/generate.py --participants N --database-url URL``.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tracker.models  # noqa: F401  (every table on Base.metadata)
from tracker import clock
from tracker.audit.chain import compute_hash
from tracker.audit.models import AuditEvent
from tracker.audit.services import Actor, head
from tracker.auth import passwords
from tracker.auth.models import User
from tracker.auth.services import create_user
from tracker.db import Base, canonical_json, create_engine
from tracker.histories import Team, protocol_history, run_one, screen
from tracker.outcome_histories import OutcomePlan, outcome_history
from tracker.participants.models import Participant
from tracker.participants.services import enrol_participant
from tracker.participants.transitions import apply_transition
from tracker.paths import FIXTURES
from tracker.protocol import CLOSED_STATES, State
from tracker.safety import services as safety_services
from tracker.sites.models import Site
from tracker.sites.services import create_site
from tracker.study.services import (
    activate_protocol,
    current_protocol_version,
    ensure_protocol_version,
)

BENCH_PASSWORD = "bench-password-0123"  # noqa: S105 - every generated user's password (benchmark data only)
CHUNK = 5000
TEMPLATE_ORIGIN_DAYS = 420  # templates start this many days before now
SEED_ACTOR = Actor.system("bench-seed")

# Tables cloned per participant, parents first. session_therapists has no id of its own.
TABLES = (
    "participants",
    "therapist_assignments",
    "rater_assignments",
    "assessments",
    "missed_timepoints",
    "checklist_answers",
    "review_assessments",
    "checklist_signatures",
    "consents",
    "transition_events",
    "protocol_deviations",
    "therapy_sessions",
    "session_therapists",
    "dose_administrations",
    "vital_sign_readings",
    "vital_sign_alerts",
    "session_effects",
    "side_effects",
    "adverse_events",
    "suicidality_screens",
    "pregnancy_tests",
    "notes",
)
# Foreign keys to rows of the same participant, renumbered with them.
OWN_KEYS = {
    "participant_id": "participants",
    "session_id": "therapy_sessions",
    "reading_id": "vital_sign_readings",
    "transition_event_id": "transition_events",
    "root_id": "notes",
}
USER_KEYS = {
    "user_id",
    "assigned_by_id",
    "answered_by_id",
    "assessed_by_id",
    "signer_id",
    "obtained_by_id",
    "actor_id",
    "approved_by_id",
    "created_by_id",
    "recorded_by_id",
    "justified_by_id",
    "acknowledged_by_id",
    "author_id",
}
# Ids inside audit values: (action prefix or "", key) -> the table they point into.
AUDIT_ID_KEYS = {
    ("assessment", "assessment"): "assessments",
    ("suicidality_screen", "id"): "suicidality_screens",
    ("adverse_event", "id"): "adverse_events",
    ("side_effect", "id"): "side_effects",
    ("", "note"): "notes",
    ("", "session"): "therapy_sessions",
    ("", "alert"): "vital_sign_alerts",
    ("", "signature_id"): "checklist_signatures",
}
AUDIT_ENTITY_TABLES = {
    "session": "therapy_sessions",
    "note": "notes",
    "adverse_event": "adverse_events",
    "side_effect": "side_effects",
}
ISO_MOMENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")
ISO_DAY = re.compile(r"^\d{4}-\d\d-\d\d$")
TEAM_SLOTS = ("coordinator", "investigator", "therapist_a", "therapist_b", "rater")
# The depression protocol's participants (SPEC §10) are followed up for a year after their last
# dosing: their templates start earlier, so that the longest history still ends before now.
OUTCOME_PROTOCOL_FILE = "mdma-mdd-v1.toml"
OUTCOME_TEMPLATE_ORIGIN_DAYS = 640


# --- templates: real histories through the services ------------------------------------------


def _outcome_protocol_text() -> str:
    return (FIXTURES / "protocols" / OUTCOME_PROTOCOL_FILE).read_text(encoding="utf-8")


def _extras(
    db: Session, team: Team, participant: Participant, side_effect: bool, adverse: bool
) -> None:
    """Records a history does not make by itself: a side effect, an assessed mild event (while
    the participant is open: a closed one takes no new record)."""
    if State(participant.state) in CLOSED_STATES:
        return
    if side_effect:
        safety_services.record_side_effect(
            db,
            team.as_therapist(),
            participant,
            term="Jaw clenching",
            severity="mild",
            onset_at=clock.now() - timedelta(hours=5),
            resolved_at=clock.now() - timedelta(hours=1),
        )
    if adverse:
        event = safety_services.record_adverse_event(
            db,
            team.as_therapist(),
            participant,
            term="Headache",
            grade=1,
            serious=False,
            serious_criteria=[],
            onset_at=clock.now() - timedelta(hours=8),
            description="Tension headache the evening after dosing; paracetamol given.",
        )
        safety_services.assess_adverse_event(
            db,
            team.as_investigator,
            event,
            relatedness="possible",
            expected=True,
            note="Listed in the investigator's brochure.",
        )


def _history(
    db: Session, team: Team, rng: random.Random, kind: str, sex: str, rater: User
) -> Iterator[datetime]:
    """One template history of ``kind`` (a stage of tracker.histories, a closing, or an
    outcome plan under the depression protocol)."""
    if kind in OUTCOME_KINDS:
        yield from outcome_history(db, team, rater, rng, OUTCOME_KINDS[kind])
        return
    if kind in ("screen_failed", "withdrawn"):
        participant = enrol_participant(
            db,
            team.as_coordinator,
            site=team.coordinator.site,
            sex=sex,
            year_of_birth=rng.randint(1962, 2001),
            therapists=[team.therapists[0].username],
        )
        yield clock.now() + timedelta(days=rng.randint(2, 5))
        if kind == "screen_failed":
            screen(db, team, participant, rng, yes={"bipolar_i": "Bipolar I since 2016"})
            yield clock.now() + timedelta(days=2)
            apply_transition(
                db,
                team.as_coordinator,
                participant,
                "fail_screening",
                expected_version=participant.version,
                reason="Exclusion: bipolar I disorder",
            )
            return
        screen(db, team, participant, rng, answered=12)
        yield clock.now() + timedelta(days=4)
        apply_transition(
            db,
            team.as_coordinator,
            participant,
            "withdraw",
            expected_version=participant.version,
            reason="Moved abroad; cannot attend the sessions.",
            withdrawal_category="participant_decision",
        )
        return
    stage, _, variant = kind.partition("+")
    history = protocol_history(
        db, team, rng, stage, serious_event_in_cycle=1 if variant == "sae" else None
    )
    yield from history
    if variant in ("side", "ae"):
        participant = db.scalar(sa.select(Participant).order_by(Participant.id.desc()))
        assert participant is not None
        _extras(db, team, participant, side_effect=True, adverse=variant == "ae")


# Kinds of history and how often each occurs in a generated study.
TEMPLATE_KINDS: dict[str, int] = {
    "enrolled": 4,
    "checklist_partial": 4,
    "awaiting_assessment": 3,
    "ready_to_confirm": 3,
    "preparation": 8,
    "dosing_in_progress": 4,
    "integration": 6,
    "integration+side": 4,
    "cycle_2": 5,
    "cycle_2+ae": 4,
    "completed": 22,
    "completed+side": 10,
    "completed+ae": 6,
    "completed+sae": 5,
    "screen_failed": 8,
    "withdrawn": 4,
    # Under the depression protocol, assessed at every timepoint (tracker.outcome_histories).
    "mdd:responder": 10,
    "mdd:partial": 8,
    "mdd:relapse": 6,
    "mdd:discontinued": 4,
    "mdd:primary_due": 4,
}
OUTCOME_KINDS: dict[str, OutcomePlan] = {
    "mdd:responder": OutcomePlan("responder"),
    "mdd:partial": OutcomePlan("partial"),
    "mdd:relapse": OutcomePlan("relapse"),
    "mdd:discontinued": OutcomePlan("partial", stage="integration", discontinue=True),
    "mdd:primary_due": OutcomePlan("responder", stop_before="primary_endpoint"),
}


@dataclass
class Template:
    kind: str
    rows: dict[str, list[dict[str, Any]]]
    local: dict[str, dict[int, int]]  # table -> template id -> position (0-based)
    events: list[dict[str, Any]]
    study_id: str
    users: dict[int, str]  # template user id -> team slot
    usernames: dict[str, str]  # template username -> team slot
    printed: dict[str, str]  # template printed name -> team slot
    origin: datetime
    end: datetime
    protocol: str  # the protocol code it was enrolled under

    @property
    def closed(self) -> bool:
        return State(self.rows["participants"][0]["state"]) in CLOSED_STATES


@contextmanager
def fast_password_hashing() -> Iterator[None]:
    """Cheap argon2 parameters while seeding (hundreds of users and signatures), restored after;
    a generated user's hash is upgraded to the strong parameters at its first login."""
    previous = passwords._hasher
    passwords.use_fast_hashing(True)
    try:
        yield
    finally:
        passwords._hasher = previous


def build_templates(variants: int = 2, seed: int = 7) -> list[Template]:
    """Every kind of history ``variants`` times, through the services, in memory."""
    with fast_password_hashing():
        return _build_templates(variants, seed)


def _build_templates(variants: int, seed: int) -> list[Template]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    origin = (clock.now() - timedelta(days=TEMPLATE_ORIGIN_DAYS)).replace(microsecond=0)
    templates = []
    try:
        with Session(engine) as db:
            clock.start_simulation(origin - timedelta(days=1))
            site = create_site(db, SEED_ACTOR, "TPL", "Template site")

            def member(name: str, role: str) -> User:
                return create_user(
                    db,
                    SEED_ACTOR,
                    username=name,
                    role=role,
                    password=BENCH_PASSWORD,
                    printed_name=f"Template {name}",
                    temporary=False,
                    site=site,
                )

            team = Team(
                coordinator=member("tpl-coordinator", "coordinator"),
                investigator=member("tpl-investigator", "investigator"),
                therapists=[
                    member("tpl-therapist-a", "therapist"),
                    member("tpl-therapist-b", "therapist"),
                ],
                investigator_password=BENCH_PASSWORD,
            )
            rater = member("tpl-rater", "rater")
            current_protocol_version(db)
            slots = dict(
                zip(
                    TEAM_SLOTS,
                    (team.coordinator, team.investigator, *team.therapists, rater),
                    strict=True,
                )
            )
            rng = random.Random(seed)
            # The protocol without outcome measures first, then the depression protocol.
            kinds = sorted(TEMPLATE_KINDS, key=lambda kind: kind in OUTCOME_KINDS)
            for kind in kinds:
                start = origin
                if kind in OUTCOME_KINDS:
                    start = (
                        datetime.now(UTC) - timedelta(days=OUTCOME_TEMPLATE_ORIGIN_DAYS)
                    ).replace(microsecond=0)
                    if current_protocol_version(db).code != "mdma-mdd":
                        clock.reset()
                        clock.start_simulation(start - timedelta(days=1))
                        activate_protocol(db, SEED_ACTOR, _outcome_protocol_text())
                for variant in range(variants):
                    clock.reset()
                    clock.start_simulation(start)
                    first_seq = head(db)[0] + 1
                    sex = "female" if variant % 2 == 0 else "male"
                    run_one(_history(db, team, rng, kind, sex, rater))
                    db.flush()
                    templates.append(_extract(db, kind, first_seq, slots, start))
            db.rollback()
    finally:
        clock.reset()
        engine.dispose()
    return templates


def _extract(
    db: Session, kind: str, first_seq: int, slots: dict[str, User], origin: datetime
) -> Template:
    tables = Base.metadata.tables
    participant = db.scalar(sa.select(Participant).order_by(Participant.id.desc()))
    assert participant is not None
    pid = participant.id
    rows: dict[str, list[dict[str, Any]]] = {}
    for name in TABLES:
        table = tables[name]
        if name == "participants":
            query = sa.select(table).where(table.c.id == pid)
        elif "participant_id" in table.c:
            query = sa.select(table).where(table.c.participant_id == pid)
        else:
            owned = sa.select(tables["therapy_sessions"].c.id).where(
                tables["therapy_sessions"].c.participant_id == pid
            )
            query = sa.select(table).where(table.c.session_id.in_(owned))
        order = table.c.id if "id" in table.c else table.c.session_id
        rows[name] = [dict(r._mapping) for r in db.execute(query.order_by(order))]
    local = {
        name: {row["id"]: index for index, row in enumerate(found)}
        for name, found in rows.items()
        if name != "session_therapists"
    }
    audit = AuditEvent.__table__
    events = [
        dict(r._mapping)
        for r in db.execute(sa.select(audit).where(audit.c.seq >= first_seq).order_by(audit.c.seq))
    ]
    moments = [e["occurred_at"] for e in events]
    return Template(
        kind=kind,
        rows=rows,
        local=local,
        events=events,
        study_id=participant.study_id,
        users={u.id: slot for slot, u in slots.items()},
        usernames={u.username: slot for slot, u in slots.items()},
        printed={u.printed_name: slot for slot, u in slots.items()},
        origin=origin,
        end=max(moments),
        protocol=participant.protocol_version.code,
    )


# --- the study: sites, teams, and the plan of N participants ----------------------------------


@dataclass
class Member:
    id: int
    username: str
    printed_name: str


@dataclass
class PlannedParticipant:
    template: Template
    shift: timedelta
    site_id: int
    site_code: str
    site_number: int
    team: dict[str, Member]
    base: dict[str, int] = field(default_factory=dict)  # table -> first new id - 1

    @property
    def study_id(self) -> str:
        return f"{self.site_code}-{self.site_number:04d}"


def sites_for(participants: int) -> int:
    return max(2, min(12, participants // 800 + 2))


def create_study_team(
    db: Session, site_count: int, rng: random.Random
) -> dict[int, list[dict[str, Member]]]:
    """Sites, and per site a coordinator, an investigator and three therapists (teams of four
    drawn from them); an auditor and a data manager for the whole study."""
    teams: dict[int, list[dict[str, Member]]] = {}
    for number in range(1, site_count + 1):
        code = f"S{number:02d}"
        site = create_site(db, SEED_ACTOR, code, f"Study site {number}")
        people: dict[str, list[User]] = {"coordinator": [], "investigator": [], "therapist": []}
        people["rater"] = []
        for role, count in (
            ("coordinator", 1),
            ("investigator", 1),
            ("therapist", 3),
            ("rater", 1),
        ):
            for index in range(1, count + 1):
                user = create_user(
                    db,
                    SEED_ACTOR,
                    username=f"{code.lower()}-{role}{index}",
                    role=role,
                    password=BENCH_PASSWORD,
                    printed_name=f"{role.capitalize()} {index} of {code}",
                    temporary=False,
                    site=site,
                )
                people[role].append(user)

        def as_member(user: User) -> Member:
            return Member(user.id, user.username, user.printed_name)

        therapists = people["therapist"]
        teams[site.id] = [
            {
                "coordinator": as_member(people["coordinator"][0]),
                "investigator": as_member(people["investigator"][0]),
                "therapist_a": as_member(a),
                "therapist_b": as_member(b),
                "rater": as_member(people["rater"][0]),
            }
            for a, b in (
                (therapists[0], therapists[1]),
                (therapists[1], therapists[2]),
                (therapists[2], therapists[0]),
            )
        ]
    for username, role in (("auditor", "auditor"), ("datamanager", "admin")):
        create_user(
            db,
            SEED_ACTOR,
            username=username,
            role=role,
            password=BENCH_PASSWORD,
            printed_name=username.capitalize(),
            temporary=False,
            site=None,
        )
    return teams


def plan_study(
    templates: list[Template],
    participants: int,
    sites: dict[int, str],
    teams: dict[int, list[dict[str, Member]]],
    now: datetime,
    rng: random.Random,
) -> list[PlannedParticipant]:
    """Choose a template and a whole-day shift for each participant, then number them in the
    order they enrolled at their site. Open histories end in the last month, closed ones any
    time in the year the study has been running."""
    by_kind: dict[str, list[Template]] = {}
    for template in templates:
        by_kind.setdefault(template.kind, []).append(template)
    kinds = list(TEMPLATE_KINDS)
    weights = list(TEMPLATE_KINDS.values())
    chosen = []
    # Every kind at least once (every state present even in a tiny study), then by weight.
    order = kinds + rng.choices(kinds, weights=weights, k=max(0, participants - len(kinds)))
    for kind in order[:participants]:
        template = rng.choice(by_kind[kind])
        room = max(0, (now - template.end).days - 1)
        low = max(0, room - 30) if not template.closed else 0
        chosen.append((template, timedelta(days=rng.randint(low, room))))
    chosen.sort(key=lambda pair: pair[0].origin + pair[1])
    site_ids = sorted(sites)
    numbers = dict.fromkeys(site_ids, 0)
    plan = []
    for index, (template, shift) in enumerate(chosen):
        site_id = site_ids[index % len(site_ids)] if index < len(site_ids) else rng.choice(site_ids)
        numbers[site_id] += 1
        plan.append(
            PlannedParticipant(
                template=template,
                shift=shift,
                site_id=site_id,
                site_code=sites[site_id],
                site_number=numbers[site_id],
                team=rng.choice(teams[site_id]),
            )
        )
    return plan


# --- cloning ------------------------------------------------------------------------------


class Cloner:
    """Renumbers and shifts one template's rows and audit events for one participant."""

    def __init__(self, plan: PlannedParticipant, protocol_versions: dict[str, int]) -> None:
        self.plan = plan
        self.template = plan.template
        self.protocol_version_id = protocol_versions[plan.template.protocol]
        self.days = plan.shift.days
        self.names = {
            **{name: plan.team[slot].username for name, slot in self.template.usernames.items()},
            **{name: plan.team[slot].printed_name for name, slot in self.template.printed.items()},
            self.template.study_id: plan.study_id,
        }

    def new_id(self, table: str, old: int | None) -> int | None:
        if old is None:
            return None
        return self.plan.base[table] + self.template.local[table][old] + 1

    def user(self, old: int | None) -> int | None:
        if old is None:
            return None
        slot = self.template.users.get(old)
        return self.plan.team[slot].id if slot else old

    def value(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return value + self.plan.shift
        if isinstance(value, date):
            return value + timedelta(days=self.days)
        return value

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        for row in self.template.rows[table]:
            new = {key: self.value(value) for key, value in row.items()}
            if "id" in new and table != "session_therapists":
                new["id"] = self.new_id(table, row["id"])
            for key, target in OWN_KEYS.items():
                if key in new:
                    new[key] = self.new_id(target, row[key])
            for key in USER_KEYS & new.keys():
                new[key] = self.user(row[key])
            if table == "participants":
                new.update(
                    study_id=self.plan.study_id,
                    site_id=self.plan.site_id,
                    site_number=self.plan.site_number,
                    protocol_version_id=self.protocol_version_id,
                )
            elif table == "checklist_signatures":
                new["printed_name"] = self.names.get(row["printed_name"], row["printed_name"])
            elif table == "transition_events":
                new["actor"] = self.names.get(row["actor"], row["actor"])
            yield new

    def _json(self, action: str, value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {k: self._json(action, v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self._json(action, v) for v in value]
        if isinstance(value, str):
            if value in self.names:
                return self.names[value]
            if ISO_MOMENT.match(value):
                moment = datetime.fromisoformat(value) + self.plan.shift
                return moment.astimezone(UTC).isoformat(timespec="microseconds")
            if ISO_DAY.match(value):
                return (date.fromisoformat(value) + timedelta(days=self.days)).isoformat()
            return value
        if isinstance(value, int) and not isinstance(value, bool) and key is not None:
            prefix = action.split(".", 1)[0]
            table = AUDIT_ID_KEYS.get((prefix, key)) or AUDIT_ID_KEYS.get(("", key))
            if table is not None and value in self.template.local[table]:
                return self.new_id(table, value)
        return value

    def event(self, index: int) -> dict[str, Any]:
        old = self.template.events[index]
        action = old["action"]
        entity_id = old["entity_id"]
        table = AUDIT_ENTITY_TABLES.get(old["entity_type"])
        if entity_id is not None:
            if table is not None and int(entity_id) in self.template.local[table]:
                entity_id = str(self.new_id(table, int(entity_id)))
            else:
                entity_id = self.names.get(entity_id, entity_id)
        return {
            "occurred_at": old["occurred_at"] + self.plan.shift,
            "actor_id": self.user(old["actor_id"]),
            "actor": self.names.get(old["actor"], old["actor"]),
            "role": old["role"],
            "action": action,
            "entity_type": old["entity_type"],
            "entity_id": entity_id,
            "old_values": self._json(action, old["old_values"]),
            "new_values": self._json(action, old["new_values"]),
            "reason": old["reason"],
            "ip_address": old["ip_address"],
        }


class _Chained:
    """The attribute view ``compute_hash`` reads."""

    __slots__ = ("__dict__",)

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__ = values


# --- writing ------------------------------------------------------------------------------


def _copy_value(column: sa.Column[Any], value: Any) -> Any:
    if value is not None and isinstance(column.type, sa.JSON):
        return canonical_json(value)  # as the app's engine stores it
    return value


class Writer:
    """Buffers rows per table and writes them in chunks (COPY on PostgreSQL)."""

    def __init__(self, connection: sa.Connection, chunk: int = CHUNK) -> None:
        self.connection = connection
        self.chunk = chunk
        self.postgres = connection.dialect.name == "postgresql"
        self.buffers: dict[str, list[dict[str, Any]]] = {}
        self.counts: dict[str, int] = {}

    def add(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        buffer = self.buffers.setdefault(table, [])
        buffer.extend(rows)
        if len(buffer) >= self.chunk:
            self.flush_all()  # parents first, so every foreign key finds its row

    def flush(self, table: str) -> None:
        rows = self.buffers.get(table)
        if not rows:
            return
        target = Base.metadata.tables[table]
        if self.postgres:
            columns = [c for c in target.c if c.name in rows[0]]
            names = ", ".join(f'"{c.name}"' for c in columns)
            raw = self.connection.connection.driver_connection
            with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([_copy_value(c, row[c.name]) for c in columns])
        else:
            self.connection.execute(sa.insert(target), rows)
        self.counts[table] = self.counts.get(table, 0) + len(rows)
        rows.clear()

    def flush_all(self) -> None:
        for table in sorted(self.buffers, key=lambda t: TABLES.index(t) if t in TABLES else 99):
            self.flush(table)


@dataclass
class SeedResult:
    participants: int
    rows: dict[str, int]
    seconds: float
    audit_head: str

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def seed(
    database_url: str,
    participants: int,
    *,
    seed_value: int = 20261121,
    variants: int = 2,
    templates: list[Template] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> SeedResult:
    """Build a study of ``participants`` in the (migrated, participant-free) database."""
    started = time.perf_counter()
    rng = random.Random(seed_value)
    if templates is None:
        with fast_password_hashing():
            templates = build_templates(variants=variants, seed=seed_value)
    log(f"{len(templates)} template histories built in {time.perf_counter() - started:.1f} s")
    origin = min(t.origin for t in templates)
    engine = create_engine(database_url)
    try:
        with Session(engine) as db, fast_password_hashing():
            if db.scalar(sa.select(sa.func.count()).select_from(Participant)):
                raise RuntimeError("the database already has participants; seed an empty one")
            clock.start_simulation(origin - timedelta(days=2))
            try:
                protocol = current_protocol_version(db)
                versions = {protocol.code: protocol.id}
                if any(t.protocol != protocol.code for t in templates):
                    outcome = ensure_protocol_version(db, _outcome_protocol_text(), SEED_ACTOR)
                    versions[outcome.code] = outcome.id
                teams = create_study_team(db, sites_for(participants), rng)
            finally:
                clock.reset()
            db.commit()
            sites = {s.id: s.code for s in db.scalars(sa.select(Site))}
            last_seq, last_hash = head(db)
        plan = plan_study(templates, participants, sites, teams, datetime.now(UTC), rng)
        counters: dict[str, int] = {}
        with engine.begin() as connection:
            for name in TABLES:
                if name != "session_therapists":
                    table = Base.metadata.tables[name]
                    counters[name] = (
                        connection.scalar(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0)))
                        or 0
                    )
        for planned in plan:
            for name, positions in planned.template.local.items():
                planned.base[name] = counters[name]
                counters[name] += len(positions)

        with engine.begin() as connection:
            writer = Writer(connection)
            for planned in plan:
                cloner = Cloner(planned, versions)
                for name in TABLES:
                    writer.add(name, cloner.rows(name))
            # Parents before children, whatever the chunk boundaries were.
            for name in TABLES:
                writer.flush(name)
            log(f"records written in {time.perf_counter() - started:.1f} s")

            # One chain over the whole study, in time order.
            keys = sorted(
                (event["occurred_at"] + planned.shift, number, index)
                for number, planned in enumerate(plan)
                for index, event in enumerate(planned.template.events)
            )
            cloners: dict[int, Cloner] = {}
            seq, prev = last_seq, last_hash
            for _, number, index in keys:
                cloner = cloners.get(number)
                if cloner is None:
                    cloner = cloners[number] = Cloner(plan[number], versions)
                values = cloner.event(index)
                seq += 1
                values["seq"] = seq
                values["prev_hash"] = prev
                values["hash"] = prev = compute_hash(prev, _Chained(values))  # type: ignore[arg-type]
                writer.add("audit_events", [values])
            writer.flush_all()
            log(f"audit chain written in {time.perf_counter() - started:.1f} s")

            site_table = Base.metadata.tables["sites"]
            for site_id in sites:
                last = max((p.site_number for p in plan if p.site_id == site_id), default=0)
                connection.execute(
                    sa.update(site_table)
                    .where(site_table.c.id == site_id)
                    .values(last_participant_number=last)
                )
            if connection.dialect.name == "postgresql":
                for name in TABLES:
                    if name != "session_therapists":
                        sequence = f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        sequence += f"(SELECT coalesce(max(id), 1) FROM {name}))"  # noqa: S608
                        connection.execute(sa.text(sequence))
            rows = dict(writer.counts)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("ANALYZE")
        else:
            with engine.connect() as connection:
                connection.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return SeedResult(participants, rows, time.perf_counter() - started, prev)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--no-migrate", action="store_true")
    args = parser.parse_args(argv)
    if not args.no_migrate:
        from tracker import migrate

        migrate.upgrade(args.database_url)
    result = seed(args.database_url, args.participants, seed_value=args.seed, log=print)
    print(f"{result.participants} participants, {result.total_rows} rows in {result.seconds:.1f} s")


if __name__ == "__main__":
    main()
