"""The ``tracker`` command: a Click group bound to the app factory."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext

from tracker import create_app
from tracker.audit.checkpoints import CheckpointStore
from tracker.audit.services import Actor
from tracker.db import Database, get_database
from tracker.protocol.roles import Role


def main() -> None:
    cli(prog_name="tracker")


@click.group(cls=FlaskGroup, create_app=lambda: create_app(), add_version_option=False)
def cli() -> None:
    """tracker: protocol workflow tracker for clinical trials of MDMA-assisted therapy."""


def cli_actor() -> Actor:
    """CLI changes are recorded under the operating-system account that made them."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Actor(username=f"cli:{name}"[:64], role="system")


def _database() -> Database:
    return get_database(current_app)


def _checkpoints() -> CheckpointStore:
    from tracker.audit.services import checkpoint_store

    store = checkpoint_store()
    assert store is not None, "create_app sets up the checkpoint store"
    return store


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def register_cli(app: Flask) -> None:
    """Bind the command groups to the app, so `tracker X` and `flask --app tracker X` agree."""
    for command in (
        db,
        sites,
        users,
        participants,
        protocol,
        randomisation,
        study,
        inventory,
        notify,
        jobs,
        audit,
        report,
        export,
        demo,
        bench,
    ):
        app.cli.add_command(command)


# --- db ---------------------------------------------------------------------------------------


@click.group(cls=AppGroup)
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Upgrade the database to REVISION (default: head), connected as the owner
    (TRACKER_DATABASE_OWNER_URL); on PostgreSQL the app's role gets only its grants."""
    from tracker import migrate

    config = current_app.config
    granted = migrate.upgrade(
        config["TRACKER_DATABASE_OWNER_URL"], revision, app_url=config["TRACKER_DATABASE_URL"]
    )
    if granted:
        click.echo(f"Upgraded; the app's role {granted} has its grants and owns nothing.")


@db.command("downgrade")
@click.argument("revision", default="-1")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Downgrade the database to REVISION (default: one step)."""
    from tracker import migrate

    migrate.downgrade(current_app.config["TRACKER_DATABASE_OWNER_URL"], revision)


@db.command("current")
@with_appcontext
def db_current() -> None:
    """Show the database's revision."""
    from tracker import migrate

    migrate.current(current_app.config["TRACKER_DATABASE_OWNER_URL"])


@db.command("revision")
@click.option("-m", "--message", required=True)
@with_appcontext
def db_revision(message: str) -> None:
    """Write a new migration from the difference between the models and the database."""
    from tracker import migrate

    migrate.revision(current_app.config["TRACKER_DATABASE_URL"], message)


@db.command("backup")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@with_appcontext
def db_backup(output: Path) -> None:
    """Back up the SQLite database online to OUTPUT and verify the copy's audit chain."""
    from tracker.backup import BackupError, backup_sqlite

    try:
        result = backup_sqlite(current_app.config["TRACKER_DATABASE_URL"], output)
    except BackupError as error:
        _fail(str(error))
    click.echo(f"Backed up to {output}: {result.events} audit events, head {result.head}")


