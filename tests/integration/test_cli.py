from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from tests.factories import PASSWORD
from tracker.audit.models import AuditEvent
from tracker.auth.models import User


def _run(app: Flask, *args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args), input=stdin)


def test_sites_and_users_from_the_command_line(app: Flask, db_session: Session) -> None:
    result = _run(app, "sites", "create", "S42", "--name", "Forty-two")
    assert result.exit_code == 0, result.output
    result = _run(
        app,
        "users",
        "create",
        "cli.coord",
        "--role",
        "coordinator",
        "--site",
        "S42",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    user = db_session.scalar(sa.select(User).where(User.username == "cli.coord"))
    assert user is not None and user.site.code == "S42"
    event = db_session.scalar(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
    assert event.action == "user.create" and event.actor.startswith("cli:")


def test_users_create_refuses_bad_input_with_a_clear_error(app: Flask, db_session: Session) -> None:
    result = _run(
        app,
        "users",
        "create",
        "nosite",
        "--role",
        "therapist",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert result.exit_code == 1
    assert "needs a site" in result.output
    result = _run(
        app, "users", "create", "weak", "--role", "auditor", "--password-stdin", stdin="short\n"
    )
    assert result.exit_code == 1
    assert "at least 12 characters" in result.output
    assert db_session.scalar(sa.select(User).where(User.username.in_(["nosite", "weak"]))) is None


def _owner_chooses_a_password(session: Session, username: str) -> None:
    from tracker.auth.services import actor_for, get_user_by_username, set_password

    user = get_user_by_username(session, username)
    set_password(session, actor_for(user), user, PASSWORD + "-own", reason="own")
    session.commit()


def test_token_is_printed_once_and_works(app: Flask, db_session: Session) -> None:
    _run(
        app,
        "users",
        "create",
        "cli.auditor",
        "--role",
        "auditor",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    refused = _run(app, "users", "token", "cli.auditor")
    assert refused.exit_code == 1 and "temporary password" in refused.output
    _owner_chooses_a_password(db_session, "cli.auditor")
    result = _run(app, "users", "token", "cli.auditor", "--expires-in", "30d")
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("trk_") and len(token) > 40
    response = app.test_client().get(
        "/api/v1/audit/verify", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    revoked = _run(app, "users", "revoke-tokens", "cli.auditor")
    assert revoked.exit_code == 0 and "1 token(s) revoked" in revoked.output
    response = app.test_client().get(
        "/api/v1/audit/verify", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401


def test_demo_loads_once_and_prints_logins(app: Flask, db_session: Session) -> None:
    first = _run(app, "demo")
    assert first.exit_code == 0, first.output
    for username in ("coordinator", "therapist", "investigator", "auditor", "admin"):
        assert username in first.output
    second = _run(app, "demo")
    assert "already loaded" in second.output
    assert (
        db_session.scalar(
            sa.select(sa.func.count()).select_from(User).where(User.username == "admin")
        )
        == 1
    )


def test_protocol_activate_chooses_the_version_new_enrolments_use(
    app: Flask, db_session: Session, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import make_user
    from tracker.auth.services import actor_for
    from tracker.participants.services import enrol_participant
    from tracker.paths import FIXTURES

    coordinator = make_user(db_session, "coordinator", "S01")
    before = enrol_participant(
        db_session, actor_for(coordinator), site=coordinator.site, sex="male", year_of_birth=1980
    )
    db_session.commit()
    result = _run(app, "protocol", "activate", str(FIXTURES / "protocols" / "mdma-mdd-v1.toml"))
    assert result.exit_code == 0, result.output
    assert "New enrolments now use mdma-mdd version 1" in result.output
    after = enrol_participant(
        db_session, actor_for(coordinator), site=coordinator.site, sex="male", year_of_birth=1981
    )
    assert (before.protocol_version.code, after.protocol_version.code) == ("mdma-at", "mdma-mdd")
    listed = _run(app, "protocol", "list")
    assert "* mdma-mdd version 1" in listed.output and "  mdma-at version 1" in listed.output
    activation = db_session.scalar(
        sa.select(AuditEvent).where(AuditEvent.action == "protocol_version.activate")
    )
    assert activation is not None and activation.actor.startswith("cli:")

    # A file changed under a version already loaded is refused, and changes nothing.
    changed = tmp_path / "changed.toml"
    text = (FIXTURES / "protocols" / "mdma-mdd-v1.toml").read_text()
    changed.write_text(text.replace("remission_max_total = 10", "remission_max_total = 12"))
    refused = _run(app, "protocol", "activate", str(changed))
    assert refused.exit_code == 1
    assert "give the changed protocol a new version" in refused.output


def test_the_randomisation_list_and_the_study_unblinding_from_the_command_line(
    app: Flask, db_session: Session
) -> None:
    """The statistician generates a list (password asked again), imports one from CSV (bad
    lines named), and with an admin unblinds the study; a wrong password is refused."""
    from tests.factories import make_user
    from tracker.audit.services import Actor
    from tracker.paths import FIXTURES
    from tracker.randomisation.models import RandomisationEntry, RandomisationList
    from tracker.study.services import activate_protocol

    activate_protocol(
        db_session,
        Actor.system(),
        (FIXTURES / "protocols" / "mdma-mdd-v2.toml").read_text(encoding="utf-8"),
    )
    make_user(db_session, "coordinator", "S01")  # the site the strata are made of
    make_user(db_session, "statistician", None, username="stat.cli")
    make_user(db_session, "admin", None, username="admin.cli")
    db_session.commit()

    generate = ("randomisation", "generate", "--per-stratum", "6", "--seed", "42")
    wrong = _run(app, *generate, "--by", "stat.cli", "--password-stdin", stdin="nope\n")
    assert wrong.exit_code == 1 and "error:" in wrong.output
    done = _run(app, *generate, "--by", "stat.cli", "--password-stdin", stdin=PASSWORD + "\n")
    assert done.exit_code == 0, done.output
    stored = db_session.scalars(sa.select(RandomisationList)).one()
    assert f"hash {stored.content_hash}" in done.output and stored.source == "generated"
    assert "42" not in str(
        db_session.scalar(
            sa.select(AuditEvent.new_values).where(AuditEvent.action == "randomisation.list_store")
        )
    )

    # The same entries as CSV import to a list with the same hash (nothing is allocated yet).
    rows = db_session.scalars(
        sa.select(RandomisationEntry).where(RandomisationEntry.list_id == stored.id)
    ).all()
    lines = ["stratum,position,block,block_size,arm"] + [
        f"{e.stratum},{e.position},{e.block},{e.block_size},{e.arm}" for e in rows
    ]
    path = Path(app.instance_path) / "list.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    imported = _run(
        app,
        "randomisation",
        "import",
        str(path),
        "--by",
        "stat.cli",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert imported.exit_code == 0, imported.output
    assert f"hash {stored.content_hash}" in imported.output
    path.write_text(
        lines[0] + "\nS99|severe,1,1,4,midomafetamine\nS01|severe,x,1,4,active_placebo\n"
    )
    refused = _run(
        app,
        "randomisation",
        "import",
        str(path),
        "--by",
        "stat.cli",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert refused.exit_code == 1 and "Line 3: position, block and block_size" in refused.output

    unblind = ("study", "unblind", "--admin", "admin.cli", "--statistician", "stat.cli")
    half = _run(app, *unblind, "--reason", "Lock", "--password-stdin", stdin=f"{PASSWORD}\nbad\n")
    assert half.exit_code == 1
    whole = _run(
        app,
        *unblind,
        "--reason",
        "Database lock",
        "--password-stdin",
        stdin=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert whole.exit_code == 0 and "The study is unblinded" in whole.output, whole.output
    assert (
        db_session.scalar(sa.select(AuditEvent.reason).where(AuditEvent.action == "study.unblind"))
        == "Database lock"
    )


def test_the_drug_ledger_from_the_command_line(
    app: Flask, db_session: Session, team, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """`inventory reconcile` prints each lot's balance and checks and exits 1 on a failing
    one; `inventory log` writes the lot's accountability log as a PDF a reader opens, and the
    export is on the audit trail."""
    from pypdf import PdfReader

    from tests.factories import actor, keep_ledger
    from tracker import clock
    from tracker.pharmacy import services
    from tracker.pharmacy.models import DrugLot

    team, receipt = keep_ledger(db_session, team, units=30)
    db_session.commit()
    clean = _run(app, "inventory", "reconcile")
    assert clean.exit_code == 0, clean.output
    assert "balance 30 units" in clean.output and "C20:not_applicable" in clean.output

    lot = db_session.get(DrugLot, receipt.lot_id)
    services.record_entry(
        db_session,
        actor(team.pharmacist),
        team.pharmacist,
        lot,
        kind="count",
        counted_units=28,
        occurred_at=clock.now(),
    )
    db_session.commit()
    short = _run(app, "inventory", "reconcile", "--site", "S01")
    assert short.exit_code == 1
    assert "C20:fail" in short.output and "28 counted (-2), not explained" in short.output

    output = tmp_path / "log.pdf"
    written = _run(app, "inventory", "log", str(lot.id), "--pdf", str(output))
    assert written.exit_code == 0, written.output
    text = PdfReader(output).pages[0].extract_text()
    assert lot.lot_number in text and "Physical count" in text
    event = db_session.scalar(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
    assert event.action == "report.export" and event.entity_type == "accountability_log"
    missing = _run(app, "inventory", "log", "99999", "--pdf", str(output))
    assert missing.exit_code == 1 and "No lot 99999" in missing.output
