"""Work the recorder supervisor does every so often (the disk pressure check), in its rounds.

The supervisor does its routine work in rounds, one a routine period, because a wake-up
of seldom-run code costs more than the work (docs/design/storage.md, "Scale").  A
periodic task rides on those rounds rather than on a clock or thread of its own: a round
runs it when it is due or falls due within ``slack`` (half its period, or half a routine
period when that is less), and the watch loop wakes for it on its own only when no round
came by ``slack`` after it fell due.  So a task runs every ``period_s``, give or take
``slack``, and one whose period is the routine period costs no wake-up at all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class PeriodicTask:
    name: str  # for the log
    period_s: float
    run: Callable[[], object]
    slack_s: float = 0.0
    next_at: float = field(default=-math.inf)  # monotonic; the first round runs it

    @property
    def wake_at(self) -> float:
        """When the watch loop must wake for it if no round ran it before."""
        return self.next_at + self.slack_s


class PeriodicTasks:
    def __init__(self, routine_s: float) -> None:
        self.routine_s = routine_s
        self.tasks: list[PeriodicTask] = []

    def add(self, name: str, period_s: float, run: Callable[[], object]) -> PeriodicTask:
        task = PeriodicTask(name, period_s, run, slack_s=min(period_s, self.routine_s) / 2)
        self.tasks.append(task)
        return task

    def wake_at(self) -> float | None:
        """The earliest time the watch loop must wake for a task; None without tasks."""
        return min((t.wake_at for t in self.tasks), default=None)

    def run_due(self, now: float, *, in_round: bool) -> list[str]:
        """Run what is due at ``now`` (monotonic): in a round, each task due within its
        slack; between rounds, only those a round did not run in time.  A task that fails
        is logged and runs again a period later; the others run regardless.  Returns the
        names of the tasks run."""
        ran = []
        for task in self.tasks:
            if now < (task.next_at - task.slack_s if in_round else task.wake_at):
                continue
            task.next_at = now + task.period_s
            ran.append(task.name)
            try:
                task.run()
            except Exception:
                log.exception("recorder supervisor: %s failed", task.name)
        return ran
