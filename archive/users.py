"""The web UI's accounts: names and argon2 password hashes (argon2-cffi), nothing in plaintext."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from archive.errors import UfarchiveError
from archive.models import LoginFailure, User, utcnow

NAME = re.compile(r"^[\w.@-]{1,128}$")
MIN_PASSWORD = 8
_hasher = PasswordHasher()
#: Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY = _hasher.hash("not a password of anyone")


class UserError(UfarchiveError):
    pass


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password: at least {MIN_PASSWORD} characters")
    return password


def add_user(session: Session, name: str, password: str, *, replace: bool = False) -> User:
    """A new user (or, with replace, a new password for one); the caller commits."""
    if not NAME.match(name):
        raise UserError(f"user name {name!r}: letters, digits and . @ _ - only (1-128)")
    check_password(password)
    user = session.scalar(select(User).where(User.name == name))
    if user is not None and not replace:
        raise UserError(f"user {name}: exists already (--replace sets a new password)")
    if user is None:
        user = User(name=name, password_hash="")
        session.add(user)
    user.password_hash = _hasher.hash(password)
    session.flush()
    return user


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The user whose name and password these are, or None; rehashes a hash made with
    older parameters."""
    user = session.scalar(select(User).where(User.name == name))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login = utcnow()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def remove_user(session: Session, name: str) -> None:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UserError(f"user {name}: no such user")
    session.delete(user)


#: How long failed logins are kept (the limit counts the last minute of them).
FAILURES_KEPT = timedelta(hours=1)


def login_blocked(session: Session, key: str, per_minute: int, now: datetime | None = None) -> bool:
    """Whether `key` (a client address) failed `per_minute` logins in the last minute.
    Counted in the database, so the limit holds across every process of `serve`."""
    since = (now or utcnow()) - timedelta(minutes=1)
    failures = session.scalar(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.key == key, LoginFailure.at > since)
    )
    return int(failures or 0) >= per_minute


def login_failed(session: Session, key: str, now: datetime | None = None) -> None:
    """Record a failed login of `key` and forget failures older than FAILURES_KEPT; the
    caller commits."""
    now = now or utcnow()
    session.execute(delete(LoginFailure).where(LoginFailure.at < now - FAILURES_KEPT))
    session.execute(insert(LoginFailure).values(key=key[:64], at=now))
