"""Periodic tasks of the recorder supervisor (pscs.recording.periodic): they ride on the
supervisor's routine rounds, and wake the watch loop only when no round comes in time.
Time is handed in (monotonic seconds), as the watch loop does."""

from __future__ import annotations

import logging

import pytest

from pscs.recording.periodic import PeriodicTasks


def test_a_task_of_the_routine_period_runs_in_every_round_and_never_wakes_the_loop_itself() -> None:
    tasks = PeriodicTasks(routine_s=10.0)
    runs: list[int] = []
    tasks.add("disk pressure check", 10.0, lambda: runs.append(1))
    assert tasks.run_due(0.0, in_round=True) == ["disk pressure check"]  # the first round runs it
    # Worker reports a little early or late: a round every 9.9 to 10.1 s.
    now = 0.0
    for step in (9.9, 10.1, 9.9, 9.9, 10.0, 10.1):
        now += step
        assert tasks.wake_at() > now  # the loop had no reason to wake for it before this round
        assert tasks.run_due(now, in_round=True) == ["disk pressure check"]
    assert len(runs) == 7


def test_a_long_period_task_runs_once_a_period_in_frequent_rounds() -> None:
    tasks = PeriodicTasks(routine_s=1.0)
    ran_at: list[float] = []
    clock = {"now": 0.0}
    tasks.add("disk pressure check", 60.0, lambda: ran_at.append(clock["now"]))
    for second in range(181):  # a round every second for three minutes
        clock["now"] = float(second)
        tasks.run_due(clock["now"], in_round=True)
    assert ran_at == [0.0, 60.0, 120.0, 180.0]


def test_with_no_round_in_time_the_task_runs_between_rounds_at_most_half_a_period_late() -> None:
    tasks = PeriodicTasks(routine_s=10.0)
    tasks.add("short", 2.0, lambda: None)
    assert tasks.run_due(0.0, in_round=True) == ["short"]
    assert tasks.wake_at() == pytest.approx(3.0)  # 2 s period, 1 s slack
    assert tasks.run_due(2.5, in_round=False) == []  # due, but a round might still take it
    assert tasks.run_due(3.0, in_round=False) == ["short"]
    assert tasks.run_due(3.9, in_round=True) == []  # next at 5.0: a round takes it from 4.0 on
    assert tasks.run_due(4.0, in_round=True) == ["short"]


def test_a_failing_task_is_logged_runs_again_a_period_later_and_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = PeriodicTasks(routine_s=10.0)
    calls: list[str] = []

    def broken() -> None:
        calls.append("broken")
        raise OSError("disk gone")

    tasks.add("disk pressure check", 10.0, broken)
    tasks.add("other", 10.0, lambda: calls.append("other"))
    with caplog.at_level(logging.ERROR, logger="pscs.recording.periodic"):
        assert tasks.run_due(0.0, in_round=True) == ["disk pressure check", "other"]
    assert calls == ["broken", "other"]
    assert "disk pressure check failed" in caplog.text and "disk gone" in caplog.text
    assert tasks.run_due(1.0, in_round=True) == []
    assert tasks.run_due(10.0, in_round=True) == ["disk pressure check", "other"]
