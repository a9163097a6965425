"""How much CPU the simulator itself uses: N cameras, one TCP client each on the main stream.

    python -m pscs.sim.bench --cameras 50 --seconds 10 [--scene loop|clock|ptz]

Runs ``pscs sim serve`` in a child process, plays every camera's main stream with a
minimal RTSP client (DESCRIBE, SETUP interleaved, PLAY, then read and discard), and
reads the child's CPU time from /proc.  Clients run in this process, so they do not
count against the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def rtsp_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, lines: list[str]
) -> tuple[str, dict[str, str]]:
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    headers = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if int(headers.get("content-length", "0")):
        await reader.readexactly(int(headers["content-length"]))
    return head.split("\r\n", 1)[0], headers


async def play_and_count(url: str, seconds: float, counts: dict[str, int]) -> None:
    host, port = re.match(r"rtsp://([^:/]+):(\d+)/", url).groups()  # type: ignore[union-attr]
    reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
    await rtsp_request(reader, writer, [f"DESCRIBE {url} RTSP/1.0", "CSeq: 1"])
    transport = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1"
    _, setup = await rtsp_request(reader, writer, [f"SETUP {url}/trackID=0 RTSP/1.0", "CSeq: 2", transport])
    session = setup["session"].split(";")[0]
    writer.write(f"PLAY {url}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n".encode())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = await reader.read(1 << 18)
        if not data:
            break
        counts[url] = counts.get(url, 0) + len(data)
    writer.close()


async def run_clients(urls: list[str], warmup: float, seconds: float, pid: int) -> tuple[float, dict[str, int]]:
    counts: dict[str, int] = {}
    tasks = [asyncio.create_task(play_and_count(url, warmup + seconds, counts)) for url in urls]
    await asyncio.sleep(warmup)
    counts.clear()
    cpu_before, wall_before = process_cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = process_cpu_seconds(pid) - cpu_before
    wall = time.monotonic() - wall_before
    await asyncio.gather(*tasks, return_exceptions=True)
    return cpu / wall, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--scene", choices=("loop", "clock", "ptz"), default="loop")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()

    command = [sys.executable, "-m", "pscs.sim.cli", "serve", "--port", "0", "--cameras", str(args.cameras)]
    command += ["--scene", args.scene] + (["--cache-dir", args.cache_dir] if args.cache_dir else [])
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        urls: list[str] = []
        assert server.stdout is not None
        for line in server.stdout:
            if "Ctrl-C" in line:
                break
            urls += [url for url in line.split() if url.startswith("rtsp://") and url.endswith("/main")]
        if len(urls) != args.cameras:
            print(f"simulator printed {len(urls)} main URLs, expected {args.cameras}", file=sys.stderr)
            return 1
        idle_before = process_cpu_seconds(server.pid)
        time.sleep(2)
        idle = (process_cpu_seconds(server.pid) - idle_before) / 2
        cores, counts = asyncio.run(run_clients(urls, args.warmup, args.seconds, server.pid))
    finally:
        server.terminate()
        server.wait(timeout=10)
    rates = sorted(8 * count / args.seconds / 1e6 for count in counts.values())
    print(f"{args.cameras} {args.scene} cameras, main stream, one TCP client each, {args.seconds:.0f} s")
    print(f"simulator CPU while idle:     {idle * 100:5.1f} % of one core")
    per_camera = cores * 100 / args.cameras
    print(f"simulator CPU while serving:  {cores * 100:5.1f} % of one core ({per_camera:.2f} % per camera)")
    if rates:
        print(
            f"received per client: min {rates[0]:.2f}, median {rates[len(rates) // 2]:.2f} Mbit/s; clients {len(rates)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
