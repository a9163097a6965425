"""PostgreSQL races (issue 16, finding 4): where a read decides a write, the row is locked
(SELECT ... FOR UPDATE), so parallel attempts are decided one after another.

Fired from threads, each on its own real connection to a real PostgreSQL server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pyotp
import pytest
from sqlalchemy import update

from pscs.audit.events import Actor
from pscs.auth import service as auth
from pscs.auth.models import User
from pscs.auth.principal import Principal, principal_of_actor
from pscs.errors import AuthenticationFailed, InvalidInput, PolicyDenied
from pscs.requests import service as requests
from pscs.runtime import Runtime
from tests.test_requests_lifecycle import file
from tests.test_retention_sweeper import add_cameras, user_actor
from tests.web_helpers import PASSWORD, make_user

on_postgresql = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _in_parallel(calls: list[Callable[[], str]]) -> list[str]:
    """Runs every call at once (released together by a barrier); returns their outcomes."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], str]) -> str:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _unthrottled(rt: Runtime) -> None:
    """The per-account sign-in limit is not what these tests are about."""
    rt.settings = rt.settings.model_copy(update={"login_attempts_per_account": 1000})


def _visitor(i: int) -> Actor:
    return Actor("anonymous", None, f"192.0.2.{i + 1}", "pytest")


@on_postgresql
def test_finding4_parallel_wrong_passwords_never_get_past_the_lockout(runtime: Runtime) -> None:
    rt = runtime
    _unthrottled(rt)
    make_user(rt, "pat", ["operator"])
    limit = rt.profile.security.lockout_attempts

    def guess(i: int) -> Callable[[], str]:
        def call() -> str:
            try:
                auth.sign_in_password(rt, _visitor(i), "pat", f"wrong-guess-number-{i}")
            except AuthenticationFailed:
                return "refused"
            return "signed in"

        return call

    assert _in_parallel([guess(i) for i in range(3 * limit)]) == ["refused"] * (3 * limit)
    denied = rt.audit.search(action_prefix="auth.login.password", outcome="denied", limit=100)
    reasons = sorted(json.loads(e.details)["reason"] for e in denied)
    # Exactly `limit` guesses were weighed; every later one met the lock.
    assert reasons.count("wrong password") == limit
    assert reasons.count("account locked") == 2 * limit
    assert len(rt.audit.search(action_prefix="auth.account.locked", limit=100)) == 1
    with pytest.raises(AuthenticationFailed):
        auth.sign_in_password(rt, _visitor(99), "pat", PASSWORD)  # locked: even the right one


@on_postgresql
def test_finding4_one_totp_code_used_in_parallel_signs_in_at_most_once(runtime: Runtime) -> None:
    rt = runtime
    _unthrottled(rt)
    make_user(rt, "tess", ["operator"])
    user_id = auth.find_user(rt, "tess").id
    secret, _uri = auth.begin_enrolment(rt, user_id)
    with rt.db.write() as s:
        s.execute(update(User).where(User.id == user_id).values(mfa_enrolled=True))
    tries = rt.profile.security.lockout_attempts  # one success and the rest failures: no lock yet
    sessions = [auth.sign_in_password(rt, _visitor(i), "tess", PASSWORD) for i in range(tries)]
    code = pyotp.TOTP(secret).now()

    def use(i: int) -> Callable[[], str]:
        def call() -> str:
            try:
                auth.sign_in_second_factor(rt, _visitor(i), sessions[i].session_id, code)
            except AuthenticationFailed:
                return "refused"
            return "signed in"

        return call

    outcomes = _in_parallel([use(i) for i in range(tries)])
    assert outcomes.count("signed in") == 1, outcomes
    assert len(rt.audit.search(action_prefix="auth.login.mfa", outcome="allowed", limit=100)) == 1


@on_postgresql
def test_finding4_parallel_requests_are_numbered_one_after_another(runtime: Runtime) -> None:
    rt = runtime
    cams = add_cameras(rt, 1)
    filers = [user_actor(rt, f"inv{i}", ["investigator"]) for i in range(8)]
    views = _in_parallel([lambda a=a: file(rt, a, cams).number for a in filers])
    assert sorted(views) == [f"2026-{n:04d}" for n in range(1, 9)]


@on_postgresql
def test_finding4_a_request_is_decided_once_when_two_decide_it_at_once(runtime: Runtime) -> None:
    rt = runtime
    cams = add_cameras(rt, 1)
    number = file(rt, user_actor(rt, "ivy", ["investigator"]), cams).number
    deciders = [principal_of_actor(rt, user_actor(rt, f"rc{i}", ["records_commander"])) for i in range(4)]

    def deny(caller: Principal) -> Callable[[], str]:
        def call() -> str:
            try:
                requests.decide_request(rt, caller, number, approve=False, reason=f"denied by {caller.username}")
            except (InvalidInput, PolicyDenied):  # found decided while deciding, or before
                return "already decided"
            return "decided"

        return call

    assert sorted(_in_parallel([deny(c) for c in deciders])) == ["already decided"] * 3 + ["decided"]
    assert len(rt.audit.search(action_prefix="storage_request.deny", limit=100)) == 1
