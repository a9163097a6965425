"""M1 anchors in S3 with Object Lock, against a real S3 store (SeaweedFS's gateway): the
signed heads reach the bucket as locked objects, ``pscs audit verify --anchors s3://…``
passes on an intact trail and names the break after a rewrite, and the store refuses to
take the anchored versions back."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from pscs.audit import log as audit_log
from pscs.audit.anchors import S3Anchor, anchor_from_url
from pscs.audit.signed_heads import head_line, parse_heads
from pscs.runtime import Runtime
from tests.s3_server import S3Server, s3_server  # noqa: F401 - the fixture
from tests.test_audit_hardening import checkpoint_seqs, cli, fill, last_seq, rewrite, rt  # noqa: F401 - fixtures

BUCKET = "pscs-anchors"
PREFIXES = itertools.count()


@pytest.fixture(scope="module")
def locked_bucket(s3_server: S3Server) -> str:  # noqa: F811
    """A bucket with Object Lock (one for the module: each test writes under its own prefix)."""
    s3_server.client().create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    return BUCKET


@pytest.fixture
def bucket(s3_server: S3Server, locked_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    """The bucket, with boto3's environment pointing at the store."""
    s3_server.environment(monkeypatch)
    return locked_bucket


@pytest.fixture
def anchored(rt: Runtime, bucket: str) -> Iterator[tuple[Runtime, str]]:  # noqa: F811
    """The installation sending its signed heads to the bucket, under a prefix of its own."""
    url = f"s3://{bucket}/trail-{next(PREFIXES)}/?retain_days=1"
    other = Runtime.open(rt.settings.model_copy(update={"audit_anchors": [url]}))
    yield other, url
    other.close()


def test_M1_the_bucket_is_locked_and_versioned(s3_server, bucket):  # noqa: F811
    client = s3_server.client()
    assert client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["ObjectLockEnabled"] == (
        "Enabled"
    )
    assert client.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_M1_signed_heads_reach_the_s3_anchor_under_compliance_retention(anchored, s3_server):  # noqa: F811
    installation, url = anchored
    fill(installation, 25)
    installation.audit.checkpoint()
    sink = anchor_from_url(url)
    assert isinstance(sink, S3Anchor) and (sink.bucket, sink.retain_days) == (BUCKET, 1)
    assert sink.prefix == url.split("/")[3] + "/"
    sent = sink.read()
    assert len(sent) >= 3 and {h.seq for h in sent} <= set(checkpoint_seqs(installation))
    assert sent[-1].seq == last_seq(installation) and sent == installation.audit.head_record.read()[-len(sent) :]
    client = s3_server.client()
    for key, version in sink.first_versions().items():
        held = client.head_object(Bucket=sink.bucket, Key=key, VersionId=version)
        assert held["ObjectLockMode"] == "COMPLIANCE"
        until = held["ObjectLockRetainUntilDate"]
        assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(days=1)


def test_M1_s3_anchor_catches_a_rewrite_by_someone_who_also_holds_the_key(anchored, cli):  # noqa: F811
    installation, url = anchored
    fill(installation, 60)
    installation.audit.checkpoint()
    intact = cli("audit", "verify", "--anchors", url)
    assert intact.exit_code == 0, intact.output
    assert "audit trail intact" in intact.output
    anchored_seqs = [h.seq for h in anchor_from_url(url).read()]
    rewrite(installation, cut=range(30, 35), keep_checkpoints_before=30)
    installation.audit.head_record.path.unlink()
    unrecorded = audit_log.AuditLog(installation.db, installation.audit.signer, installation.audit.policy, record=None)
    unrecorded.checkpoint()
    result = cli("audit", "verify", "--anchors", url)
    assert result.exit_code == 3, result.output
    first_mismatch = min(s for s in anchored_seqs if s >= 30)
    assert f"anchored head ({url}) at {first_mismatch}" in result.output
    assert "does not match the chain" in result.output


def test_M1_s3_anchor_that_cannot_be_read_is_named(bucket, cli):  # noqa: F811
    missing = cli("audit", "verify", "--anchors", "s3://no-such-bucket/trail/")
    assert missing.exit_code == 2 and "cannot be read" in missing.output and "NoSuchBucket" in missing.output


def test_M1_the_store_refuses_to_take_an_anchored_head_back(anchored, s3_server, cli):  # noqa: F811
    """Removing a locked version, shortening its retention or bypassing it is refused; a
    plain delete or an overwrite only stacks a delete marker or a newer version on top, and
    the verifier reads the version that was locked."""
    installation, url = anchored
    fill(installation, 25)
    installation.audit.checkpoint()
    sink = anchor_from_url(url)
    assert isinstance(sink, S3Anchor)
    before = sink.read()
    client = s3_server.client()
    key, version = next(iter(sink.first_versions().items()))

    def refused(call, **kwargs) -> str:  # noqa: ANN001
        with pytest.raises(ClientError) as caught:
            call(Bucket=sink.bucket, Key=key, VersionId=version, **kwargs)
        return caught.value.response["Error"]["Code"]

    assert refused(client.delete_object) == "AccessDenied"
    assert refused(client.delete_object, BypassGovernanceRetention=True) == "AccessDenied"
    shorter = {"Mode": "GOVERNANCE", "RetainUntilDate": datetime.now(UTC) + timedelta(seconds=5)}
    assert refused(client.put_object_retention, Retention=shorter) == "AccessDenied"

    forged = replace(before[0], head_hash="0" * 64)
    client.put_object(Bucket=sink.bucket, Key=key, Body=head_line(forged).encode())
    client.delete_object(Bucket=sink.bucket, Key=f"{sink.prefix}{before[1].seq:020d}-{before[1].ts_us}.json")
    latest = client.get_object(Bucket=sink.bucket, Key=key)["Body"].read().decode()
    assert parse_heads(latest, key) == [forged]  # the overwrite is what a plain read now sees
    assert sink.read() == before  # the anchored versions are still what counts
    intact = cli("audit", "verify", "--anchors", url)
    assert intact.exit_code == 0, intact.output
