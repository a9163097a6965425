"""Accounts, sign-in (password, then TOTP), sessions and policy acknowledgement (U3).

Every outcome — success, failure, lockout, denial — is written to the audit trail.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update

from pscs.audit.events import Actor, Outcome
from pscs.auth import grants
from pscs.auth.models import PolicyAcknowledgement, Stage, User, UserRole, WebSession
from pscs.auth.principal import Principal
from pscs.clock import utcnow
from pscs.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound, TooManyAttempts
from pscs.policy import decisions
from pscs.policy.profile import ROLES, profile_digest
from pscs.ratelimit import Limit
from pscs.runtime import Runtime

_hasher = PasswordHasher()  # argon2id, RFC 9106 parameters
_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 12
TOTP_ISSUER = "pscs"


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def _validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD_LENGTH} characters")


def _validate_roles(roles: list[str]) -> list[str]:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise InvalidInput(f"unknown role(s): {', '.join(unknown)}; roles are {', '.join(ROLES)}")
    return sorted(set(roles))


def _get_user(session, username: str) -> User:  # noqa: ANN001 - SQLAlchemy session
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


# Account management -----------------------------------------------------------------------
def create_user(rt: Runtime, actor: Actor, *, username: str, full_name: str, roles: list[str], password: str) -> User:
    """A new account.  A powerful role given by an administrator waits for a second one
    (``pscs.auth.grants``); the account starts with the others."""
    if not _USERNAME.match(username):
        raise InvalidInput("username must be 2-64 characters: lower-case letters, digits, '.', '_' or '-'")
    if not full_name.strip():
        raise InvalidInput("full name is required")
    roles = _validate_roles(roles)
    if not roles:
        raise InvalidInput("a user needs at least one role")
    _validate_password(password)
    password_hash = _hasher.hash(password)  # argon2 is slow on purpose: never inside the write
    with rt.db.write() as s:
        if s.scalar(select(User.id).where(User.username == username)) is not None:
            raise Conflict(f"a user named {username!r} already exists")
        user = User(
            username=username,
            full_name=full_name.strip(),
            password_hash=password_hash,
            must_change_password=True,
            roles=[],
        )
        s.add(user)
        s.flush()
        assignment = grants.assign_roles(rt, s, user, roles, actor, rt.clock.now())
        user_id = user.id
    rt.audit.record(
        "user.create",
        actor,
        object_type="user",
        object_id=user_id,
        clauses=("M1",),
        details={"username": username, "roles": assignment.after, "pending_roles": assignment.pending_roles},
    )
    assignment.before = assignment.after  # the account's first roles are in user.create
    grants.audit_assignment(rt, actor, assignment)
    return user


def list_users(rt: Runtime, caller: Principal) -> list[User]:
    """Every account; the reading is audited, once for the whole list (M1)."""
    with rt.db.session() as s:
        users = list(s.scalars(select(User).order_by(User.username)))
    rt.audit.record("user.read", caller.actor, object_type="user", clauses=("M1",), details={"listed": len(users)})
    return users


def read_user(rt: Runtime, caller: Principal, username: str) -> User:
    """One account, as shown to an administrator; the reading is audited (M1)."""
    user = find_user(rt, username)
    rt.audit.record(
        "user.read",
        caller.actor,
        object_type="user",
        object_id=user.id,
        clauses=("M1",),
        details={"username": username},
    )
    return user


# Lookups by the services and edges themselves (who is this, what was just made): not audited.
def get_user(rt: Runtime, user_id: int) -> User:
    with rt.db.session() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound(f"no user with id {user_id}")
        return user


def find_user(rt: Runtime, username: str) -> User:
    with rt.db.session() as s:
        return _get_user(s, username)


def update_user(
    rt: Runtime, actor: Actor, username: str, *, roles: list[str] | None = None, disabled: bool | None = None
) -> grants.RoleAssignment | None:
    """Change roles and/or the disabled flag in one transaction: all of it or none.

    The one way roles change, for the web and the command line: nobody changes their own,
    and a powerful role given by an administrator waits for a second (``pscs.auth.grants``).
    Returns what happened to the roles (None when they were not asked to change)."""
    if roles is not None:
        roles = _validate_roles(roles)
        if not roles:
            raise InvalidInput("a user needs at least one role")
        with rt.db.session() as s:
            target_id = _get_user(s, username).id
        decision = decisions.may_change_roles(own_account=grants.is_own_account(actor, target_id, username))
        if not decision.allowed:
            raise rt.audit.refusal(
                "user.roles.change",
                actor,
                decision,
                object_type="user",
                object_id=target_id,
                details={"username": username, "asked": roles},
            )
    assignment = None
    with rt.db.write() as s:
        user = _get_user(s, username)
        before = sorted(user.role_names)
        losing_admin = ("admin" in before) and (
            (roles is not None and "admin" not in roles) or (disabled is True and not user.disabled)
        )
        if losing_admin:
            _refuse_removing_last_admin(s, user)
        if roles is not None:
            assignment = grants.assign_roles(rt, s, user, roles, actor, rt.clock.now())
        if disabled is not None:
            user.disabled = disabled
            if disabled:
                _end_sessions(s, user.id, "account disabled")
        user_id = user.id
    if assignment is not None:
        grants.audit_assignment(rt, actor, assignment)
    if disabled is not None:
        rt.audit.record(
            "user.disable" if disabled else "user.enable",
            actor,
            object_type="user",
            object_id=user_id,
            clauses=("M1",),
            details={"username": username},
        )
    return assignment


def _refuse_removing_last_admin(s, user: User) -> None:  # noqa: ANN001
    admins = s.scalar(
        select(func.count())
        .select_from(UserRole)
        .join(User)
        .where(UserRole.role == "admin", User.disabled.is_(False), User.id != user.id)
    )
    if not admins:
        raise Conflict("this is the last active administrator")


def reset_mfa(rt: Runtime, actor: Actor, username: str) -> None:
    """The user enrols a new authenticator at next sign-in."""
    with rt.db.write() as s:
        user = _get_user(s, username)
        user.totp_secret_enc = None
        user.mfa_enrolled = False
        user.last_totp_step = 0
        user_id = user.id
        _end_sessions(s, user_id, "mfa reset")
    rt.audit.record("user.mfa.reset", actor, object_type="user", object_id=user_id, details={"username": username})


def reset_password(rt: Runtime, actor: Actor, username: str) -> str:
    """A new one-time password, which the user must change at next sign-in."""
    password = generate_password()
    password_hash = _hasher.hash(password)
    with rt.db.write() as s:
        user = _get_user(s, username)
        user.password_hash = password_hash
        user.must_change_password = True
        user.failed_attempts = 0
        user.locked_until = None
        user_id = user.id
        _end_sessions(s, user_id, "password reset")
    rt.audit.record("user.password.reset", actor, object_type="user", object_id=user_id, details={"username": username})
    return password


def change_password(
    rt: Runtime, actor: Actor, user_id: int, current: str, new: str, *, keep_session: int | None = None
) -> None:
    """Change one's own password; every other session of the account ends (one signed in
    with the old password elsewhere is not kept), ``keep_session`` (the caller's) stays."""
    _validate_password(new)
    if new == current:
        raise InvalidInput("the new password must differ from the current one")
    # Both hashes are worked out with no transaction open (see sign_in_password).
    with rt.db.session() as s:
        stored = s.scalar(select(User.password_hash).where(User.id == user_id))
    if stored is None or not _password_matches(stored, current):
        raise AuthenticationFailed("the current password is wrong")
    new_hash = _hasher.hash(new)
    with rt.db.write() as s:
        user = s.get(User, user_id, with_for_update=True, populate_existing=True)
        if user is None or user.password_hash != stored:
            raise Conflict("the password was changed meanwhile; sign in again")
        user.password_hash = new_hash
        user.must_change_password = False
        ended = _end_sessions(s, user_id, "password changed", keep=keep_session)
    rt.audit.record(
        "user.password.change", actor, object_type="user", object_id=user_id, details={"other_sessions_ended": ended}
    )


def _password_matches(stored: str, given: str) -> bool:
    try:
        return _hasher.verify(stored, given)
    except (VerificationError, InvalidHashError):
        return False


# Sign-in ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewSession:
    token: str  # given to the client once; only its hash is stored
    session_id: int
    user_id: int
    csrf_token: str


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_GENERIC_FAILURE = "wrong user name or password, or the account is locked or disabled"


def _record_failure(rt: Runtime, s, user: User, now: datetime) -> bool:  # noqa: ANN001
    """Count a failed factor; returns True when this failure locked the account."""
    user.failed_attempts, locked_until = decisions.after_failed_attempt(user.failed_attempts, now, rt.profile)
    if locked_until is not None:
        user.locked_until = locked_until
        return True
    return False


def sign_in_password(rt: Runtime, actor: Actor, username: str, password: str) -> NewSession:
    """First factor.  The same message for every failure, so accounts cannot be probed.

    The hash is checked between a short read and a short write, with no transaction open:
    argon2 is slow on purpose, and on SQLite a write transaction is the database's only
    write lock, so checking it inside one would let anyone stall every writer."""
    _admit_attempt(rt, actor, username)
    now = rt.clock.now()
    outcome_details: dict[str, object] = {"username": username}
    with rt.db.session() as s:
        found = s.execute(
            select(User.id, User.password_hash, User.disabled, User.locked_until).where(User.username == username)
        ).first()
    if found is None:
        _password_matches(_DUMMY_HASH, password)  # same cost as a real check
        matched = False
    elif found.disabled or decisions.is_locked(found.locked_until, now):
        matched = False  # refused below without spending a hash on it
    else:
        matched = _password_matches(found.password_hash, password)

    reason = "unknown user" if found is None else None
    locked_now = False
    user_id = found.id if found is not None else None
    if found is not None:
        with rt.db.write() as s:
            # Decided again on the row as it is now, locked until the write ends: another
            # attempt may have locked the account, or an administrator disabled it, while
            # the hash was being checked; parallel failures are counted one at a time.
            user = s.get(User, found.id, with_for_update=True, populate_existing=True)
            if user is None:
                reason = "unknown user"
            elif user.disabled:
                reason = "account disabled"
            elif decisions.is_locked(user.locked_until, now):
                reason = "account locked"
            elif not matched:
                reason = "wrong password"
                locked_now = _record_failure(rt, s, user, now)
            elif user.password_hash != found.password_hash:
                reason = "password changed during sign-in"
            else:
                new = _open_session(s, user, Stage.PASSWORD, actor)
    actor = Actor(username, user_id, actor.source_ip, actor.user_agent)
    if reason is not None:
        rt.audit.record(
            "auth.login.password",
            actor,
            Outcome.DENIED,
            object_type="user",
            object_id=user_id,
            clauses=(decisions.LOCKOUT,),
            details=outcome_details | {"reason": reason},
        )
        if locked_now:
            _audit_locked(rt, actor, user_id)
        raise AuthenticationFailed(_GENERIC_FAILURE)
    rt.audit.record("auth.login.password", actor, object_type="user", object_id=user_id, details=outcome_details)
    return new


_DUMMY_HASH = _hasher.hash("pscs-dummy-password")


def _admit_attempt(rt: Runtime, actor: Actor, username: str) -> None:
    """Refuse, before any hash is worked out, an attempt past the limits per source address
    and per account (the account's name, known or not: the refusal tells nothing)."""
    settings = rt.settings
    window = settings.login_window_seconds
    limits = [Limit(f"account:{username}", settings.login_attempts_per_account, window)]
    if actor.source_ip:
        limits.append(Limit(f"address:{actor.source_ip}", settings.login_attempts_per_address, window))
    wait = rt.sign_in_attempts.attempt(limits)
    if wait is None:
        return
    retry_after_s = max(1, math.ceil(wait))
    rt.audit.record(
        "auth.login.throttled",
        Actor(username, None, actor.source_ip, actor.user_agent),
        Outcome.DENIED,
        object_type="user",
        clauses=(decisions.LOCKOUT,),
        details={"username": username, "retry_after_s": retry_after_s},
    )
    raise TooManyAttempts(f"too many sign-in attempts; try again in {retry_after_s} seconds", retry_after_s)


def _audit_locked(rt: Runtime, actor: Actor, user_id: int | None) -> None:
    """The failure that reached the limit locked the account (CJIS 5.5.3)."""
    rt.audit.record(
        "auth.account.locked",
        actor,
        Outcome.DENIED,
        object_type="user",
        object_id=user_id,
        clauses=(decisions.LOCKOUT,),
        details={"minutes": rt.profile.security.lockout_minutes, "attempts": rt.profile.security.lockout_attempts},
    )


def _open_session(s, user: User, stage: Stage, actor: Actor) -> NewSession:  # noqa: ANN001
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    row = WebSession(
        token_hash=_token_hash(token),
        user_id=user.id,
        stage=stage,
        csrf_token=csrf,
        source_ip=actor.source_ip,
        user_agent=(actor.user_agent or "")[:400] or None,
    )
    s.add(row)
    s.flush()
    return NewSession(token, row.id, user.id, csrf)


def totp_secret(rt: Runtime, user: User) -> str | None:
    return rt.secrets.decrypt(user.totp_secret_enc) if user.totp_secret_enc else None


def begin_enrolment(rt: Runtime, user_id: int) -> tuple[str, str]:
    """A new TOTP secret for a user not yet enrolled; returns (secret, otpauth URI)."""
    with rt.db.write() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound("no such user")
        if user.mfa_enrolled:
            raise Conflict("multi-factor authentication is already enrolled")
        secret = totp_secret(rt, user)
        if secret is None:
            secret = pyotp.random_base32()
            user.totp_secret_enc = rt.secrets.encrypt(secret)
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=TOTP_ISSUER)
    return secret, uri