@db.command("restore")
@click.argument("backup", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--yes", is_flag=True, help="Confirm replacing the current database.")
@click.option(
    "--accept-loss",
    is_flag=True,
    help="Restore a backup that is behind the newest signed checkpoint (the loss is recorded).",
)
@with_appcontext
def db_restore(backup: Path, yes: bool, accept_loss: bool) -> None:
    """Replace the SQLite database with BACKUP (stop the app first); the backup must verify
    and must not be behind the newest signed checkpoint unless --accept-loss."""
    from tracker.backup import BackupError, restore_sqlite

    if not yes:
        _fail("restoring replaces the current database; stop the app and pass --yes")
    try:
        restored = restore_sqlite(
            current_app.config["TRACKER_DATABASE_URL"],
            backup,
            _checkpoints(),
            cli_actor(),
            accept_loss=accept_loss,
        )
    except BackupError as error:
        _fail(str(error))
    result = restored.result
    click.echo(f"Restored from {backup}: {result.events} audit events, head {result.head}")
    if restored.events_lost:
        click.echo(
            f"{restored.events_lost} events after the backup were given up; the restore is "
            f"recorded and {len(restored.superseded)} checkpoints were moved to superseded/."
        )


# --- sites and users ----------------------------------------------------------------------


@click.group(cls=AppGroup)
def sites() -> None:
    """Study sites."""


@sites.command("create")
@click.argument("code")
@click.option("--name", required=True, help="The site's name.")
@click.option(
    "--time-zone", default="UTC", show_default=True, help="IANA zone, e.g. Europe/Berlin."
)
@with_appcontext
def sites_create(code: str, name: str, time_zone: str) -> None:
    """Create a site with CODE (for example S01)."""
    from tracker.errors import DomainError
    from tracker.sites.services import create_site

    try:
        with _database().session_scope() as db:
            site = create_site(db, cli_actor(), code, name, time_zone)
            click.echo(f"Site {site.code} created: {site.name} ({site.time_zone})")
    except DomainError as error:
        _fail(error.message)


@click.group(cls=AppGroup)
def users() -> None:
    """Users, roles and API tokens."""


@users.command("create")
@click.argument("username")
@click.option(
    "--role",
    required=True,
    type=click.Choice([role.value for role in Role]),
)
@click.option(
    "--site", "site_code", help="Site code; required except for auditor, admin, statistician."
)
@click.option("--name", "printed_name", help="Printed name on signatures (default: the username).")
@click.option("--email", default=None, help="Where safety notifications go (investigators).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def users_create(
    username: str,
    role: str,
    site_code: str | None,
    printed_name: str | None,
    email: str | None,
    password_stdin: bool,
) -> None:
    """Create USERNAME with ROLE; the password is prompted for, or read from stdin. It is
    temporary: the user chooses their own at the first sign-in, before signing or using the
    API (nobody signs with a password someone else chose)."""
    from tracker.auth.services import create_user
    from tracker.errors import DomainError
    from tracker.sites.services import get_site_by_code

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with _database().session_scope() as db:
            site = get_site_by_code(db, site_code) if site_code else None
            user = create_user(
                db,
                cli_actor(),
                username=username,
                role=role,
                password=password,
                printed_name=printed_name or username,
                site=site,
                email=email,
            )
            click.echo(
                f"User {user.username} created ({user.role}{', ' + site.code if site else ''}); "
                "the password is temporary until they change it at their first sign-in."
            )
    except DomainError as error:
        _fail(error.message)


def _lifetime(_ctx: click.Context, _param: click.Parameter, value: str) -> timedelta:
    """``90d``, ``12h``, ``30m`` or a number of days."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    text = value.strip().lower()
    unit = units.get(text[-1:], "days")
    number = text[:-1] if text[-1:] in units else text
    if not number.isdigit() or int(number) == 0:
        raise click.BadParameter("give a lifetime such as 90d, 12h or 30m")
    return timedelta(**{unit: int(number)})


@users.command("token")
@click.argument("username")
@click.option(
    "--expires-in",
    default="90d",
    show_default=True,
    callback=_lifetime,
    help="How long the token lives: 90d, 12h, 30m (at most 366 days).",
)
@with_appcontext
def users_token(username: str, expires_in: timedelta) -> None:
    """Print a new API token for USERNAME (shown once; only its hash is kept). It expires,
    and ends when the user's password changes or is reset."""
    from tracker.auth.services import create_api_token, get_user_by_username
    from tracker.errors import DomainError

    try:
        with _database().session_scope() as db:
            raw = create_api_token(db, cli_actor(), get_user_by_username(db, username), expires_in)
    except DomainError as error:
        _fail(error.message)
    click.echo(raw)


@users.command("revoke-tokens")
@click.argument("username")
@with_appcontext
def users_revoke_tokens(username: str) -> None:
    """Revoke every API token of USERNAME."""
    from tracker.auth.services import get_user_by_username, revoke_api_tokens
    from tracker.errors import DomainError

    try:
        with _database().session_scope() as db:
            count = revoke_api_tokens(db, cli_actor(), get_user_by_username(db, username))
    except DomainError as error:
        _fail(error.message)
    click.echo(f"{count} token(s) revoked.")


# --- participants ---------------------------------------------------------------------------


@click.group(cls=AppGroup)
def participants() -> None:
    """Participant records that are kept up from outside a page (paper, a phone call)."""


@participants.command("childbearing-potential")
@click.argument("study_id")
@click.argument("value", type=click.Choice(["yes", "no"]))
@click.option(
    "--by", "username", required=True, help="The coordinator or investigator recording it."
)
@click.option("--reason", default="", help="Required when a recorded value is changed.")
@with_appcontext
def participants_childbearing(study_id: str, value: str, username: str, reason: str) -> None:
    """Record whether STUDY_ID is of childbearing potential (audited as --by, with the
    operating-system account that ran the command beside the name)."""
    import sqlalchemy as sa

    from tracker.auth.services import actor_for, get_user_by_username
    from tracker.errors import DomainError, NotFound
    from tracker.participants.models import Participant
    from tracker.participants.services import record_childbearing_potential

    try:
        with _database().session_scope() as db:
            user = get_user_by_username(db, username)
            participant = db.scalar(
                sa.select(Participant).where(Participant.study_id == study_id.strip().upper())
            )
            if participant is None or (user.site_id and participant.site_id != user.site_id):
                raise NotFound(f"No participant {study_id} at {username}'s site.")
            actor = actor_for(user)
            actor = Actor(
                username=f"{user.username} ({cli_actor().username})"[:64],
                role=actor.role,
                user_id=actor.user_id,
            )
            record_childbearing_potential(db, actor, participant, value == "yes", reason)
    except DomainError as error:
        _fail(error.message)
    click.echo(f"{study_id}: childbearing potential {value}.")


# --- protocol -----------------------------------------------------------------------------


@click.group(cls=AppGroup)
def protocol() -> None:
    """Protocol versions: which one new enrolments use (SPEC §10)."""


@protocol.command("activate")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def protocol_activate(path: str) -> None:
    """Load the protocol file at PATH (refused if it changed under a known version) and make it
    the version new enrolments use; every participant keeps theirs."""

    from tracker.errors import DomainError
    from tracker.protocol import ProtocolFileError
    from tracker.study.services import activate_protocol

    try:
        with _database().session_scope() as db:
            row = activate_protocol(db, cli_actor(), Path(path).read_text(encoding="utf-8"))
            label = f"{row.code} version {row.version} ({row.title})"
    except ProtocolFileError as error:
        _fail(str(error))
    except DomainError as error:
        _fail(error.message)
    click.echo(f"New enrolments now use {label}.")


@protocol.command("list")
@with_appcontext
def protocol_list() -> None:
    """The protocol versions loaded, the active one marked."""
    from tracker.study.services import current_protocol_version, protocol_versions

    with _database().session_scope() as db:
        active = current_protocol_version(db)
        for row in protocol_versions(db):
            mark = "*" if row.id == active.id else " "
            click.echo(f"{mark} {row.code} version {row.version}: {row.title}")


# --- audit --------------------------------------------------------------------------------


@click.group(cls=AppGroup)
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@with_appcontext
def audit_verify() -> None:
    """Re-compute the hash chain and hold it against every signed checkpoint; exit 1 naming
    the first bad event or the checkpoint the chain contradicts."""
    from tracker.audit.services import verify

    with _database().session_scope() as db:
        result = verify(db, _checkpoints())
    if result.ok:
        click.echo(
            f"OK: {result.events} events, head {result.head}, "
            f"{result.checkpoints} signed checkpoints hold"
        )
        return
    where = f" at event {result.first_bad_seq}" if result.first_bad_seq is not None else ""
    click.echo(f"FAILED{where}: {result.problem}", err=True)
    sys.exit(1)


@audit.command("checkpoint")
@with_appcontext
def audit_checkpoint() -> None:
    """Sign a checkpoint of the chain's head now (the app also writes them on activity),
    after verifying the events since the last verified head; exit 1 if they do not hold."""
    from tracker.audit.services import head, verify_since_mark

    store = _checkpoints()
    with _database().session_scope() as db:
        seq, head_hash = head(db)
        verification = verify_since_mark(db, store)
    checkpoint = store.write(seq, head_hash, "command")
    if checkpoint is None:
        click.echo("The audit trail is empty: there is no head to sign.")
        return
    click.echo(f"Checkpoint {checkpoint.name}: event {seq}, head {head_hash}")
    if not verification.ok:
        click.echo(f"The trail does not verify: {verification.problem}", err=True)
        sys.exit(1)
    click.echo(f"Verified events {verification.verified_from + 1} to {verification.events}.")


@audit.command("keygen")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def audit_keygen(output: Path) -> None:
    """Write a new Ed25519 key for TRACKER_AUDIT_SIGNING_KEY (mode 0600; never overwritten)."""
    from tracker.audit.checkpoints import generate_key_pem
    from tracker.config import write_private_file

    try:
        write_private_file(output, generate_key_pem())
    except FileExistsError:
        _fail(f"{output} exists; a signing key is never overwritten.")
    click.echo(f"Signing key written to {output}; set TRACKER_AUDIT_SIGNING_KEY={output}")


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv"]), default="csv", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@with_appcontext
def audit_export(fmt: str, output: Path) -> None:
    """Export the whole audit trail (the export is itself audited)."""
    from tracker.audit.export import AuditCsv
    from tracker.audit.services import record_event

    database = _database()
    with database.session_scope() as db:
        record_event(
            db,
            cli_actor(),
            "audit.export",
            "audit_trail",
            None,
            new={"format": fmt, "file": output.name},
        )
    with (
        database.session_scope() as db,
        output.open("w", encoding="utf-8", newline="") as handle,
    ):
        export = AuditCsv(db)
        for chunk in export:
            handle.write(chunk)
    click.echo(f"{export.events} events written to {output}")


# --- reports ----------------------------------------------------------------------------


@click.group(cls=AppGroup)
def report() -> None:
    """Protocol-compliance reports."""


@report.command("compliance")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "pdf"]), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--site", help="Only this site.")
@click.option("--state", help="Only participants in this state.")
@click.option("--failures-only", is_flag=True, help="Only participants with a failing check.")
@with_appcontext
def report_compliance(
    fmt: str, output: Path, site: str | None, state: str | None, failures_only: bool
) -> None:
    """Write the study's compliance report (the export is itself audited)."""
    from tracker.errors import InvalidInput
    from tracker.reports import compliance
    from tracker.reports.writing import report_text, write_report_pdf

    try:
        flt = compliance.ReportFilter.checked(site=site, state=state, failures_only=failures_only)
    except InvalidInput as error:
        _fail(str(error))
    actor = cli_actor()
    database = _database()
    with database.session_scope() as db:
        header = compliance.report_header(db, actor.username, flt)
        compliance.record_export(db, actor, fmt, flt, header)
    with database.session_scope() as db:
        summary = compliance.Summary()
        if fmt == "pdf":
            with output.open("wb") as handle:
                write_report_pdf(db, None, flt, header, summary, handle)
        else:
            with output.open("w", encoding="utf-8", newline="") as handle:
                for chunk in report_text(db, None, flt, header, fmt, summary):
                    handle.write(chunk)
    click.echo(
        f"{summary.participants} participants written to {output} (audit head {header.audit_head})"
    )


