"""A camera's thread reads in batches once it has caught up, and never naps while behind
(pscs.recording.pacing): the pacer is fed the timings a thread would see."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pscs.recording.pacing import MAX_BACKLOG_BYTES, ReadPacer

FRAME_S = 0.04  # 25 pictures a second
PICTURE_BYTES = 10_000  # 2 Mbit/s


def simulate(
    pacer: ReadPacer,
    *,
    seconds: float,
    delay_s: float = 0.01,
    work_s: float = 0.0002,
    clock_rate: float = 1.0,
    picture_bytes: int = PICTURE_BYTES,
) -> tuple[int, int, float]:
    """A camera sends a picture of ``picture_bytes`` every FRAME_S (media time runs at
    ``clock_rate`` against the local clock); it reaches the socket ``delay_s`` later;
    reading one takes ``work_s``.  Returns (pictures read, naps taken, the largest backlog
    seen, in seconds)."""
    now = 0.0
    naps = read = 0
    worst = 0.0
    sent_at = [i * FRAME_S for i in range(int(seconds / FRAME_S))]
    for sent in sent_at:
        arrives = sent + delay_s
        started = now
        now = max(now, arrives) + work_s  # a read blocks until the picture is there
        worst = max(worst, now - arrives)
        read += 1
        nap = pacer.nap_after(sent * clock_rate, started, now, picture_bytes)
        if nap:
            naps += 1
            now += nap
    return read, naps, worst


def test_a_caught_up_reader_naps_between_batches_and_stays_within_one_batch_of_the_camera() -> None:
    pacer = ReadPacer(0.2)
    read, naps, worst = simulate(pacer, seconds=60)
    assert read == 1500
    # After the first second (the byte rate is learned), one nap per ~0.2 s instead of one
    # wake-up per picture, and never more than a batch behind.
    assert 240 <= naps <= 310
    assert worst <= 0.2 + FRAME_S + 0.01


def test_a_high_bit_rate_camera_naps_only_as_long_as_the_receive_buffer_allows() -> None:
    """What arrives during a nap waits in the kernel: an 8 Mbit/s camera fills 64 KiB in
    65 ms, so its naps are that long, not the whole batch, and its backlog stays under it."""
    pacer = ReadPacer(0.2)
    picture = 40_000  # 8 Mbit/s at 25 pictures a second
    read, naps, worst = simulate(pacer, seconds=60, picture_bytes=picture)
    assert read == 1500 and naps > 300
    assert worst * picture / FRAME_S <= MAX_BACKLOG_BYTES + 2 * picture
    assert 0.05 <= pacer.nap_after(60.0, 60.0, 60.01, picture) <= 0.07


def test_no_nap_before_the_camera_s_byte_rate_is_known() -> None:
    pacer = ReadPacer(0.2)
    naps = [pacer.nap_after(i * FRAME_S, i * FRAME_S, i * FRAME_S + 0.01, PICTURE_BYTES) for i in range(20)]
    assert not any(naps)  # 0.8 s in: not yet
    later = [pacer.nap_after(i * FRAME_S, i * FRAME_S, i * FRAME_S + 0.01, PICTURE_BYTES) for i in range(20, 40)]
    assert later[-1] == 0.2  # 2 Mbit/s fills 64 KiB in a quarter second: the whole batch


def test_a_batch_of_zero_reads_packet_by_packet() -> None:
    assert simulate(ReadPacer(0.0), seconds=10)[1] == 0


def test_a_burst_of_old_pictures_read_without_waiting_never_naps() -> None:
    pacer = ReadPacer(0.2)
    # A camera's GOP cache on connect: two seconds of pictures, all already in the buffer.
    reads = [(i * FRAME_S, 5.0 + i * 1e-4) for i in range(50)]
    naps = [pacer.nap_after(media, start, start + 5e-5, PICTURE_BYTES) for media, start in reads]
    assert not any(naps)


def test_a_reader_that_is_behind_does_not_nap_even_when_a_busy_process_delays_a_read() -> None:
    pacer = ReadPacer(0.2)
    for i in range(100):  # caught up: the floor is learned
        pacer.nap_after(i * FRAME_S, i * FRAME_S, i * FRAME_S + 0.01, PICTURE_BYTES)
    # Now half a second behind, and a read took 5 ms only because other threads held the GIL.
    media = 100 * FRAME_S
    assert pacer.nap_after(media, media + 0.5, media + 0.505, PICTURE_BYTES) == 0.0


@given(
    clock_rate=st.floats(min_value=0.999, max_value=1.001),  # a camera clock off by up to 1000 ppm
    delay_s=st.floats(min_value=0.0, max_value=0.3),
)
def test_whatever_the_camera_clock_and_network_delay_the_reader_keeps_up(clock_rate: float, delay_s: float) -> None:
    read, naps, worst = simulate(ReadPacer(0.2), seconds=120, delay_s=delay_s, clock_rate=clock_rate)
    assert read == 3000
    assert worst <= 0.2 + FRAME_S + 0.01
