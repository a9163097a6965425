"""Time, said one way: the wall clock, UTC datetimes and epoch milliseconds.

pscs stores instants of footage as UTC epoch milliseconds (segments, gaps, holds) and
instants of records as timezone-aware UTC datetimes (sessions, requests, audit times);
this module converts between the two and formats both, and :class:`Clock` is the one
way a service reads the wall clock: ``rt.clock.now()``.  Tests that need another "now"
(a hold due for review, a session gone idle) set a :class:`SetClock` on the runtime
instead of waiting.  See docs/design/time.md.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    """The wall clock as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def now_ms() -> int:
    """The wall clock in UTC epoch milliseconds."""
    return time.time_ns() // 1_000_000


def ms_to_utc(ms: int | float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def utc_to_ms(when: datetime) -> int:
    """Epoch milliseconds of an aware datetime (a naive one is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def as_utc(value: datetime | None) -> datetime | None:
    """In UTC; a time given without a zone is UTC, whatever the server's own zone."""
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def iso_ms(ms: int | None, timespec: str = "auto") -> str | None:
    """ISO 8601 with offset (``2026-12-02T13:48:46.123000+00:00``; ``timespec`` as
    :meth:`datetime.isoformat`), for APIs, exports and signed manifests."""
    return None if ms is None else ms_to_utc(ms).isoformat(timespec=timespec)


def format_utc(when: int | datetime, seconds: bool = True) -> str:
    """For people and printed forms: ``2026-12-02 13:48:46Z`` (``…13:48Z`` without seconds)."""
    moment = ms_to_utc(when) if isinstance(when, int | float) else when.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ" if seconds else "%Y-%m-%d %H:%MZ")


class Clock:
    """The wall clock a runtime reads."""

    def now(self) -> datetime:
        return utcnow()

    def ms(self) -> int:
        return now_ms()


class SetClock(Clock):
    """A clock that stands still until set or advanced (tests, replays of a past day)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or utcnow()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def ms(self) -> int:
        return utc_to_ms(self.now())

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("a clock is set to an aware (UTC) time")
        with self._lock:
            self._now = when

    def advance(self, **delta: float) -> datetime:
        """``advance(minutes=31)``; returns the new now."""
        with self._lock:
            self._now += timedelta(**delta)
            return self._now
