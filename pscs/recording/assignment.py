"""Which recorder worker process records which camera: a pure function the supervisor calls.

Two aims pull against each other.  Every worker process carries a fixed cost (an
interpreter, PyAV, SQLAlchemy: tens of MB whatever it records), so cameras fill one worker
up to ``per_worker`` before the next starts.  And moving a camera to another worker costs
it a reconnect (a second or so of gap), so a camera stays where it is unless it must move:
only when its worker no longer exists (the maximum was lowered) or holds more than an even
share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def assign_cameras(
    previous: Mapping[int, int], camera_ids: Iterable[int], max_workers: int, per_worker: int
) -> dict[int, int]:
    """Camera id -> worker index in ``range(max_workers)``.

    Cameras fill worker 0 up to ``per_worker``, then worker 1, and so on; once every worker
    is that full they go to the least loaded.  No worker is given more than
    ``max(per_worker, ceil(cameras / max_workers))``.  A camera keeps its ``previous``
    worker whenever that bound allows.
    """
    if max_workers < 1 or per_worker < 1:
        raise ValueError("max_workers and per_worker must be at least 1")
    ids = sorted(set(camera_ids))
    cap = max(per_worker, -(-len(ids) // max_workers))
    load = [0] * max_workers
    assigned: dict[int, int] = {}
    for camera_id in ids:
        worker = previous.get(camera_id)
        if worker is not None and 0 <= worker < max_workers and load[worker] < cap:
            assigned[camera_id] = worker
            load[worker] += 1
    for camera_id in ids:
        if camera_id in assigned:
            continue
        worker = next((w for w in range(max_workers) if load[w] < per_worker), None)
        if worker is None:
            worker = min(range(max_workers), key=lambda w: (load[w], w))
        assigned[camera_id] = worker
        load[worker] += 1
    return assigned
