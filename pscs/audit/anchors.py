"""Anchors (M1): signed heads sent off the machine, where whoever controls this host cannot
take them back, so that ``pscs audit verify --anchors`` can check the trail against them.

A sink is named by a URL in the ``audit_anchors`` setting:

* ``file:///mnt/audit-host/pscs-heads.jsonl`` (or a plain path): an append-only file, one
  signed head a line, fsynced — meant for a folder that another host owns (an NFS export
  written only by appending, a syslog relay's file, a WORM share).
* ``s3://bucket/prefix/?retain_days=2555``: one object per head in an S3 bucket with
  Object Lock, written in COMPLIANCE mode so nobody (not even the account root) can delete
  or overwrite it before the retention date.  Needs ``boto3`` (``pip install pscs[s3]``)
  and the usual AWS credentials in the environment.

Sending is best effort: a sink that fails is logged and the trail goes on (the signer's own
record and the database still hold the head); verifying reads back what reached the sink.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlparse

from pscs.audit.chain import Checkpoint
from pscs.audit.signed_heads import append_durably, head_line, parse_heads


class AnchorSink(Protocol):
    url: str

    def send(self, heads: list[Checkpoint]) -> None: ...

    def read(self) -> list[Checkpoint]: ...


@dataclass(frozen=True)
class FileAnchor:
    url: str
    path: Path

    def send(self, heads: list[Checkpoint]) -> None:
        append_durably(self.path, (head_line(h) for h in heads), mode=0o640)

    def read(self) -> list[Checkpoint]:
        return parse_heads(self.path.read_text(encoding="utf-8"), str(self.path))


@dataclass(frozen=True)
class S3Anchor:
    url: str
    bucket: str
    prefix: str
    retain_days: int
    client: Any

    def send(self, heads: list[Checkpoint]) -> None:
        until = datetime.now(UTC) + timedelta(days=self.retain_days)
        for head in heads:
            self.client.put_object(
                Bucket=self.bucket,
                Key=f"{self.prefix}{head.seq:020d}-{head.ts_us}.json",
                Body=head_line(head).encode(),
                ContentType="application/json",
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=until,
                ChecksumAlgorithm="SHA256",  # Object Lock needs an integrity checksum
            )

    def read(self) -> list[Checkpoint]:
        heads = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                body = self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                heads += parse_heads(body.decode(), f"s3://{self.bucket}/{item['Key']}")
        return heads


def anchor_from_url(url: str) -> AnchorSink:
    """The sink a URL names; ValueError when the URL is not one pscs can write to."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme else url)
        if not path.is_absolute():
            raise ValueError(f"anchor {url!r}: a file anchor needs an absolute path")
        return FileAnchor(url, path)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"anchor {url!r}: no bucket")
        try:
            import boto3
        except ImportError as exc:
            raise ValueError(f"anchor {url!r}: S3 anchors need boto3 (pip install 'pscs[s3]')") from exc
        retain = parse_qs(parsed.query).get("retain_days", ["2555"])[0]
        if not retain.isdigit() or int(retain) < 1:
            raise ValueError(f"anchor {url!r}: retain_days must be a whole number of days")
        return S3Anchor(url, parsed.netloc, parsed.path.lstrip("/"), int(retain), boto3.client("s3"))
    raise ValueError(f"anchor {url!r}: use file:///path or s3://bucket/prefix")


def read_anchored_heads(urls: list[str]) -> dict[str, list[Checkpoint]]:
    """Signed heads from each anchor, keyed by how the verifier names them."""
    found = {}
    for url in urls:
        try:
            found[f"anchored head ({url})"] = anchor_from_url(url).read()
        except OSError as exc:
            raise ValueError(f"anchor {url!r} cannot be read: {exc}") from exc
    return found
