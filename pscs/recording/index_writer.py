"""The recorder's index writer: it indexes the segments and gaps the workers report.

Workers hold no database connection; they send each finished segment file (durable
already) and each gap to the supervisor, which queues them here.  The queue is written in
one transaction per routine round, the rows of every camera together, because a
transaction costs more than the rows in it (docs/design/storage.md, "Scale"), or at once
when ``batch_max`` rows wait.  While the database is unavailable the rows wait, in order,
and are retried every ``retry_s``; past ``max_waiting`` the oldest are dropped from memory,
their files being on disk for reconcile to index at the next start.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from sqlalchemy.exc import InterfaceError, OperationalError

from pscs.db.engine import Database
from pscs.storage.segment_files import FinishedSegment
from pscs.storage.segments import Gap, SegmentIndex

log = logging.getLogger(__name__)

RETRY_S = 2.0
# Index at once, before the next round, when this many rows wait.
BATCH_MAX = 1000
# Rows kept while the database is unavailable (~7 hours of 200 cameras).
MAX_WAITING = 50_000


class IndexWriter:
    def __init__(
        self, db: Database, *, batch_max: int = BATCH_MAX, max_waiting: int = MAX_WAITING, retry_s: float = RETRY_S
    ) -> None:
        self._index = SegmentIndex(db)
        self._batch_max = batch_max
        self._max_waiting = max_waiting
        self._retry_s = retry_s
        self._waiting: deque[FinishedSegment | Gap] = deque()  # as the workers reported them, in order
        # Monotonic time to index what waits without waiting for the next round: a full
        # batch (now) or a retry while the database is unavailable.  None: the round does.
        self.due_at: float | None = None
        self._failing = False  # the database was unavailable at the last try

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, item: FinishedSegment | Gap) -> None:
        self._waiting.append(item)
        if len(self._waiting) >= self._batch_max and self.due_at is None:
            self.due_at = time.monotonic()

    def flush(self) -> None:
        """Index what waits, in order, in one transaction.  While the database is
        unavailable it keeps waiting and ``due_at`` says when to try again; the files are
        durable either way (and reconcile indexes any that never get their row)."""
        batch = list(self._waiting)
        if not batch:
            self.due_at = None
            return
        try:
            self._index.add_batch(batch)
        except (OperationalError, InterfaceError):
            if not self._failing:
                log.warning("recorder supervisor: database unavailable; indexing resumes when it is back")
            self._failing = True
            self.due_at = time.monotonic() + self._retry_s
            while len(self._waiting) > self._max_waiting:
                dropped = self._waiting.popleft()
                log.error("recorder supervisor: %r left for reconcile to index at the next start", dropped)
            return
        except Exception:
            # Something in the batch is refused: index the rest one by one, without it.
            for item in batch:
                try:
                    self._index.add_batch([item])
                except Exception:
                    log.exception("recorder supervisor: cannot index %r; reconcile will look at it", item)
        for _ in batch:
            self._waiting.popleft()
        if self._failing:
            log.info("recorder supervisor: database back; indexing caught up")
        self._failing = False
        self.due_at = None

    def last_end_ms(self, camera_ids: list[int]) -> dict[int, int]:
        """Where each camera's recording ended, counting what still waits for its row: a
        camera's new run never starts before it."""
        ends = self._index.last_end_ms(camera_ids)
        wanted = set(camera_ids)
        for item in self._waiting:
            if isinstance(item, FinishedSegment) and item.camera_id in wanted:
                ends[item.camera_id] = max(ends.get(item.camera_id, item.end_ms), item.end_ms)
        return ends
