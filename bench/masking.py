"""Privacy-masking benchmark (U4).

    .venv/bin/python bench/masking.py                   # everything, ~2 minutes
    .venv/bin/python bench/masking.py --frames 150 --skip-streams --skip-latency

1. Throughput, 720p and 1080p: pscs's masked transcode (PyAV decode → fill the zones on the
   YUV planes → libx264) against the plain ``ffmpeg`` binary transcoding the same file with
   the same encoder, preset, rate control and thread counts and no mask, in the same run.
   Goal: masked / ffmpeg >= 0.95 (masking costs nothing beyond the encode).
2. How many masked 720p 25 fps live streams this machine sustains: N pipelines run at once,
   each paced in real time; sustained = every one keeps 25 fps with no growing backlog.
3. Live latency p50/p95, passthrough vs masked: a simulated 720p25 camera over RTSP →
   the live hub → fragments; delay = arrival - the capture time the simulator stamps in SEI.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np

from pscs.media.h264 import parameter_sets_from_extradata, split_avcc
from pscs.sim.scenes import render_loop_frame
from pscs.video.masking import EncoderSettings, MaskingTranscoder
from pscs.video.zones import ZoneSet

ZONES = ZoneSet(
    "bench:1",
    1,
    1,
    "image",
    (
        ((0.125, 0.35), (0.45, 0.35), (0.45, 0.8), (0.125, 0.8)),
        ((0.6, 0.3), (0.92, 0.45), (0.7, 0.9)),
    ),
)
FPS = 25


def make_source(path: Path, width: int, height: int, frames: int) -> None:
    """A camera-like H.264 file: the simulator's loop scene (grid + moving noise band)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "veryfast", "x264-params": f"keyint={FPS}:bframes=0"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(render_loop_frame(i, width, height), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def read_units(path: Path) -> tuple[list[tuple[list[bytes], int]], bytes | None, bytes | None]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        sps, pps = parameter_sets_from_extradata(stream.codec_context.extradata)
        units = [
            (split_avcc(bytes(p)) or [], round(p.pts * stream.time_base * 90_000))
            for p in container.demux(stream)
            if p.size
        ]
    return units, sps, pps


def masked_fps(path: Path, preset: str, threads: int, zones: ZoneSet | None = ZONES) -> float:
    units, sps, pps = read_units(path)
    settings = EncoderSettings(preset=preset, crf=23, keyframe_interval_s=1.0, threads=threads)
    transcoder = MaskingTranscoder(
        zones or ZoneSet("none", 0, 0, "image", ()), settings, sps=sps, pps=pps, fps_hint=FPS, decoder_threads=threads
    )
    start = time.perf_counter()
    out = 0
    for nals, pts in units:
        out += len(transcoder.push(nals, pts))
    elapsed = time.perf_counter() - start
    assert out == len(units), (out, len(units))
    return len(units) / elapsed


def ffmpeg_fps(path: Path, preset: str, threads: int, frames: int) -> float:
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-threads",
        str(threads),
        "-i",
        str(path),
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-tune",
        "zerolatency",
        "-crf",
        "23",
        "-threads",
        str(threads),
        "-x264-params",
        f"scenecut=0:bframes=0:keyint={FPS}",
        "-f",
        "null",
        "-",
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return frames / (time.perf_counter() - start)


def throughput(tmp: Path, frames: int, preset: str, threads: int, repeats: int) -> None:
    print(
        f"\n1. throughput: libx264 preset={preset} tune=zerolatency crf=23, {threads} thread(s) for decode "
        f"and encode, {frames} frames, best of {repeats}"
    )
    for width, height in ((1280, 720), (1920, 1080)):
        src = tmp / f"src-{height}.mp4"
        make_source(src, width, height, frames)
        plain = unmasked = masked = 0.0
        for _ in range(repeats):  # interleaved, so a busy moment of a shared machine hits all three
            plain = max(plain, ffmpeg_fps(src, preset, threads, frames))
            masked = max(masked, masked_fps(src, preset, threads))
            unmasked = max(unmasked, masked_fps(src, preset, threads, zones=None))
        print(
            f"   {height}p: ffmpeg (no mask) {plain:6.1f} fps | pscs unmasked {unmasked:6.1f} fps | "
            f"pscs masked {masked:6.1f} fps | masked/ffmpeg {masked / plain:.3f} (goal >= 0.95)"
        )


