"""A camera's thread reads in batches once it has drained the socket, and never naps while
behind (pscs.recording.pacing): the pacer is fed what a thread reading a socket would see."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pscs.media.rtsp_client import READ_BUFFER_BYTES
from pscs.recording.pacing import MAX_BACKLOG_BYTES, ReadPacer

FRAME_S = 0.04  # 25 pictures a second
PICTURE_BYTES = 10_000  # 2 Mbit/s


def simulate(
    pacer: ReadPacer,
    *,
    seconds: float,
    picture_bytes: int = PICTURE_BYTES,
    backlog_at_start: int = 0,
    work_s: float = 0.0005,
) -> tuple[int, int, int]:
    """A camera sends a picture of ``picture_bytes`` every FRAME_S into a socket that holds
    ``backlog_at_start`` bytes when reading begins; a read takes at most READ_BUFFER_BYTES,
    blocks until something has arrived, and costs ``work_s``.  Returns (bytes read, reads,
    the largest backlog a read found)."""
    now, received, reads, worst = 0.0, 0, 0, 0
    sent = backlog_at_start
    while now < seconds:
        pictures = int(now / FRAME_S + 1e-9)
        arrived = backlog_at_start + pictures * picture_bytes
        if arrived == received:  # nothing there: the read blocks until the next picture
            now = (pictures + 1) * FRAME_S
            continue
        waiting = arrived - received
        worst = max(worst, waiting)
        taken = min(waiting, READ_BUFFER_BYTES)
        received += taken
        reads += 1
        now += work_s
        now += pacer.nap_after(now, received, drained=taken == waiting)
        sent = arrived
    assert sent <= received + READ_BUFFER_BYTES
    return received, reads, worst


def test_a_caught_up_reader_reads_a_few_times_a_second_and_stays_within_one_batch_of_the_camera() -> None:
    received, reads, worst = simulate(ReadPacer(0.2), seconds=60)
    assert received >= (60 / FRAME_S - 1) * PICTURE_BYTES  # all of it, bar the picture in flight
    # After the first second (the byte rate is learned): one read per ~0.2 s instead of one
    # per picture, and never more than a batch behind.
    assert 60 / 0.2 <= reads <= 60 / 0.2 + 25 + 10
    assert worst <= 6 * PICTURE_BYTES


def test_a_high_bit_rate_camera_naps_only_as_long_as_the_receive_buffer_allows() -> None:
    """What arrives during a nap waits in the kernel: an 8 Mbit/s camera fills 64 KiB in
    65 ms, so its naps are that long, not the whole batch, and its backlog stays under it."""
    pacer = ReadPacer(0.2)
    picture = 40_000  # 8 Mbit/s at 25 pictures a second
    _, reads, worst = simulate(pacer, seconds=60, picture_bytes=picture)
    assert reads > 60 / 0.07
    assert worst <= MAX_BACKLOG_BYTES + 2 * picture
    assert 0.05 <= pacer.nap_after(61.0, 61 * picture / FRAME_S, drained=True) <= 0.07


def test_no_nap_before_the_camera_s_byte_rate_is_known() -> None:
    pacer = ReadPacer(0.2)
    early = [pacer.nap_after(i * FRAME_S, i * PICTURE_BYTES, drained=True) for i in range(20)]
    assert not any(early)  # 0.8 s in: not yet
    later = [pacer.nap_after(i * FRAME_S, i * PICTURE_BYTES, drained=True) for i in range(20, 40)]
    assert later[-1] == 0.2  # 2 Mbit/s fills 64 KiB in a quarter second: the whole batch


def test_a_batch_of_zero_reads_picture_by_picture() -> None:
    _, reads, _ = simulate(ReadPacer(0.0), seconds=10)
    assert reads == 10 / FRAME_S - 1


def test_a_backlog_larger_than_one_read_is_read_without_napping() -> None:
    """A camera's GOP cache on connect, or a stall: the reader catches up first."""
    pacer = ReadPacer(0.2)
    for i in range(50):  # caught up for two seconds: the nap length is known
        pacer.nap_after(i * FRAME_S, i * PICTURE_BYTES, drained=True)
    assert pacer.nap_after(2.0, 50 * PICTURE_BYTES + READ_BUFFER_BYTES, drained=False) == 0.0
    # Drained: it naps again (shorter for a while, as the burst counts in the byte rate).
    assert 0 < pacer.nap_after(2.01, 50 * PICTURE_BYTES + READ_BUFFER_BYTES + 1000, drained=True) <= 0.2


@given(
    backlog=st.integers(min_value=0, max_value=4 * READ_BUFFER_BYTES),
    picture_bytes=st.integers(min_value=1_000, max_value=60_000),  # 0.2 to 12 Mbit/s
)
def test_whatever_the_backlog_and_bit_rate_the_reader_catches_up_and_keeps_up(backlog: int, picture_bytes: int) -> None:
    received, _, _ = simulate(ReadPacer(0.2), seconds=30, picture_bytes=picture_bytes, backlog_at_start=backlog)
    sent = backlog + int(30 / FRAME_S) * picture_bytes
    # At the end, no more behind than a nap's worth of bytes (plus the picture in flight).
    assert sent - received <= MAX_BACKLOG_BYTES + 2 * picture_bytes