# --- export (SPEC §13) ----------------------------------------------------------------------


@click.group(cls=AppGroup)
def export() -> None:
    """Data exchange: CDISC ODM, SDTM datasets, FHIR bundles (every export is audited)."""


_site_option = click.option("--site", help="Only this site's participants.")
_arms_option = click.option(
    "--arms",
    is_flag=True,
    help="Include the allocated arms (the unblinded data set, for the statistician); recorded "
    "as such on the audit trail. Without it the export is blinded until the study is unblinded.",
)


@contextmanager
def _reading() -> Iterator[Any]:
    """A read-only session for a long export: on SQLite it takes no write lock, so the app
    keeps writing while the file is made."""
    db = _database().read_session()
    try:
        yield db
    finally:
        db.rollback()
        db.close()


def _export_scope(standard: str, fmt: str, site: str | None, arms: bool) -> Any:
    """The command line's scope (study-wide), refused for an unknown site, and on record."""
    from tracker.errors import InvalidInput
    from tracker.exchange.scope import export_scope
    from tracker.exchange.services import record_export

    actor = cli_actor()
    with _database().session_scope() as db:
        try:
            scope = export_scope(db, None, actor.username, site=site, arms=arms)
        except InvalidInput as error:
            _fail(str(error))
        record_export(db, actor, standard, fmt, scope)
    return scope


