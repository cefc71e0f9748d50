"""argon2id password hashing and the password policy."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256

# RFC 9106's second recommended option (64 MiB, 3 passes); tests use a cheaper setting.
_STRONG = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4, type=Type.ID)
_FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID)
_hasher = _STRONG


def use_fast_hashing(enabled: bool) -> None:
    """Cheaper argon2id parameters for the test suite; never set outside testing."""
    global _hasher
    _hasher = _FAST if enabled else _STRONG


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@functools.cache
def _dummy_hash(fast: bool) -> str:
    """Verified against when the username is unknown, so both paths cost the same time. Made
    on the first sign-in with an unknown name, not at import: every command and worker would
    otherwise pay an argon2 hash (64 MiB, some 0.2 s) to start."""
    return (_FAST if fast else _STRONG).hash("not-a-real-password-0000")


def burn_time(password: str) -> None:
    verify_password(_dummy_hash(_hasher is _FAST), password)


def password_problems(password: str, username: str | None = None) -> list[str]:
    """Every reason a new password is refused (empty when it is acceptable)."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"The password must have at most {MAX_PASSWORD_LENGTH} characters.")
    if username and username.lower() in password.lower():
        problems.append("The password must not contain the username.")
    if password.strip() != password:
        problems.append("The password must not begin or end with spaces.")
    return problems
