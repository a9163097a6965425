"""Load at the door (issue 16, finding 2): signing in cannot stall the system for others.

The password hash (argon2, slow on purpose) is checked with no database transaction open,
so on SQLite the one write lock stays free for everyone else while it runs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from argon2 import PasswordHasher
from sqlalchemy import event

from pscs.audit.events import Actor
from pscs.auth import service as auth
from pscs.errors import AuthenticationFailed, TooManyAttempts
from pscs.ratelimit import SlidingWindow
from pscs.runtime import Runtime
from tests.web_helpers import PASSWORD, client_for, make_user, submit_password

VISITOR = Actor("anonymous", None, "192.0.2.10", "pytest")


@dataclass
class WhileHashing:
    """What the database looked like each time a password hash was checked."""

    connections_in_use: list[int] = field(default_factory=list)
    write_lock_free: list[bool] = field(default_factory=list)


def _sqlite_write_lock_free(rt: Runtime) -> bool:
    """Whether another connection could take SQLite's write lock this instant."""
    conn = sqlite3.connect(rt.db.engine.url.database, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


@pytest.fixture
def while_hashing(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[WhileHashing]:
    """The real argon2 hasher, looking at the database each time it verifies a password."""
    seen = WhileHashing()
    in_use = 0

    def checked_out(*_args: object) -> None:
        nonlocal in_use
        in_use += 1

    def checked_in(*_args: object) -> None:
        nonlocal in_use
        in_use -= 1

    pool = runtime.db.engine.pool
    event.listen(pool, "checkout", checked_out)
    event.listen(pool, "checkin", checked_in)

    class ObservedHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002 - argon2's name
            seen.connections_in_use.append(in_use)
            if runtime.db.is_sqlite:
                seen.write_lock_free.append(_sqlite_write_lock_free(runtime))
            return super().verify(hash, password)

    monkeypatch.setattr(auth, "_hasher", ObservedHasher())
    yield seen
    event.remove(pool, "checkout", checked_out)
    event.remove(pool, "checkin", checked_in)


def test_finding2_password_is_checked_with_no_transaction_open(runtime: Runtime, while_hashing: WhileHashing) -> None:
    make_user(runtime, "wendy", ["operator"])
    auth.sign_in_password(runtime, VISITOR, "wendy", PASSWORD)
    with pytest.raises(AuthenticationFailed):
        auth.sign_in_password(runtime, VISITOR, "wendy", "not-her-password")
    with pytest.raises(AuthenticationFailed):
        auth.sign_in_password(runtime, VISITOR, "nobody-here", "whatever-password")
    user = auth.find_user(runtime, "wendy")
    auth.change_password(runtime, VISITOR, user.id, PASSWORD, PASSWORD + "-changed")

    assert len(while_hashing.connections_in_use) == 4  # right, wrong, unknown (dummy hash), change
    assert while_hashing.connections_in_use == [0, 0, 0, 0]
    if runtime.db.is_sqlite:
        assert while_hashing.write_lock_free == [True, True, True, True]
    # The outcomes are those of before: the wrong password counted, the new one works.
    assert auth.find_user(runtime, "wendy").failed_attempts == 1
    auth.sign_in_password(runtime, VISITOR, "wendy", PASSWORD + "-changed")


# Sign-in attempts limited per source address and per account --------------------------------
def _limits(rt: Runtime, *, per_address: int = 1000, per_account: int = 1000) -> list[float]:
    """Sets the limits and a clock the test moves; returns that clock (one element)."""
    now = [1000.0]
    rt.settings = rt.settings.model_copy(
        update={"login_attempts_per_address": per_address, "login_attempts_per_account": per_account}
    )
    rt.sign_in_attempts = SlidingWindow(clock=lambda: now[0])
    return now


def _attempt(rt: Runtime, username: str, password: str, address: str) -> str:
    try:
        auth.sign_in_password(rt, Actor("anonymous", None, address, "pytest"), username, password)
    except TooManyAttempts:
        return "throttled"
    except AuthenticationFailed:
        return "refused"
    return "signed in"


def test_finding2_attempts_from_one_address_are_limited(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    make_user(rt, "wendy", ["operator"])
    clock = _limits(rt, per_address=3)
    spray = [_attempt(rt, name, "guess-guess-guess", "192.0.2.66") for name in ("a1", "b2", "c3", "wendy")]
    assert spray == ["refused", "refused", "refused", "throttled"]
    assert _attempt(rt, "wendy", PASSWORD, "192.0.2.66") == "throttled"  # not even the right password
    assert _attempt(rt, "wendy", PASSWORD, "198.51.100.7") == "signed in"  # another address is not held up
    clock[0] += rt.settings.login_window_seconds
    assert _attempt(rt, "wendy", PASSWORD, "192.0.2.66") == "signed in"  # the window has moved on

    throttled = rt.audit.search(action_prefix="auth.login.throttled")
    assert len(throttled) == 2
    assert {e.source_ip for e in throttled} == {"192.0.2.66"} and {e.outcome for e in throttled} == {"denied"}


def test_finding2_attempts_at_one_account_are_limited_from_any_address(
    sqlite_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = sqlite_runtime
    make_user(rt, "wendy", ["operator"])
    make_user(rt, "walt", ["operator"])
    _limits(rt, per_account=2)
    hashes = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002 - argon2's name
            hashes.append(1)
            return super().verify(hash, password)

    monkeypatch.setattr(auth, "_hasher", CountingHasher())
    got = [_attempt(rt, "wendy", "guess-guess-guess", f"203.0.113.{i}") for i in range(1, 5)]
    assert got == ["refused", "refused", "throttled", "throttled"]
    assert len(hashes) == 2  # a refused attempt costs no hash
    assert _attempt(rt, "walt", PASSWORD, "203.0.113.1") == "signed in"
    assert {e.actor for e in rt.audit.search(action_prefix="auth.login.throttled")} == {"wendy"}


def test_finding2_the_sign_in_page_refuses_with_429_and_retry_after(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    _limits(rt, per_address=2)
    client = client_for(rt)
    codes = [submit_password(client, "nobody", "guess-guess-guess").status_code for _ in range(2)]
    refused = submit_password(client, "nobody", "guess-guess-guess")
    assert codes == [401, 401]
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= rt.settings.login_window_seconds
    assert "too many sign-in attempts" in refused.text