@export.command("odm")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@_site_option
@_arms_option
@with_appcontext
def export_odm(output: Path, site: str | None, arms: bool) -> None:
    """Write the study as CDISC ODM 1.3.2 (metadata, clinical data, audit records, signatures)."""
    from tracker.exchange.odm import odm_document

    scope = _export_scope("odm", "xml", site, arms)
    with _reading() as db, output.open("w", encoding="utf-8") as handle:
        for part in odm_document(db, scope):
            handle.write(part)
    click.echo(f"Wrote {output}{'' if scope.arms else ' (blinded: no arms)'}.")


@export.command("sdtm")
@click.option("--format", "fmt", type=click.Choice(["csv", "xpt", "json"]), required=True)
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True)
@_site_option
@_arms_option
@with_appcontext
def export_sdtm(fmt: str, output: Path, site: str | None, arms: bool) -> None:
    """Write the SDTM datasets DM, DS, EX, VS, AE, QS, SV and DV into a directory."""
    from tracker.exchange.datasets import write_sdtm

    scope = _export_scope("sdtm", fmt, site, arms)
    with _reading() as db:
        written = write_sdtm(db, scope, fmt, output)
    counts = ", ".join(f"{name} {rows}" for name, rows in written.rows.items())
    click.echo(
        f"{written.participants} participants written to {output}: {counts}"
        f"{'' if scope.arms else ' (blinded: no arms)'}."
    )