def _check_totp(secret: str, code: str, last_step: int, now: datetime) -> int | None:
    """The time step the code matches (one step of clock drift allowed), or None.
    A code at or before ``last_step`` was used already and is refused (replay)."""
    code = code.strip().replace(" ", "")
    if not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    step = int(now.timestamp()) // totp.interval
    for candidate in (step, step - 1, step + 1):
        if candidate > last_step and secrets.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def sign_in_second_factor(rt: Runtime, actor: Actor, session_id: int, code: str) -> NewSession:
    """Second factor: enrols on first use (the secret from ``begin_enrolment``).

    The session gets a new token (and CSRF token) as it becomes fully signed in: a token
    seen or planted before the second factor is worth nothing after it (session fixation).
    """
    now = rt.clock.now()
    with rt.db.write() as s:
        ws = s.get(WebSession, session_id)
        if ws is None:
            raise AuthenticationFailed("sign in with your password first")
        # The user's row, then the session's, locked until the write ends (the order every
        # writer of both keeps): the failure count and the last TOTP step used are decided
        # one attempt at a time, so one code passes once.
        user = s.get(User, ws.user_id, with_for_update=True, populate_existing=True)
        ws = s.get(WebSession, session_id, with_for_update=True, populate_existing=True)
        assert user is not None and ws is not None
        if ws.ended_at is not None or ws.stage != Stage.PASSWORD:
            raise AuthenticationFailed("sign in with your password first")
        secret = totp_secret(rt, user)
        locked = decisions.is_locked(user.locked_until, now)
        step = (
            None if (secret is None or locked or user.disabled) else _check_totp(secret, code, user.last_totp_step, now)
        )
        enrolling = not user.mfa_enrolled
        locked_now = False
        if step is None:
            if not locked:
                locked_now = _record_failure(rt, s, user, now)
            if locked or locked_now:
                _end_sessions(s, user.id, "account locked")
        else:
            user.last_totp_step = step
            user.failed_attempts = 0
            user.mfa_enrolled = True
            ws.stage = Stage.FULL
            ws.last_seen_at = now
            rotated = _rotate_token(ws)
        user_id = user.id
    actor = Actor(actor.username, user_id, actor.source_ip, actor.user_agent)
    action = "auth.mfa.enrol" if enrolling else "auth.login.mfa"
    if step is None:
        rt.audit.record(
            action,
            actor,
            Outcome.DENIED,
            object_type="user",
            object_id=user_id,
            clauses=(decisions.LOCKOUT,),
            details={"reason": "locked" if locked else "wrong code"},
        )
        if locked_now:
            _audit_locked(rt, actor, user_id)
        raise AuthenticationFailed("the code is wrong or expired" if not (locked or locked_now) else _GENERIC_FAILURE)
    rt.audit.record(action, actor, object_type="user", object_id=user_id)
    return rotated


