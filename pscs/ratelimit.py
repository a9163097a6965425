"""Sliding-window counts of attempts per key, held in this process's memory.

pscs serves its web app from one process, so one process's counts are the system's counts.
Run several processes (or restart one) and each keeps its own: the limits then hold per
process, which is why they back up, and never replace, the account lockout kept in the
database.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    key: str  # what is counted, e.g. "address:192.0.2.1"
    attempts: int  # how many in any window
    window_s: float


class SlidingWindow:
    """Admits an attempt only when every limit it falls under still has room."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys  # bounds memory when attempts come from very many addresses
        self._lock = threading.Lock()
        self._seen: dict[str, deque[float]] = {}
        self._longest_window = 0.0

    def attempt(self, limits: Iterable[Limit]) -> float | None:
        """Count one attempt under every limit and return None; or, when any limit is full,
        count nothing and return the seconds until it has room again."""
        limits = list(limits)
        now = self._clock()
        with self._lock:
            wait = 0.0
            for limit in limits:
                seen = self._expire(limit.key, now - limit.window_s)
                if seen is not None and len(seen) >= limit.attempts:
                    wait = max(wait, seen[len(seen) - limit.attempts] + limit.window_s - now)
            if wait > 0:
                return wait
            for limit in limits:
                self._seen.setdefault(limit.key, deque()).append(now)
                self._longest_window = max(self._longest_window, limit.window_s)
            if len(self._seen) > self._max_keys:
                self._prune(now)
            return None

    def _expire(self, key: str, before: float) -> deque[float] | None:
        seen = self._seen.get(key)
        while seen and seen[0] <= before:
            seen.popleft()
        return seen

    def _prune(self, now: float) -> None:
        for key in [k for k, seen in self._seen.items() if not seen or seen[-1] <= now - self._longest_window]:
            del self._seen[key]
        for key in list(self._seen)[: max(0, len(self._seen) - self._max_keys)]:
            del self._seen[key]  # the longest-known keys go first