@export.command("fhir")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True)
@_site_option
@_arms_option
@with_appcontext
def export_fhir(output: Path, site: str | None, arms: bool) -> None:
    """Write the FHIR R4 study bundle (study.json) and one bundle per participant
    (participants.ndjson, a bundle a line)."""
    import json

    from tracker.exchange import fhir

    scope = _export_scope("fhir", "json", site, arms)
    output.mkdir(parents=True, exist_ok=True)
    count = 0
    with _reading() as db:
        with (output / "study.json").open("w", encoding="utf-8") as handle:
            for part in fhir.study_bundle(db, scope):
                handle.write(part)
        with (output / "participants.ndjson").open("w", encoding="utf-8") as handle:
            for bundle in fhir.participant_bundles(db, scope):
                handle.write(json.dumps(bundle, ensure_ascii=False) + "\n")
                count += 1
    click.echo(f"Wrote {output}/study.json and {count} participant bundles.")


# --- demo ---------------------------------------------------------------------------------


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Load the demo study (sites, one user per role) once, and print the demo logins."""
    from tracker.demo import load_demo

    if current_app.config["TRACKER_ENV"] == "production":
        _fail("the demo is refused when TRACKER_ENV=production")
    credentials = load_demo(_database(), Path(current_app.instance_path))
    click.echo(credentials)


# --- bench --------------------------------------------------------------------------------


def _benchmarks() -> ModuleType:
    """The benchmarks package (shipped in the wheel beside tracker; imported when used)."""
    import benchmarks.generate

    return benchmarks


@click.group(cls=AppGroup)
def bench() -> None:
    """Benchmark data and benchmarks (see docs/benchmarks.md)."""


@bench.command("seed")
@click.option("--participants", type=click.IntRange(1), required=True, help="How many.")
@click.option("--database-url", help="Seed this database instead of the app's.")
@click.option("--seed", "seed_value", type=int, default=20261121, show_default=True)
@with_appcontext
def bench_seed(participants: int, database_url: str | None, seed_value: int) -> None:
    """Migrate an empty database and fill it with a realistic study of PARTICIPANTS (bulk)."""
    from tracker import migrate

    if current_app.config["TRACKER_ENV"] == "production":
        _fail("benchmark data is refused when TRACKER_ENV=production")
    url = database_url or current_app.config["TRACKER_DATABASE_URL"]
    migrate.upgrade(url)
    try:
        result = _benchmarks().generate.seed(
            url, participants, seed_value=seed_value, log=click.echo
        )
    except RuntimeError as error:
        _fail(str(error))
    click.echo(
        f"{result.participants} participants, {result.total_rows} rows in {result.seconds:.1f} s "
        f"(audit head {result.audit_head}); every user's password is "
        f"{_benchmarks().generate.BENCH_PASSWORD!r}"
    )


# --- randomisation and the study's blind (SPEC §11) --------------------------------------------


def _password(label: str, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt(f"{label}'s password", hide_input=True))


def _signed_in(db: Any, username: str, password: str, purpose: str) -> tuple[Any, Actor]:
    """The user, re-authenticated, and their actor (with the operating-system account). A
    wrong password is committed as a failure (it counts towards the lockout) and exits 1."""
    from tracker.auth.services import (
        PasswordRefused,
        actor_for,
        check_password,
        get_user_by_username,
    )

    user = get_user_by_username(db, username)
    actor = actor_for(user)
    actor = Actor(
        username=f"{user.username} ({cli_actor().username})"[:64],
        role=actor.role,
        user_id=actor.user_id,
    )
    try:
        check_password(db, user, actor, password, purpose)
    except PasswordRefused as error:
        db.commit()
        _fail(error.message)
    return user, actor


def _protocol_version(db: Any, code: str | None, version: str | None) -> Any:
    import sqlalchemy as sa

    from tracker.errors import NotFound
    from tracker.study.models import ProtocolVersion
    from tracker.study.services import current_protocol_version

    if code is None:
        return current_protocol_version(db)
    row = db.scalar(
        sa.select(ProtocolVersion).where(
            ProtocolVersion.code == code, ProtocolVersion.version == (version or "1")
        )
    )
    if row is None:
        raise NotFound(f"No protocol {code} version {version or '1'} is loaded.")
    return row


@click.group(cls=AppGroup)
def randomisation() -> None:
    """The randomisation list (the statistician's, SPEC §11)."""


_BY = click.option("--by", "username", required=True, help="The statistician.")
_PROTOCOL = click.option("--protocol", "code", help="Protocol code (default: the active one).")
_VERSION = click.option("--version", "version", help="Protocol version (with --protocol).")
_STDIN = click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")


@randomisation.command("generate")
@click.option("--per-stratum", type=int, required=True, help="At least this many per stratum.")
@click.option("--seed", "seed_value", type=int, required=True, help="The generator's seed.")
@_BY
@_PROTOCOL
@_VERSION
@_STDIN
@with_appcontext
def randomisation_generate(
    per_stratum: int,
    seed_value: int,
    username: str,
    code: str | None,
    version: str | None,
    password_stdin: bool,
) -> None:
    """Generate and store the list: stratified permuted blocks over every site and band. Its
    hash goes on the audit trail; its seed and arms stay with the list."""
    from tracker.errors import DomainError
    from tracker.randomisation.services import generate_for

    password = _password(username, password_stdin)
    try:
        with _database().session_scope() as db:
            _, actor = _signed_in(db, username, password, "randomisation list")
            row = generate_for(
                db,
                actor,
                _protocol_version(db, code, version),
                per_stratum=per_stratum,
                seed=seed_value,
            )
            summary = f"{row.entries_count} entries, hash {row.content_hash}"
    except DomainError as error:
        _fail(error.message)
    click.echo(f"Randomisation list stored: {summary}.")


@randomisation.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@_BY
@_PROTOCOL
@_VERSION
@_STDIN
@with_appcontext
def randomisation_import(
    path: str, username: str, code: str | None, version: str | None, password_stdin: bool
) -> None:
    """Import a list from CSV (stratum,position,block,block_size,arm), checked against the
    protocol's arms, ratio and the study's strata."""
    from tracker.errors import DomainError
    from tracker.randomisation.services import import_list

    password = _password(username, password_stdin)
    try:
        with _database().session_scope() as db:
            _, actor = _signed_in(db, username, password, "randomisation list")
            row = import_list(
                db, actor, _protocol_version(db, code, version), Path(path).read_text("utf-8")
            )
            summary = f"{row.entries_count} entries, hash {row.content_hash}"
    except DomainError as error:
        _fail(error.message)
    click.echo(f"Randomisation list imported: {summary}.")


@click.group(cls=AppGroup)
def study() -> None:
    """The study as a whole."""


@study.command("unblind")
@click.option("--admin", "admin_name", required=True, help="The admin.")
@click.option("--statistician", "statistician_name", required=True, help="The statistician.")
@click.option("--reason", required=True, help="Why the study is unblinded (e.g. database lock).")
@_STDIN
@with_appcontext
def study_unblind(
    admin_name: str, statistician_name: str, reason: str, password_stdin: bool
) -> None:
    """Unblind the study (final): the admin and the statistician each enter their password
    (with --password-stdin: the admin's line, then the statistician's)."""
    from tracker.auth.services import PasswordRefused, get_user_by_username
    from tracker.errors import DomainError
    from tracker.randomisation.services import unblind_study

    admin_password = _password(admin_name, password_stdin)
    statistician_password = _password(statistician_name, password_stdin)
    try:
        with _database().session_scope() as db:
            admin = get_user_by_username(db, admin_name)
            statistician = get_user_by_username(db, statistician_name)
            by = f"{admin_name}+{statistician_name} ({cli_actor().username})"[:64]
            try:
                row = unblind_study(
                    db,
                    Actor(username=by, role="system"),
                    admin=admin,
                    admin_password=admin_password,
                    statistician=statistician,
                    statistician_password=statistician_password,
                    reason=reason,
                )
            except PasswordRefused as error:
                db.commit()  # the wrong password counts towards the lockout
                _fail(error.message)
            when = f"{row.unblinded_at:%Y-%m-%d %H:%M} UTC"
    except DomainError as error:
        _fail(error.message)
    click.echo(f"The study is unblinded ({when}); arms are visible to every role from now on.")


# --- inventory (SPEC §12) --------------------------------------------------------------------


@click.group(cls=AppGroup)
def inventory() -> None:
    """The investigational product's ledger."""


@inventory.command("reconcile")
@click.option("--site", default=None, help="Only this site's lots.")
@with_appcontext
def inventory_reconcile(site: str | None) -> None:
    """Each lot's balance and its terms, and the checks C20 to C23 (blinded: no product of
    an arm-bound lot is printed). Exits 1 when a check fails."""
    from tracker.protocol.compliance_records import Outcome
    from tracker.reports.accountability import accountability_section

    with _database().session_scope() as db:
        lots = accountability_section(db, None, site)
    failed = False
    for lot in lots:
        outcomes = " ".join(f"{r.check_id}:{r.outcome.value}" for r in lot.results)
        click.echo(f"{lot.label}: balance {lot.balance} units; {outcomes}")
        for result in lot.results:
            if result.outcome is Outcome.FAIL:
                failed = True
                for evidence in result.evidence:
                    click.echo(
                        f"  {result.check_id} {evidence.record}: expected {evidence.expected}; "
                        f"found {evidence.found}"
                    )
    if not lots:
        click.echo("No lot is on file.")
    if failed:
        raise SystemExit(1)


@inventory.command("log")
@click.argument("lot_id", type=int)
@click.option("--pdf", "output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@with_appcontext
def inventory_log(lot_id: int, output: Path) -> None:
    """Write one lot's accountability log as a PDF (the unblinded copy: the pharmacy's
    record), audited as an export."""
    from flask import render_template
    from weasyprint import HTML

    from tracker.audit.services import record_event
    from tracker.db import utcnow
    from tracker.pharmacy import presenters
    from tracker.pharmacy.models import DrugLot
    from tracker.sites.models import Site

    with _database().session_scope() as db:
        lot = db.get(DrugLot, lot_id)
        if lot is None:
            _fail(f"No lot {lot_id}.")
        assert lot is not None
        # The pharmacy's own copy, every product named (the command runs on the server).
        html = render_template(
            "pharmacy/log_pdf.html",
            lot=presenters.lot_view(db, None, lot),
            site=db.get(Site, lot.site_id),
            generated_at=utcnow(),
            generated_by=cli_actor().username,
        )
        HTML(string=html).write_pdf(output)
        record_event(
            db, cli_actor(), "report.export", "accountability_log", lot.id, new={"format": "pdf"}
        )
    click.echo(f"Wrote {output}.")


# --- notify (issue 17) -----------------------------------------------------------------------


@click.group(cls=AppGroup)
def notify() -> None:
    """Safety notifications by e-mail."""


@notify.command("send")
@click.option("--loop", is_flag=True, help="Keep sending until stopped (a worker).")
@click.option("--interval", default=30, show_default=True, help="Seconds between passes.")
@with_appcontext
def notify_send(loop: bool, interval: int) -> None:
    """Queue the notices of overdue serious reports, then send every message that is due
    through TRACKER_SMTP_HOST; failures are retried with a growing delay."""
    import time

    from tracker.config import load_settings
    from tracker.notifications.services import WORKER, send_due, smtp_mailer
    from tracker.safety.services import queue_overdue_report_notices

    smtp = load_settings().smtp
    if smtp is None:
        _fail("TRACKER_SMTP_HOST is not set: the messages stay in the outbox.")
    assert smtp is not None
    database = _database()
    mailer = smtp_mailer(smtp)
    while True:
        with database.session_scope() as db:
            queued = queue_overdue_report_notices(db, WORKER)
        result = send_due(database.session_scope, mailer, smtp)
        click.echo(
            f"{queued} queued; {result.sent} sent, {result.retried} to retry, "
            f"{result.failed} failed."
        )
        if not loop:
            return
        time.sleep(interval)


# --- jobs: background exports ---------------------------------------------------------------


@click.group(cls=AppGroup)
def jobs() -> None:
    """Background exports: the files asked for from the browser and the API."""


@jobs.command("work")
@click.option("--loop", is_flag=True, help="Keep working until stopped (a worker).")
@click.option("--once", is_flag=True, help="Make at most one file, then stop.")
@click.option(
    "--interval", default=5, show_default=True, help="Seconds between looks at an empty queue."
)
@click.option("--name", help="This worker's name in the job table (default: host:pid).")
@with_appcontext
def jobs_work(loop: bool, once: bool, interval: int, name: str | None) -> None:
    """Make the files of waiting export jobs, one at a time, and delete the expired ones.
    Without --loop it stops when the queue is empty. Several workers may run, on any server:
    each job is leased to one; a job whose worker stopped is taken over when its lease ends."""
    import time

    from tracker.jobs.worker import default_worker_name, expire, exports_folder, kept_for, run_next

    if loop and once:
        _fail("--loop and --once exclude each other.")
    database = _database()
    folder, keep = exports_folder(), kept_for()
    worker = name or default_worker_name()
    while True:
        expired = expire(database, folder)
        if expired:
            click.echo(f"{expired} expired files deleted.")
        outcome = run_next(database, folder, keep, worker)
        if outcome is not None:
            click.echo(f"job {outcome.job_id}: {outcome.state} {outcome.detail}".rstrip())
            if once:
                return
            continue
        if not loop:
            click.echo("No job waits.")
            return
        time.sleep(interval)


@participants.command("casebook")
@click.argument("study_id")
@click.option("--pdf", "output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@with_appcontext
def participants_casebook(study_id: str, output: Path) -> None:
    """Write STUDY_ID's casebook (every record of the participant) as a PDF, audited."""
    import sqlalchemy as sa
    from flask import render_template

    from tracker.audit.services import record_event
    from tracker.participants.models import Participant
    from tracker.reports.casebook import casebook, write_casebook_pdf

    with _database().session_scope() as db:
        participant = db.scalar(sa.select(Participant).where(Participant.study_id == study_id))
        if participant is None:
            _fail(f"No participant {study_id}.")
        assert participant is not None
        book = casebook(db, participant, cli_actor().username)
        output.write_bytes(write_casebook_pdf(book, render_template))
        record_event(
            db,
            cli_actor(),
            "report.export",
            "casebook",
            participant.study_id,
            new={"format": "pdf", "audit_head": book.audit_head},
        )
    click.echo(f"Wrote {output}.")