def _rotate_token(ws: WebSession) -> NewSession:
    token = secrets.token_urlsafe(32)
    ws.token_hash = _token_hash(token)
    ws.csrf_token = secrets.token_urlsafe(32)
    return NewSession(token, ws.id, ws.user_id, ws.csrf_token)


@dataclass(frozen=True)
class SessionView:
    """What a request learns about its session."""

    session_id: int
    user_id: int
    username: str
    full_name: str
    roles: frozenset[str]
    stage: str
    csrf_token: str
    must_change_password: bool
    mfa_enrolled: bool


class SessionEnded(AuthenticationFailed):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


TOUCH_EVERY = timedelta(seconds=15)  # how stale last_seen_at may get before a write refreshes it


def resume_session(rt: Runtime, token: str, *, touch: bool = True) -> SessionView:
    """Look up a session by its token; ends it when idle or past its lifetime.

    Reads first and writes only when something changes, so that an ordinary request
    costs no write transaction.
    """
    now = rt.clock.now()
    with rt.db.session() as s:
        ws = s.scalar(select(WebSession).where(WebSession.token_hash == _token_hash(token)))
        if ws is None or ws.ended_at is not None:
            raise SessionEnded("you are not signed in", "none")
        user = s.get(User, ws.user_id)
        assert user is not None
        status = decisions.session_status(ws.created_at, ws.last_seen_at, now, rt.profile)
        view = SessionView(
            ws.id,
            user.id,
            user.username,
            user.full_name,
            user.role_names,
            ws.stage,
            ws.csrf_token,
            user.must_change_password,
            user.mfa_enrolled,
        )
        disabled, source_ip, last_seen = user.disabled, ws.source_ip, ws.last_seen_at
    if status is decisions.SessionStatus.ACTIVE and not disabled:
        if touch and now - last_seen >= TOUCH_EVERY:
            with rt.db.write() as s:
                s.execute(update(WebSession).where(WebSession.id == view.session_id).values(last_seen_at=now))
        return view
    reason = "account disabled" if disabled else str(status)
    with rt.db.write() as s:
        s.execute(
            update(WebSession)
            .where(WebSession.id == view.session_id, WebSession.ended_at.is_(None))
            .values(ended_at=now, end_reason=reason)
        )
    rt.audit.record(
        "auth.session.end",
        Actor(view.username, view.user_id, source_ip),
        object_type="session",
        object_id=view.session_id,
        clauses=(decisions.SESSION_LOCK,),
        details={"reason": reason},
    )
    if status is decisions.SessionStatus.IDLE_LOCKED:
        raise SessionEnded("your session was locked after inactivity; sign in again", reason)
    raise SessionEnded("your session has ended; sign in again", reason)


