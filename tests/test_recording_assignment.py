"""Which worker records which camera (pscs.recording.assignment): fill a worker before the
next starts, never overload one, and move a camera only when it must."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pscs.recording.assignment import assign_cameras

camera_sets = st.sets(st.integers(1, 500), max_size=300)
limits = st.tuples(st.integers(1, 8), st.integers(1, 80))


def loads(assignment: dict[int, int], workers: int) -> list[int]:
    counts = [0] * workers
    for worker in assignment.values():
        counts[worker] += 1
    return counts


@given(camera_sets, limits)
def test_every_camera_gets_one_worker_and_none_is_overloaded(cameras: set[int], limit: tuple[int, int]) -> None:
    workers, per_worker = limit
    assignment = assign_cameras({}, cameras, workers, per_worker)
    assert set(assignment) == cameras
    cap = max(per_worker, math.ceil(len(cameras) / workers))
    assert all(0 <= load <= cap for load in loads(assignment, workers))


@given(camera_sets, limits)
def test_from_scratch_as_few_workers_as_the_per_worker_figure_allows(cameras: set[int], limit: tuple[int, int]) -> None:
    workers, per_worker = limit
    used = {w for w in assign_cameras({}, cameras, workers, per_worker).values()}
    assert len(used) == min(workers, math.ceil(len(cameras) / per_worker))


@given(camera_sets, camera_sets, limits)
def test_adding_cameras_moves_none_of_the_others(before: set[int], added: set[int], limit: tuple[int, int]) -> None:
    workers, per_worker = limit
    first = assign_cameras({}, before, workers, per_worker)
    second = assign_cameras(first, before | added, workers, per_worker)
    assert all(second[c] == first[c] for c in before)


@given(camera_sets, camera_sets, limits)
def test_removing_cameras_moves_others_only_off_a_worker_over_an_even_share(
    before: set[int], removed: set[int], limit: tuple[int, int]
) -> None:
    workers, per_worker = limit
    first = assign_cameras({}, before, workers, per_worker)
    rest = before - removed
    second = assign_cameras(first, rest, workers, per_worker)
    cap = max(per_worker, math.ceil(len(rest) / workers))
    for worker in range(workers):
        moved = [c for c in rest if first[c] == worker and second[c] != worker]
        kept = [c for c in rest if first[c] == worker and second[c] == worker]
        assert not moved or len(kept) == cap


def test_removing_cameras_rebalances_a_worker_left_with_more_than_its_share() -> None:
    first = assign_cameras({}, [1, 2, 3, 4], 2, 1)
    assert first == {1: 0, 2: 1, 3: 0, 4: 1}
    assert loads(assign_cameras(first, [2, 4], 2, 1), 2) == [1, 1]
    assert assign_cameras(first, [1, 2, 4], 2, 1) == {1: 0, 2: 1, 4: 1}  # within the share: nothing moves


def test_a_lowered_worker_maximum_moves_only_the_cameras_of_the_workers_that_are_gone() -> None:
    first = assign_cameras({}, range(1, 9), 4, 2)
    assert loads(first, 4) == [2, 2, 2, 2]
    second = assign_cameras(first, range(1, 9), 2, 2)
    assert loads(second, 2) == [4, 4]
    assert all(second[c] == w for c, w in first.items() if w < 2)


def test_200_cameras_on_two_workers_of_64_share_evenly() -> None:
    assert loads(assign_cameras({}, range(200), 2, 64), 2) == [100, 100]


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        assign_cameras({}, [1], 0, 64)
