"""Users, logins, login sessions and API tokens. Every change is audited."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, record_event
from tracker.auth.models import SITELESS_ROLES, ApiToken, SignIn, User
from tracker.auth.passwords import (
    burn_time,
    hash_password,
    needs_rehash,
    password_problems,
    verify_password,
)
from tracker.db import utcnow, write_unit
from tracker.errors import Conflict, InvalidInput, NotFound, RuleViolation
from tracker.protocol.roles import Role
from tracker.sites.models import Site

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{2,63}$")
TOKEN_PREFIX = "trk_"  # noqa: S105 (a public marker, not a secret)
# How stale a login's last-seen time (or a token's last use) may get before it is written.
LAST_SEEN_RESOLUTION = timedelta(seconds=60)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def actor_for(user: User, ip_address: str | None = None) -> Actor:
    return Actor(username=user.username, role=user.role, user_id=user.id, ip_address=ip_address)


def _user_values(user: User) -> dict[str, object]:
    return {
        "username": user.username,
        "printed_name": user.printed_name,
        "role": user.role,
        "site": user.site.code if user.site else None,
        "is_active": user.is_active,
        "email": user.email,
    }


def _check_role_and_site(role: str, site: Site | None) -> list[str]:
    problems = []
    if role not in {r.value for r in Role}:
        problems.append(f"Unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}.")
    elif role in SITELESS_ROLES and site is not None:
        problems.append(f"The {role} role is study-wide and takes no site.")
    elif role not in SITELESS_ROLES and site is None:
        problems.append(f"The {role} role needs a site.")
    return problems


def get_user(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def get_user_by_username(db: Session, username: str) -> User:
    user = db.scalar(sa.select(User).where(User.username == username.strip().lower()))
    if user is None:
        raise NotFound(f"No user named {username!r}.")
    return user


def list_users(db: Session) -> list[User]:
    return list(db.scalars(sa.select(User).order_by(User.username)))


def _check_printed_name_free(db: Session, printed_name: str) -> None:
    """A signature's printed name must identify one person: no two users share one (the
    case and the spacing of a name do not make it another)."""
    taken = db.scalar(
        sa.select(User.username).where(sa.func.lower(User.printed_name) == printed_name.lower())
    )
    if taken is not None:
        raise Conflict(
            f"The printed name {printed_name!r} is already used by {taken}; signatures must "
            "name one person, so add a middle initial or a qualification.",
            ["The printed name is already used by another user."],
        )


def create_user(
    db: Session,
    actor: Actor,
    *,
    username: str,
    role: str,
    password: str,
    printed_name: str,
    site: Site | None = None,
    temporary: bool = True,
    email: str | None = None,
) -> User:
    """Create a user; every problem with the input is reported at once. The password is
    temporary unless said otherwise: whoever chose it is not the user (SPEC §6)."""
    username = username.strip().lower()
    printed_name = " ".join(printed_name.split())
    problems: list[str] = []
    email = _email(email, problems)
    if not USERNAME.match(username):
        problems.append(
            "The username must be 3 to 64 characters: lower-case letters, digits, '.', '_' or '-',"
            " starting with a letter."
        )
    if not printed_name or len(printed_name) > 200:
        problems.append("The printed name (used on signatures) must be 1 to 200 characters.")
    problems += _check_role_and_site(role, site)
    problems += password_problems(password, username)
    if problems:
        raise InvalidInput("The user cannot be created: " + " ".join(problems), problems)
    if db.scalar(sa.select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"The username {username!r} is taken.")
    _check_printed_name_free(db, printed_name)
    user = User(
        username=username,
        role=role,
        site=site,
        printed_name=printed_name,
        password_hash=hash_password(password),
        password_temporary=temporary,
        email=email,
    )
    db.add(user)
    db.flush()
    record_event(db, actor, "user.create", "user", user.id, new=_user_values(user))
    return user


EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def _email(value: str | None, problems: list[str]) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    if len(text) > 254 or not EMAIL.match(text):
        problems.append(f"{text!r} is not an e-mail address.")
    return text.lower()


def set_email(db: Session, actor: Actor, user: User, email: str | None) -> User:
    """The address the user's safety notifications go to (an admin sets it); empty: none."""
    problems: list[str] = []
    clean = _email(email, problems)
    if problems:
        raise InvalidInput("The e-mail address was not changed: " + " ".join(problems), problems)
    if clean == user.email:
        return user
    old = user.email
    user.email = clean
    db.flush()
    record_event(
        db, actor, "user.email_change", "user", user.id, old={"email": old}, new={"email": clean}
    )
    return user