def end_session(rt: Runtime, actor: Actor, session_id: int, reason: str = "logout") -> None:
    with rt.db.write() as s:
        ws = s.get(WebSession, session_id)
        if ws is None or ws.ended_at is not None:
            return
        ws.ended_at = rt.clock.now()
        ws.end_reason = reason
    rt.audit.record("auth.logout", actor, object_type="session", object_id=session_id, details={"reason": reason})


def _end_sessions(s, user_id: int, reason: str, *, keep: int | None = None) -> int:  # noqa: ANN001
    """End the account's open sessions but ``keep``; how many ended."""
    now = utcnow()
    ended = 0
    for ws in s.scalars(select(WebSession).where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))):
        if ws.id != keep:
            ws.ended_at = now
            ws.end_reason = reason
            ended += 1
    return ended


# U3: policy acknowledgement ---------------------------------------------------------------
def acknowledgement_status(rt: Runtime, user_id: int) -> decisions.Decision:
    with rt.db.session() as s:
        last = s.scalar(
            select(PolicyAcknowledgement)
            .where(PolicyAcknowledgement.user_id == user_id)
            .order_by(PolicyAcknowledgement.acknowledged_at.desc())
            .limit(1)
        )
    return decisions.acknowledgement(
        last.acknowledged_at if last else None,
        last.profile_digest if last else None,
        profile_digest(rt.profile),
        rt.clock.now(),
        rt.profile,
    )


def acknowledge_policy(rt: Runtime, actor: Actor, user_id: int, *, typed_name: str, training_completed: bool) -> None:
    if not training_completed:
        raise InvalidInput("confirm that you have completed the camera-system training (U3)")
    with rt.db.write() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound("no such user")
        if typed_name.strip().casefold() != user.full_name.casefold():
            raise InvalidInput("type your full name exactly as it appears on your account to sign")
        s.add(
            PolicyAcknowledgement(
                user_id=user_id,
                profile_id=rt.profile.profile_id,
                policy_version=rt.profile.policy_version,
                profile_digest=profile_digest(rt.profile),
                training_completed=True,
                typed_name=typed_name.strip(),
                source_ip=actor.source_ip,
            )
        )
    rt.audit.record(
        "policy.acknowledge",
        actor,
        object_type="user",
        object_id=user_id,
        clauses=("U3",),
        details={
            "profile": rt.profile.profile_id,
            "version": rt.profile.policy_version,
            "digest": profile_digest(rt.profile),
        },
    )
