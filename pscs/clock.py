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
from datetime import UTC, date, datetime, timedelta


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
    :meth:`datetime.isoformat`), for APIs, exports and signed manifests.  A value no
    calendar can hold (a stored row out of range) comes back as its number, as text."""
    if ms is None:
        return None
    try:
        return ms_to_utc(ms).isoformat(timespec=timespec)
    except (OverflowError, ValueError, OSError):
        return str(ms)


def iso_us(us: int) -> str:
    """Epoch microseconds (the audit trail's times) in ISO 8601 to the microsecond; like
    :func:`iso_ms`, a value out of the calendar's range comes back as its number."""
    try:
        return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="microseconds")
    except (OverflowError, ValueError, OSError):
        return str(us)


def format_utc(when: int | datetime, seconds: bool = True) -> str:
    """For people and printed forms: ``2026-12-02 13:48:46Z`` (``…13:48Z`` without seconds).
    Never fails: a value out of the calendar's range is shown as it is stored."""
    try:
        moment = ms_to_utc(when) if isinstance(when, int | float) else when.astimezone(UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%SZ" if seconds else "%Y-%m-%d %H:%MZ")
    except (OverflowError, ValueError, OSError, AttributeError, TypeError):
        return str(when)


# The instants anyone may give pscs (the web's parameters and bodies, the CLI's options):
# footage and records of this system lie between these, so anything outside is a typing
# error or a probe, refused at the edge before it reaches a service or the database.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
EARLIEST_MS = utc_to_ms(EARLIEST)
LATEST_MS = utc_to_ms(LATEST)
_RANGE = f"between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)"


def check_instant(when: datetime) -> datetime:
    """``when`` in UTC (a time without a zone is UTC) if it lies in the accepted window,
    else ValueError."""
    try:
        moment = as_utc(when)
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"the time must be {_RANGE}") from exc
    assert moment is not None
    if not EARLIEST <= moment <= LATEST:
        raise ValueError(f"the time must be {_RANGE}")
    return moment


def check_ms(ms: int) -> int:
    """``ms`` (UTC epoch milliseconds) if it lies in the accepted window, else ValueError."""
    if not EARLIEST_MS <= ms <= LATEST_MS:
        raise ValueError(f"the time must be {_RANGE}, as epoch milliseconds {EARLIEST_MS} to {LATEST_MS}")
    return ms


def check_day(day: date) -> date:
    """``day`` if it lies in the accepted window, else ValueError."""
    if not EARLIEST.date() <= day <= LATEST.date():
        raise ValueError(f"the date must be {_RANGE}")
    return day


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