def change_role(
    db: Session, actor: Actor, user: User, role: str, site: Site | None, reason: str
) -> User:
    """Change a user's role and site; their open sessions end so the new rights apply at once."""
    problems = _check_role_and_site(role, site)
    if not reason.strip():
        problems.append("A reason is required for a change of role or site.")
    if actor.user_id == user.id:
        problems.append("You cannot change your own role.")
    if problems:
        raise InvalidInput("The role cannot be changed: " + " ".join(problems), problems)
    before = _user_values(user)
    user.role = role
    user.site = site
    db.flush()
    after = _user_values(user)
    if before == after:
        return user
    record_event(
        db,
        actor,
        "user.role_change",
        "user",
        user.id,
        old=before,
        new=after,
        reason=reason.strip(),
    )
    end_user_sessions(db, user, "role_changed")
    return user


def set_active(db: Session, actor: Actor, user: User, active: bool, reason: str) -> User:
    """Disable or re-enable an account; disabling ends every session of the user."""
    if not reason.strip():
        raise InvalidInput("A reason is required to enable or disable an account.")
    if actor.user_id == user.id and not active:
        raise InvalidInput("You cannot disable your own account.")
    if user.is_active == active:
        return user
    user.is_active = active
    if active:
        user.failed_login_count = 0
        user.locked_until = None
    db.flush()
    record_event(
        db,
        actor,
        "user.enable" if active else "user.disable",
        "user",
        user.id,
        old={"is_active": not active},
        new={"is_active": active},
        reason=reason.strip(),
    )
    if not active:
        end_user_sessions(db, user, "disabled")
        _revoke_tokens(db, user)
    return user


def set_password(db: Session, actor: Actor, user: User, password: str, reason: str) -> User:
    """Set a new password (own change or an admin's reset). Every session and API token of
    the user ends; a password someone else set is temporary until its owner replaces it."""
    problems = password_problems(password, user.username)
    own = actor.user_id == user.id
    if own and verify_password(user.password_hash, password):
        problems.append("The new password must differ from the current one.")
    if problems:
        raise InvalidInput("The password is not acceptable: " + " ".join(problems), problems)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    user.password_temporary = not own
    user.failed_login_count = 0
    user.locked_until = None
    db.flush()
    action = "user.password_change" if own else "user.password_reset"
    record_event(db, actor, action, "user", user.id, new={"temporary": not own}, reason=reason)
    end_user_sessions(db, user, "password_changed")
    _end_tokens(db, actor, user, "password changed" if own else "password reset")
    return user


