from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.db import Base, utcnow
from tracker.protocol.roles import Role
from tracker.sites.models import Site

ROLE_VALUES = tuple(role.value for role in Role)
SITELESS_ROLES = (Role.AUDITOR.value, Role.ADMIN.value, Role.STATISTICIAN.value)


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class User(Base):
    """A member of the study team. Users are disabled, never deleted: the audit trail names them."""

    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint(_in_list("role", ROLE_VALUES), name="role_known"),
        sa.CheckConstraint(
            f"({_in_list('role', SITELESS_ROLES)} AND site_id IS NULL) OR "
            f"(NOT {_in_list('role', SITELESS_ROLES)} AND site_id IS NOT NULL)",
            name="site_matches_role",
        ),
        sa.CheckConstraint("username = lower(username)", name="username_lower"),
        sa.CheckConstraint("failed_login_count >= 0", name="failed_login_count_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # Unique: a signature's printed name must identify one person (21 CFR 11.100(a)).
    printed_name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    role: Mapped[str] = mapped_column(sa.String(20))
    site_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sites.id"), index=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    failed_login_count: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by an admin (create or reset): its owner must replace it before signing or using
    # the API, so nobody signs with a password someone else chose.
    password_temporary: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # Where the safety notifications of the user's site are sent (investigators).
    email: Mapped[str | None] = mapped_column(sa.String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    site: Mapped[Site | None] = relationship(lazy="joined", innerjoin=False)

    # Flask-Login keeps get_id() in the cookie: the login session's token, never the user id,
    # so that ending the login session on the server ends it everywhere.
    # Not a column: set on the loaded user for the request.
    login_token = None  # type: str | None
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str | None:
        return self.login_token

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}>"


class SignIn(Base):
    """One browser sign-in. The cookie carries a random id whose hash is stored here, so that a
    logout, a password change or a disabled account ends the sign-in on every worker. (The
    table keeps its first-release name, ``login_sessions``: renaming it would be a migration
    with nothing in it for a user.)"""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(sa.String(40))
    ip_address: Mapped[str | None] = mapped_column(sa.String(64))

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class ApiToken(Base):
    """A bearer token for the JSON API; only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)
