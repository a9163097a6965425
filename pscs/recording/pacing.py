"""Reading a camera in batches instead of packet by packet.

A camera sends some 25 pictures a second, each cut into several RTP packets, and FFmpeg's
RTSP reader asks the kernel for them one by one.  A thread that has caught up with its
camera therefore sleeps and wakes for every packet: those wake-ups, not the copying, are
most of what recording costs.  Once caught up, the camera's thread instead sleeps for a
short batch interval and then reads what arrived meanwhile straight out of the socket
buffer (TCP holds it; nothing is dropped): the same bytes for a fraction of the wake-ups.

"Caught up" needs two signs, because each alone can mislead:

* the read just now had to wait for the network (a read from a full buffer returns at
  once); a busy process can delay a read too, so this alone might nap while behind;
* the packet is about as fresh as the freshest seen lately.  Freshness is the packet's
  *lag*, ``now - media time`` (the media clock's origin is arbitrary, so only differences
  mean anything); the floor is the smallest lag over the last one or two windows, so
  that a camera clock that runs slow is followed rather than mistaken for a growing
  backlog.  A burst of old pictures (a camera's GOP cache on connect) reads without
  waiting, so it never naps.

A nap is also bounded by bytes: what arrives meanwhile waits in the kernel's receive
buffer, and a sender whose receive window is full stops sending (a camera may then drop
pictures).  Linux starts a connection with a 128 KiB buffer and a reader that drains it in
bursts does not grow it (``ss -tmi``: the sender sees ~115 KiB), so a nap lasts at most as
long as the camera takes to send ``max_backlog_bytes``: the whole batch for a 2 Mbit/s
camera, a quarter of it for an 8 Mbit/s one.  Until the rate is known (the first second of
a run) the reader does not nap.
"""

from __future__ import annotations

import math

MAX_BACKLOG_BYTES = 64 * 1024  # about half the receive window a connection starts with


class ReadPacer:
    def __init__(
        self,
        batch_s: float,
        *,
        max_backlog_bytes: int = MAX_BACKLOG_BYTES,
        slack_s: float = 0.05,
        wait_s: float = 0.002,
        window_s: float = 10.0,
    ) -> None:
        self.batch_s = batch_s
        self.max_backlog_bytes = max_backlog_bytes
        self.slack_s = slack_s
        self.wait_s = wait_s
        self.window_s = window_s
        self.reset()

    def reset(self) -> None:
        """A new run: its media time has a new origin, so what was learned is void."""
        self._floor_previous = self._floor_current = math.inf
        self._window_end = -math.inf
        self._nap_s = 0.0  # the longest nap the camera's byte rate allows; 0 until it is known
        self._counted_since: float | None = None
        self._counted_bytes = 0

    def nap_after(self, media_s: float, read_started_s: float, now_s: float, size: int) -> float:
        """Seconds to sleep after a packet of ``size`` bytes with media time ``media_s``
        whose read began at ``read_started_s`` and returned at ``now_s`` (monotonic clock);
        0 to read on."""
        if self.batch_s <= 0:
            return 0.0
        self._count(now_s, size)
        if now_s >= self._window_end:
            self._floor_previous, self._floor_current = self._floor_current, math.inf
            self._window_end = now_s + self.window_s
        lag = now_s - media_s
        self._floor_current = min(self._floor_current, lag)
        floor = min(self._floor_previous, self._floor_current)
        waited = now_s - read_started_s > self.wait_s
        return self._nap_s if waited and lag - floor <= self.slack_s else 0.0

    def _count(self, now_s: float, size: int) -> None:
        """The camera's byte rate over the last second or more sets the nap's length."""
        if self._counted_since is None:
            self._counted_since = now_s
        self._counted_bytes += size
        elapsed = now_s - self._counted_since
        if elapsed >= 1.0:
            rate = self._counted_bytes / elapsed
            self._nap_s = min(self.batch_s, self.max_backlog_bytes / rate) if rate > 0 else self.batch_s
            self._counted_since, self._counted_bytes = now_s, 0
