"""A camera's thread reads in batches once it has caught up, and never naps while behind
(pscs.recording.pacing): the pacer is fed the timings a thread would see."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pscs.recording.pacing import ReadPacer

FRAME_S = 0.04  # 25 pictures a second


def simulate(
    pacer: ReadPacer, *, seconds: float, delay_s: float = 0.01, work_s: float = 0.0002, clock_rate: float = 1.0
) -> tuple[int, int, float]:
    """A camera sends a picture every FRAME_S (media time runs at ``clock_rate`` against the
    local clock); it reaches the socket ``delay_s`` later; reading one takes ``work_s``.
    Returns (pictures read, naps taken, the largest backlog seen, in seconds)."""
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
        nap = pacer.nap_after(sent * clock_rate, started, now)
        if nap:
            naps += 1
            now += nap
    return read, naps, worst


def test_a_caught_up_reader_naps_between_batches_and_stays_within_one_batch_of_the_camera() -> None:
    pacer = ReadPacer(0.2)
    read, naps, worst = simulate(pacer, seconds=60)
    assert read == 1500
    # One nap per ~0.2 s instead of one wake-up per picture, and never more than a batch behind.
    assert 250 <= naps <= 320
    assert worst <= 0.2 + FRAME_S + 0.01


def test_a_batch_of_zero_reads_packet_by_packet() -> None:
    assert simulate(ReadPacer(0.0), seconds=10)[1] == 0


def test_a_burst_of_old_pictures_read_without_waiting_never_naps() -> None:
    pacer = ReadPacer(0.2)
    # A camera's GOP cache on connect: two seconds of pictures, all already in the buffer.
    reads = [(i * FRAME_S, 5.0 + i * 1e-4) for i in range(50)]
    naps = [pacer.nap_after(media_s=media, read_started_s=start, now_s=start + 5e-5) for media, start in reads]
    assert not any(naps)


def test_a_reader_that_is_behind_does_not_nap_even_when_a_busy_process_delays_a_read() -> None:
    pacer = ReadPacer(0.2)
    for i in range(100):  # caught up: the floor is learned
        pacer.nap_after(i * FRAME_S, i * FRAME_S, i * FRAME_S + 0.01)
    # Now half a second behind, and a read took 5 ms only because other threads held the GIL.
    media = 100 * FRAME_S
    assert pacer.nap_after(media, media + 0.5, media + 0.505) == 0.0


@given(
    clock_rate=st.floats(min_value=0.999, max_value=1.001),  # a camera clock off by up to 1000 ppm
    delay_s=st.floats(min_value=0.0, max_value=0.3),
)
def test_whatever_the_camera_clock_and_network_delay_the_reader_keeps_up(clock_rate: float, delay_s: float) -> None:
    read, naps, worst = simulate(ReadPacer(0.2), seconds=120, delay_s=delay_s, clock_rate=clock_rate)
    assert read == 3000
    assert worst <= 0.2 + FRAME_S + 0.01
