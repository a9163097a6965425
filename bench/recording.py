"""Recording benchmark (issue 3): the pscs recorder against plain ffmpeg, same cameras, same run.

    .venv/bin/python bench/recording.py [--cameras 1,16,64,200] [--seconds 60] [--warmup 10] [--workers 2]
                                        [--rounds 1] [--read-batch S]

For each camera count N it starts N simulated 720p25 ~2 Mbit/s cameras (the simulator's
``loop`` scene, in its own process so that its cost is not counted), then

1. records them with pscs (RecorderSupervisor: at most ``--workers`` processes, each filled
   to 64 cameras before the next starts) and measures the CPU time (each thread's time on
   a CPU, in nanoseconds, from /proc) of the worker processes and of the supervisor
   (threads of the benchmark's own process, which otherwise sleeps), the workers' memory,
   and loss: the pictures the simulator had to drop because the recorder read too slowly,
   plus those the recorder received and could not write, over the pictures sent (the
   simulator logs both counts per client as it leaves; its own stalls, when it was starved
   of CPU, are reported apart as source skips, and reconnects are counted);
2. records the same streams with one ``ffmpeg -rtsp_transport tcp -i URL -c copy -f segment``
   per camera (the ffmpeg that imageio-ffmpeg ships) and measures the same.

It prints CPU seconds per camera-minute and memory per camera for both, and the ratio
pscs / ffmpeg (goal: CPU ratio <= 1.0, memory <= 5 MB per camera, no loss at 200 cameras).
Memory is shown two ways: RSS (each process's resident pages, shared ones counted in every
process: what ``ps`` shows) and PSS (shared pages split between the processes that share
them: what the processes cost the machine together).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio_ffmpeg
from sqlalchemy import select

from pscs import startup
from pscs.audit.events import Actor
from pscs.cameras import service as cameras
from pscs.config import Settings
from pscs.install import init_installation
from pscs.recording.camera import RecorderConfig
from pscs.recording.models import CameraHealth
from pscs.recording.supervisor import RecorderSupervisor

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SCHEDSTAT = os.path.exists("/proc/self/schedstat")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process's threads, in nanoseconds where the kernel keeps it.

    /proc/PID/stat counts in clock ticks (10 ms): one camera for 30 s is ~11 ticks, so
    its figure would move by 10 % with one tick.  Each thread's schedstat holds its time on
    a CPU in nanoseconds; the benchmark's processes start their threads before the window
    and keep them, so the sum over live threads is the process's time in the window."""
    if not SCHEDSTAT:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except FileNotFoundError:
            pass  # the thread ended just now
    return total / 1e9


