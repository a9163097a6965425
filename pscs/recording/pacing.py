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
"""

from __future__ import annotations

import math


class ReadPacer:
    def __init__(self, batch_s: float, *, slack_s: float = 0.05, wait_s: float = 0.002, window_s: float = 10.0) -> None:
        self.batch_s = batch_s
        self.slack_s = slack_s
        self.wait_s = wait_s
        self.window_s = window_s
        self.reset()

    def reset(self) -> None:
        """A new run: its media time has a new origin, so what was learned is void."""
        self._floor_previous = self._floor_current = math.inf
        self._window_end = -math.inf

    def nap_after(self, media_s: float, read_started_s: float, now_s: float) -> float:
        """Seconds to sleep after a packet with media time ``media_s`` whose read began at
        ``read_started_s`` and returned at ``now_s`` (monotonic clock); 0 to read on."""
        if self.batch_s <= 0:
            return 0.0
        if now_s >= self._window_end:
            self._floor_previous, self._floor_current = self._floor_current, math.inf
            self._window_end = now_s + self.window_s
        lag = now_s - media_s
        self._floor_current = min(self._floor_current, lag)
        floor = min(self._floor_previous, self._floor_current)
        waited = now_s - read_started_s > self.wait_s
        return self.batch_s if waited and lag - floor <= self.slack_s else 0.0
