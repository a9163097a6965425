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
from pscs.errors import AuthenticationFailed
from pscs.runtime import Runtime
from tests.web_helpers import PASSWORD, make_user

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