def live_streams(tmp: Path, preset: str, seconds: float, max_streams: int) -> None:
    src = tmp / "src-720.mp4"
    if not src.exists():
        make_source(src, 1280, 720, 150)
    units, sps, pps = read_units(src)
    settings = EncoderSettings(preset=preset, crf=23, keyframe_interval_s=1.0, threads=1)
    print(
        f"\n2. masked 720p25 live streams (preset {preset}, one thread each, {seconds:g} s each run; "
        f"{os.cpu_count()} CPUs visible)"
    )

    def run(n: int) -> list[float]:
        achieved = [0.0] * n

        def one(i: int) -> None:
            tr = MaskingTranscoder(ZONES, settings, sps=sps, pps=pps, fps_hint=FPS)
            start = time.perf_counter()
            done = 0
            while (now := time.perf_counter() - start) < seconds:
                due = int(now * FPS) + 1
                while done < due:
                    nals, _ = units[done % len(units)]
                    tr.push(nals, done * 3600)
                    done += 1
                time.sleep(max(0.0, (done / FPS) - (time.perf_counter() - start)))
            achieved[i] = done / (time.perf_counter() - start)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return achieved

    sustained = 0
    for n in range(1, max_streams + 1):
        got = run(n)
        ok = min(got) >= FPS * 0.98
        print(
            f"   {n} stream(s): slowest {min(got):5.1f} fps, mean {np.mean(got):5.1f} fps -> "
            f"{'sustained' if ok else 'NOT sustained'}"
        )
        if not ok:
            break
        sustained = n
    print(f"   => {sustained} masked 720p25 stream(s) sustained on this machine")


def latency(seconds: float) -> None:
    from pscs.sim import CameraSpec, SimulatorServer, parse_pscs_sei
    from pscs.video.live import LiveHub, UpstreamSource

    print(f"\n3. live latency, simulated 720p25 camera (loop scene) over RTSP, {seconds:g} s each")
    with SimulatorServer([CameraSpec("cam1", scene="loop")]) as sim:
        for name, zones in (("passthrough", None), ("masked", ZONES)):
            hub = LiveHub(
                resolver=lambda cid, st: UpstreamSource(cid, st, sim.url("cam1", st), "cam1"),
                zones_for=lambda cid, z=zones: z,
            )
            sub = hub.subscribe(1, "main")
            measured = []
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                item = sub.get(timeout=10)
                now = time.time()
                if isinstance(item, bytes) and item[4:8] == b"moof" and time.monotonic() - start > 1.5:
                    moof = int.from_bytes(item[:4], "big")
                    captured = parse_pscs_sei(item[moof + 8 :])
                    if captured:
                        measured.append(now - captured / 1e6)
            hub.unsubscribe(sub)
            hub.close()
            p50, p95 = np.percentile(measured, 50), np.percentile(measured, 95)
            goal = 1.0 if zones is None else 1.5
            print(
                f"   {name:11}: p50 {p50 * 1000:6.1f} ms, p95 {p95 * 1000:6.1f} ms over {len(measured)} pictures "
                f"(goal p95 <= {goal:g} s)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stream-seconds", type=float, default=6.0)
    parser.add_argument("--max-streams", type=int, default=16)
    parser.add_argument("--latency-seconds", type=float, default=8.0)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-streams", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    print(
        f"pscs masking benchmark: PyAV {av.__version__}, ffmpeg {imageio_ffmpeg.get_ffmpeg_version()}, "
        f"{os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not args.skip_throughput:
            throughput(tmp, args.frames, args.preset, args.threads, args.repeats)
        if not args.skip_streams:
            live_streams(tmp, args.preset, args.stream_seconds, args.max_streams)
        if not args.skip_latency:
            latency(args.latency_seconds)


if __name__ == "__main__":
    main()
