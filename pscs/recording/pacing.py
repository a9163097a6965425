"""Reading a camera in batches instead of packet by packet.

A camera sends some 25 pictures a second, each cut into several RTP packets.  A thread
that reads whenever something has arrived wakes for nearly every packet, and those
wake-ups, not the copying, are most of what recording costs.  Once a read has drained the
socket (the RTSP client's read returned less than it asked for: the camera has nothing
more for us yet), the camera's thread instead sleeps for a short batch interval and then
takes everything that arrived meanwhile out of the socket buffer in one read (TCP holds
it; nothing is dropped): the same bytes for a fraction of the wake-ups.  A read that did
not drain the socket (a backlog, a camera's GOP cache on connect) is followed by the next
read at once, so a reader that is behind never naps.

A nap is bounded by bytes: what arrives meanwhile waits in the kernel's receive buffer,
and a sender whose receive window is full stops sending (a camera may then drop
pictures).  Linux starts a connection with a 128 KiB buffer and a reader that drains it in
bursts does not grow it (``ss -tmi``: the sender sees ~115 KiB), so a nap lasts at most as
long as the camera takes to send ``max_backlog_bytes``: the whole batch for a 2 Mbit/s
camera, a quarter of it for an 8 Mbit/s one.  Until the rate is known (the first second of
a run) the reader does not nap.
"""

from __future__ import annotations

MAX_BACKLOG_BYTES = 64 * 1024  # about half the receive window a connection starts with


class ReadPacer:
    def __init__(self, batch_s: float, *, max_backlog_bytes: int = MAX_BACKLOG_BYTES) -> None:
        self.batch_s = batch_s
        self.max_backlog_bytes = max_backlog_bytes
        self.reset()

    def reset(self) -> None:
        """A new connection: the camera's byte rate is learned again."""
        self._nap_s = 0.0  # the longest nap the camera's byte rate allows; 0 until it is known
        self._mark: tuple[float, int] | None = None

    def nap_after(self, now_s: float, bytes_received: int, drained: bool) -> float:
        """Seconds to sleep after a read at ``now_s`` (monotonic clock) that did or did not
        drain the socket, ``bytes_received`` from the camera so far on this connection."""
        if self.batch_s <= 0:
            return 0.0
        if self._mark is None:
            self._mark = (now_s, bytes_received)
        since, counted = self._mark
        elapsed = now_s - since
        if elapsed >= 1.0:
            rate = (bytes_received - counted) / elapsed
            self._nap_s = min(self.batch_s, self.max_backlog_bytes / rate) if rate > 0 else self.batch_s
            self._mark = (now_s, bytes_received)
        return self._nap_s if drained else 0.0
