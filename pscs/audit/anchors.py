"""Anchors (M1): signed heads sent off the machine, where whoever controls this host cannot
take them back, so that ``pscs audit verify --anchors`` can check the trail against them.

A sink is named by a URL in the ``audit_anchors`` setting:

* ``file:///mnt/audit-host/pscs-heads.jsonl`` (or a plain path): an append-only file, one
  signed head a line, fsynced — meant for a folder that another host owns (an NFS export
  written only by appending, a syslog relay's file, a WORM share).
* ``s3://bucket/prefix/?retain_days=2555``: one object per head in an S3 bucket with
  Object Lock, written in COMPLIANCE mode so nobody (not even the account root) can delete
  or overwrite it before the retention date.  Needs ``boto3`` (``pip install pscs[s3]``)
  and boto3's usual configuration: credentials (``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY``, a profile, or an instance role), the region, and for a store
  other than AWS (MinIO, SeaweedFS, Ceph) its address in ``AWS_ENDPOINT_URL_S3`` or
  ``AWS_ENDPOINT_URL`` (or ``endpoint_url`` in the AWS config file).  The bucket must have
  been created with Object Lock enabled (which also turns versioning on).

  Reading takes the *first* version of every object under the prefix: pscs writes each key
  once, so a later version or a delete marker is someone else's doing, and the version
  that Object Lock keeps is the one that counts.

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
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            heads = []
            for key, version in self.first_versions().items():
                body = self.client.get_object(Bucket=self.bucket, Key=key, VersionId=version)["Body"].read()
                heads += parse_heads(body.decode(), f"s3://{self.bucket}/{key}")
            return heads
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"s3://{self.bucket}/{self.prefix}: {exc}") from exc

    def first_versions(self) -> dict[str, str]:
        """Each key's oldest version: the one pscs wrote and Object Lock keeps (a listing
        gives a key's versions newest first, so the last one seen is the oldest)."""
        first: dict[str, str] = {}
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for version in page.get("Versions", []):
                first[version["Key"]] = version["VersionId"]
        return dict(sorted(first.items()))


def _s3_client_config() -> Any:
    from botocore.config import Config

    # Heads are sent as the trail is written: a store that does not answer is given up on
    # in seconds (and logged) rather than holding the writer for boto3's default minutes.
    return Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 2})


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
        client = boto3.client("s3", config=_s3_client_config())
        return S3Anchor(url, parsed.netloc, parsed.path.lstrip("/"), int(retain), client)
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