def end_user_sessions(db: Session, user: User, reason: str) -> int:
    result = db.execute(
        sa.update(SignIn)
        .where(SignIn.user_id == user.id, SignIn.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- password checks outside the login: signing, changing the password ---------------------


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)


def lockout_policy() -> LockoutPolicy:
    """The app's lockout settings (the defaults outside an app: the CLI, the tests)."""
    from flask import current_app, has_app_context

    if not has_app_context():
        return LockoutPolicy()
    config = current_app.config
    return LockoutPolicy(
        config["TRACKER_LOGIN_MAX_FAILURES"], timedelta(minutes=config["TRACKER_LOCKOUT_MINUTES"])
    )


# Session.info key: the refusal's own record (failure count, audit event) is committed even
# though the answer is a 4xx; the edge reads it (tracker/__init__.py, _commit_at_the_edge).
COMMIT_REFUSAL = "tracker.commit_refusal"
WRONG_PASSWORD = "The password is not correct."  # noqa: S105 (a message)


class PasswordRefused(RuleViolation):
    """A password asked for again (to sign, to change it) was wrong, or the account is
    locked. Every wrong password gets this same answer."""


def check_password(db: Session, user: User, actor: Actor, password: str, purpose: str) -> None:
    """Re-authenticate ``user`` before an act that needs it. Must run before the act writes
    anything: a failure counts towards the account's lockout and is audited, and the edge
    commits that record alone with the 4xx answer. Reaching the limit locks the account
    and ends its sessions, so a stolen session cannot keep guessing."""
    policy = lockout_policy()
    now = utcnow()
    if user.locked_until is not None and user.locked_until > now:
        burn_time(password)
        _refusal(db, actor, user, purpose, "account locked")
        raise PasswordRefused(
            "This account is locked after repeated wrong passwords; ask an administrator or "
            "wait for the lock to end.",
            ["The account is locked."],
        )
    if verify_password(user.password_hash, password or ""):
        if user.failed_login_count:
            user.failed_login_count = 0
            db.flush()
        return
    _count_failure(db, user)
    _refusal(db, actor, user, purpose, "wrong password")
    if _lock_at_limit(db, user, policy.max_failures, policy.lockout, "wrong passwords"):
        end_user_sessions(db, user, "locked")
    raise PasswordRefused(f"{WRONG_PASSWORD} Nothing was {purpose}.", [WRONG_PASSWORD])


def _refusal(db: Session, actor: Actor, user: User, purpose: str, reason: str) -> None:
    record_event(
        db,
        actor,
        "auth.password_check_failed",
        "user",
        user.id,
        new={"purpose": purpose},
        reason=reason,
    )
    db.info[COMMIT_REFUSAL] = True


def _count_failure(db: Session, user: User) -> None:
    """One more wrong password, counted in SQL so that concurrent failures on several
    workers all count (logins and passwords asked again share the counter)."""
    db.execute(
        sa.update(User)
        .where(User.id == user.id)
        .values(failed_login_count=User.failed_login_count + 1)
    )
    db.refresh(user)


def _lock_at_limit(
    db: Session, user: User, max_failures: int, lockout: timedelta, what: str
) -> bool:
    """Lock the account once its failures reach the limit (audited); True if it did."""
    if user.failed_login_count < max_failures:
        return False
    _lock(db, user, utcnow() + lockout, f"{max_failures} {what}")
    return True


def _lock(db: Session, user: User, until: datetime, reason: str) -> None:
    user.locked_until = until
    user.failed_login_count = 0
    db.flush()
    record_event(
        db,
        Actor.system(),
        "auth.account_locked",
        "user",
        user.id,
        new={"locked_until": user.locked_until},
        reason=reason,
    )


# --- logging in ---------------------------------------------------------------------------


class LoginRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


GENERIC_REFUSAL = "Invalid username or password."


@dataclass(frozen=True)
class LoginResult:
    user: User
    sign_in_token: str


def authenticate(
    db: Session,
    username: str,
    password: str,
    *,
    ip_address: str | None,
    max_failures: int,
    lockout: timedelta,
) -> LoginResult:
    """Check a username and password, keeping the lockout in the database.

    Raises LoginRefused; the failure is audited and must be committed by the caller.
    """
    username = username.strip().lower()[:64]
    now = utcnow()
    user = db.scalar(sa.select(User).where(User.username == username).with_for_update(of=User))
    anonymous = Actor(username=username or "(blank)", role=None, ip_address=ip_address)
    if user is None:
        burn_time(password)
        record_event(db, anonymous, "auth.login_failed", "user", None, reason="unknown username")
        raise LoginRefused(GENERIC_REFUSAL)
    actor = actor_for(user, ip_address)
    if user.locked_until is not None and user.locked_until > now:
        burn_time(password)
        record_event(db, actor, "auth.login_failed", "user", user.id, reason="account locked")
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        raise LoginRefused(
            f"This account is locked after repeated failed logins; try again in {minutes} minutes "
            "or ask an administrator."
        )
    if not verify_password(user.password_hash, password) or not user.is_active:
        if not user.is_active:
            record_event(db, actor, "auth.login_failed", "user", user.id, reason="account disabled")
            raise LoginRefused(GENERIC_REFUSAL)
        _count_failure(db, user)
        record_event(db, actor, "auth.login_failed", "user", user.id, reason="wrong password")
        _lock_at_limit(db, user, max_failures, lockout, "failed logins")
        raise LoginRefused(GENERIC_REFUSAL)

    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_login_count = 0
    user.locked_until = None
    token = secrets.token_urlsafe(32)
    db.add(
        SignIn(
            user=user,
            token_hash=sha256_hex(token),
            ip_address=ip_address,
            created_at=now,
            last_seen_at=now,
        )
    )
    db.flush()
    record_event(db, actor, "auth.login", "user", user.id)
    return LoginResult(user=user, sign_in_token=token)


def load_sign_in(db: Session, token: str, idle: timedelta) -> User | None:
    """The user of a live login session, or None; an idle session is ended here. Its two
    writes (ending it, its last-seen time at most once a minute) go through ``write_unit``,
    so a page that only reads takes no write lock."""
    login = db.scalar(sa.select(SignIn).where(SignIn.token_hash == sha256_hex(token)))
    if login is None or login.ended_at is not None or not login.user.is_active:
        return None
    now = utcnow()
    if now - login.last_seen_at > idle:
        with write_unit(db) as writes:
            ended = writes.execute(
                sa.update(SignIn)
                .where(SignIn.id == login.id, SignIn.ended_at.is_(None))
                .values(ended_at=now, end_reason="idle")
                .execution_options(synchronize_session=False)
            )
            if ended.rowcount:  # type: ignore[attr-defined]
                record_event(
                    writes, actor_for(login.user), "auth.session_expired", "user", login.user_id
                )
        return None
    if now - login.last_seen_at > LAST_SEEN_RESOLUTION:
        _touch(db, SignIn.last_seen_at, login.id)
    return login.user


def _touch(
    db: Session,
    column: sa.orm.InstrumentedAttribute[datetime | None] | sa.orm.InstrumentedAttribute[datetime],
    row_id: int,
) -> None:
    """Write a last-seen or last-used time (in ``write_unit``: a read may be the one to)."""
    table = column.class_
    with write_unit(db) as writes:
        writes.execute(
            sa.update(table)
            .where(table.id == row_id)
            .values({column.key: utcnow()})
            .execution_options(synchronize_session=False)
        )


def logout(db: Session, token: str, actor: Actor) -> None:
    login = db.scalar(sa.select(SignIn).where(SignIn.token_hash == sha256_hex(token)))
    if login is not None and login.ended_at is None:
        login.ended_at = utcnow()
        login.end_reason = "logout"
        db.flush()
        record_event(db, actor, "auth.logout", "user", login.user_id)


# --- API tokens -----------------------------------------------------------------------------


DEFAULT_TOKEN_LIFETIME = timedelta(days=90)
MAX_TOKEN_LIFETIME = timedelta(days=366)


def create_api_token(
    db: Session, actor: Actor, user: User, expires_in: timedelta = DEFAULT_TOKEN_LIFETIME
) -> str:
    """Make a new bearer token for ``user``; the plain token is returned once and never stored.
    It expires (90 days unless told), and ends when the user's password changes."""
    if not user.is_active:
        raise InvalidInput(f"{user.username} is disabled; enable the account first.")
    if user.password_temporary:
        raise RuleViolation(
            f"{user.username} has a temporary password set by an administrator: they must sign "
            "in and choose their own before an API token can be made.",
            ["The user's password is temporary."],
        )
    if not timedelta(minutes=1) <= expires_in <= MAX_TOKEN_LIFETIME:
        raise InvalidInput("A token lives between one minute and 366 days.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=user,
        token_hash=sha256_hex(raw),
        prefix=raw[: len(TOKEN_PREFIX) + 6],
        expires_at=utcnow() + expires_in,
    )
    db.add(token)
    db.flush()
    record_event(
        db,
        actor,
        "api_token.create",
        "user",
        user.id,
        new={"token": token.prefix + "…", "expires_at": token.expires_at},
    )
    return raw


def revoke_api_tokens(db: Session, actor: Actor, user: User) -> int:
    count = _revoke_tokens(db, user)
    record_event(db, actor, "api_token.revoke", "user", user.id, new={"revoked": count})
    return count


def _revoke_tokens(db: Session, user: User) -> int:
    result = db.execute(
        sa.update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _end_tokens(db: Session, actor: Actor, user: User, reason: str) -> None:
    count = _revoke_tokens(db, user)
    if count:
        record_event(
            db,
            actor,
            "api_token.revoke",
            "user",
            user.id,
            new={"revoked": count},
            reason=reason,
        )


def authenticate_token(db: Session, raw: str) -> User | None:
    """The user of a live bearer token, or None; its last use is written once a minute."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 128:
        return None
    token = db.scalar(sa.select(ApiToken).where(ApiToken.token_hash == sha256_hex(raw)))
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    if token.expires_at <= utcnow() or token.user.password_temporary:
        return None
    if token.last_used_at is None or utcnow() - token.last_used_at > LAST_SEEN_RESOLUTION:
        _touch(db, ApiToken.last_used_at, token.id)
    return token.user