def memory_bytes(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                fields[key] = int(rest.split()[0]) * 1024
    return fields["Rss"], fields["Pss"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Loss:
    sent: int = 0  # pictures the simulator sent to the recorder's sessions
    dropped: int = 0  # dropped by the simulator: the recorder read too slowly
    not_written: int = 0  # received by the recorder but not written (its dropped_packets)
    source_skipped: int = 0  # the simulator's own stalls (not the recorder's doing)
    reconnects: int = 0

    @property
    def percent(self) -> float:
        return 100 * (self.dropped + self.not_written) / max(self.sent, 1)


@dataclass
class Measure:
    cpu_s: float
    rss: int
    pss: int
    window_s: float
    loss: Loss | None = None
    supervisor_cpu_s: float = 0.0  # part of cpu_s: the supervisor's threads

    def per_camera_minute(self, n: int, cpu_s: float | None = None) -> float:
        return (self.cpu_s if cpu_s is None else cpu_s) / n / (self.window_s / 60)


def measure(pids: list[int], seconds: float, cpu_only: tuple[int, ...] = ()) -> tuple[float, float, int, int, float]:
    """CPU time of ``pids`` and ``cpu_only``, and of ``cpu_only`` alone, over the window;
    RSS and PSS of ``pids``."""
    start = [sum(cpu_seconds(p) for p in group) for group in (pids, cpu_only)]
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    cpu, cpu_only_s = (sum(cpu_seconds(p) for p in group) - s for group, s in zip((pids, cpu_only), start, strict=True))
    memory = [memory_bytes(p) for p in pids]
    return cpu + cpu_only_s, cpu_only_s, sum(m[0] for m in memory), sum(m[1] for m in memory), elapsed


class SimulatorLog:
    """What the simulator logs, kept (a reader thread also keeps its pipe from filling)."""

    CLIENT_LEFT = re.compile(r"client of (\S+) left: (\d+) pictures sent, (\d+) dropped")
    STALL = re.compile(r"(\S+): the simulator fell [\d.]+ s behind; (\d+) pictures skipped")

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for raw in stream:
            self.lines.append(raw.decode(errors="replace"))

    def loss_since(self, mark: int, clients: int, timeout_s: float = 15.0) -> Loss:
        """Counts from the lines after ``mark``, once ``clients`` clients have left."""
        deadline = time.monotonic() + timeout_s
        while sum(1 for line in self.lines[mark:] if self.CLIENT_LEFT.search(line)) < clients:
            if time.monotonic() > deadline:
                print("  warning: not every recorder session was seen to end", file=sys.stderr)
                break
            time.sleep(0.2)
        loss = Loss()
        for line in self.lines[mark:]:
            if m := self.CLIENT_LEFT.search(line):
                loss.sent += int(m[2])
                loss.dropped += int(m[3])
            elif m := self.STALL.search(line):
                loss.source_skipped += int(m[2])
        return loss


def start_simulator(n: int, cache_dir: Path) -> tuple[subprocess.Popen[bytes], int, SimulatorLog]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pscs.cli.main",
            "sim",
            "serve",
            "--port",
            str(port),
            "--cameras",
            str(n),
            "--scene",
            "loop",
            "--cache-dir",
            str(cache_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if "Ctrl-C" in line:
            return proc, port, SimulatorLog(proc.stdout)
        if proc.poll() is not None:
            raise RuntimeError("simulator exited: " + line)
    raise RuntimeError("simulator did not start")


def stop_simulator(sim: subprocess.Popen[bytes]) -> None:
    sim.send_signal(signal.SIGTERM)
    try:
        sim.wait(timeout=30)
    except subprocess.TimeoutExpired:
        print("  warning: the simulator did not stop on SIGTERM within 30 s; killed", file=sys.stderr)
        sim.kill()
        sim.wait()


def urls(port: int, n: int) -> list[str]:
    width = max(2, len(str(n)))
    return [f"rtsp://127.0.0.1:{port}/cam{i:0{width}d}/main" for i in range(1, n + 1)]


def run_pscs(
    camera_urls: list[str], sim_log: SimulatorLog, tmp: Path, config: RecorderConfig, warmup: float, seconds: float
) -> Measure:
    startup.prepare()  # the supervisor's disk-pressure check needs the protection sources
    rt = init_installation(
        Settings(data_dir=tmp / f"pscs-{secrets.token_hex(3)}", min_free_bytes=0),
        admin_password="bench-password-123",  # noqa: S106
    ).runtime
    actor = Actor.system("bench")
    for i, url in enumerate(camera_urls):
        cameras.add_camera(
            rt,
            actor,
            name=f"bench{i:03d}",
            street_address="bench",
            latitude=0,
            longitude=0,
            main_url=url,
            public_area_attested=True,
        )
    mark = len(sim_log.lines)
    supervisor = RecorderSupervisor(rt, config)
    supervisor.start()
    try:
        time.sleep(warmup)
        pids = supervisor.worker_pids()
        # The supervisor (its watch loop: indexing, health, alerts, camera list, disk check)
        # runs in a thread of this process, which otherwise sleeps: its CPU counts.  Its
        # memory is the service's and is not counted.
        cpu, supervisor_cpu, rss, pss, elapsed = measure(pids, seconds, cpu_only=(os.getpid(),))
    finally:
        supervisor.stop()
    loss = sim_log.loss_since(mark, len(camera_urls))
    with rt.db.session() as s:
        for dropped, reconnects in s.execute(select(CameraHealth.dropped_packets, CameraHealth.reconnects)):
            loss.not_written += dropped
            loss.reconnects += max(0, reconnects - 1)  # the first connection is not a reconnect
    rt.close()
    return Measure(cpu, rss, pss, elapsed, loss, supervisor_cpu)


def run_ffmpeg(camera_urls: list[str], tmp: Path, warmup: float, seconds: float) -> Measure:
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    procs = []
    for i, url in enumerate(camera_urls):
        out = tmp / f"ffmpeg-{i:03d}"
        out.mkdir(parents=True, exist_ok=True)
        procs.append(
            subprocess.Popen(
                [
                    ffmpeg,
                    "-nostdin",
                    "-loglevel",
                    "error",
                    "-rtsp_transport",
                    "tcp",
                    "-i",
                    url,
                    "-c",
                    "copy",
                    "-f",
                    "segment",
                    "-segment_time",
                    "10",
                    "-reset_timestamps",
                    "1",
                    str(out / "%05d.mp4"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        time.sleep(warmup)
        alive = [p.pid for p in procs if p.poll() is None]
        if len(alive) != len(procs):
            print(f"  warning: {len(procs) - len(alive)} ffmpeg processes exited early", file=sys.stderr)
        cpu, _, rss, pss, elapsed = measure(alive, seconds)
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    return Measure(cpu, rss, pss, elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", default="1,16,64,200")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--rounds", type=int, default=1, help="ffmpeg then pscs, this many times per N; the ratio shown is the median"
    )
    parser.add_argument(
        "--read-batch", type=float, default=None, help="RecorderConfig.read_batch_s (default: the recorder's own)"
    )
    args = parser.parse_args()
    config = RecorderConfig(workers=args.workers)
    if args.read_batch is not None:
        config = dataclasses.replace(config, read_batch_s=args.read_batch)
    tmp = Path(tempfile.mkdtemp(prefix="pscs-bench-rec-"))
    cache = tmp / "sim-cache"
    print(
        f"{'N':>4} {'who':<7} {'CPU s/cam-min':>13} {'ratio':>6} {'RSS MiB/cam':>11} {'PSS MiB/cam':>11} {'loss %':>7}"
    )
    try:
        for n in (int(x) for x in args.cameras.split(",")):
            sim, port, sim_log = start_simulator(n, cache)
            rounds: list[tuple[Measure, Measure]] = []
            try:
                camera_urls = urls(port, n)
                for r in range(args.rounds):
                    ffmpeg = run_ffmpeg(camera_urls, tmp / f"ff{n}-{r}", args.warmup, args.seconds)
                    ours = run_pscs(camera_urls, sim_log, tmp, config, args.warmup, args.seconds)
                    rounds.append((ffmpeg, ours))
                    shutil.rmtree(tmp / f"ff{n}-{r}", ignore_errors=True)
            finally:
                stop_simulator(sim)
            report(n, rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(n: int, rounds: list[tuple[Measure, Measure]]) -> None:
    """One line per recorder (medians over the rounds), and the loss in all rounds together."""
    ratios = sorted(ours.per_camera_minute(n) / max(ff.per_camera_minute(n), 1e-9) for ff, ours in rounds)
    loss = Loss()
    for _, ours in rounds:
        assert ours.loss is not None
        for name in ("sent", "dropped", "not_written", "source_skipped", "reconnects"):
            setattr(loss, name, getattr(loss, name) + getattr(ours.loss, name))
    mib = 1024 * 1024
    for who, index, ratio, lost in (
        ("ffmpeg", 0, "", ""),
        ("pscs", 1, f"{statistics.median(ratios):.2f}", f"{loss.percent:.2f}"),
    ):
        runs = [pair[index] for pair in rounds]
        cpu = statistics.median(m.per_camera_minute(n) for m in runs)
        rss = statistics.median(m.rss for m in runs) / n / mib
        pss = statistics.median(m.pss for m in runs) / n / mib
        print(f"{n:>4} {who:<7} {cpu:>13.3f} {ratio:>6} {rss:>11.1f} {pss:>11.1f} {lost:>7}", flush=True)
    supervisor = statistics.median(ours.per_camera_minute(n, ours.supervisor_cpu_s) for _, ours in rounds)
    print(f"{'':>12} of which the supervisor (indexing, health, camera list, disk): {supervisor:.3f} s/cam-min")
    if len(ratios) > 1:
        print(f"{'':>12} ratio in each round: {', '.join(f'{r:.2f}' for r in ratios)} (sorted)")
    print(
        f"{'':>12} {loss.sent:,} pictures sent to pscs: {loss.dropped} dropped (slow reader), "
        f"{loss.not_written} not written, {loss.reconnects} reconnects; "
        f"{loss.source_skipped} skipped by the simulator itself (source stall)",
        flush=True,
    )


if __name__ == "__main__":
    main()
