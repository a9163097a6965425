"""Storage requests (S2): numbering in the log, the provisional hold, who decides, the
state machine, and the log's exports."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from pscs.auth.principal import Principal, principal_of_actor
from pscs.errors import InvalidInput, PolicyDenied
from pscs.requests import service as requests
from pscs.requests.log import log_csv
from pscs.requests.pdf import blank_form_pdf, filled_form_pdf, log_pdf
from pscs.retention import holds
from pscs.retention.models import Hold
from pscs.retention.sweeper import RetentionSweeper
from pscs.runtime import Runtime
from tests.test_retention_sweeper import DAY, T0, T0_MS, add_cameras, add_segments, clock, full_name, user_actor


def file(rt: Runtime, actor, cams, **overrides):  # noqa: ANN001, ANN201
    fields = dict(
        unit="Detective Division",
        case_number="2026-004211",
        camera_ids=cams,
        start_ms=T0_MS,
        end_ms=T0_MS + DAY,
        reason="criminal_investigation",
        narrative="Robbery at 1 Main St",
        attestation_name=full_name(actor.username),
        now=T0 + timedelta(days=2),
    )
    return requests.file_request(rt, principal_of_actor(rt, actor), **(fields | overrides))


def test_S2_submitting_numbers_the_request_and_places_a_provisional_hold(runtime: Runtime) -> None:
    cams = add_cameras(runtime, 2)
    add_segments(runtime, cams[0], [T0_MS, T0_MS + DAY // 2])
    inv = user_actor(runtime, "ivy", ["investigator"])
    first = file(runtime, inv, cams)
    second = file(runtime, inv, cams[:1], case_number="2026-004212")
    assert (first.number, second.number) == ("2026-0001", "2026-0002")
    assert first.status == "submitted" and first.camera_ids == tuple(cams) and first.requester_name == "Ivy Tester"
    hold = holds.get_hold(runtime, Principal.system(), first.hold_id)
    assert hold.provisional and hold.status == "active" and hold.storage_request == "2026-0001"
    assert hold.camera_ids == tuple(cams) and (hold.start_ms, hold.end_ms) == (T0_MS, T0_MS + DAY)
    # Nothing it names expires while it is pending.
    report = RetentionSweeper(runtime, clock=clock(T0 + timedelta(days=60))).run_once()
    assert report.deleted == 0 and report.protected == 2
    assert [e.clauses for e in runtime.audit.search(action_prefix="storage_request.submit")] == ["S2", "S2"]


def test_S2_the_form_must_be_complete_and_signed(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    cams = add_cameras(rt, 1)
    inv = user_actor(rt, "ian", ["investigator"])
    with pytest.raises(InvalidInput, match="full name"):
        file(rt, inv, cams, attestation_name="Somebody Else")
    with pytest.raises(InvalidInput, match="case number"):
        file(rt, inv, cams, case_number=" ")
    with pytest.raises(InvalidInput, match="camera"):
        file(rt, inv, [999])
    admin = user_actor(rt, "adam", ["admin"])
    with pytest.raises(PolicyDenied) as denied:
        file(rt, admin, cams)
    assert denied.value.clause == "S2"
    assert requests.list_requests(rt, Principal.system()) == []


def test_S2_only_the_records_commander_decides_and_never_their_own(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    cams = add_cameras(rt, 1)
    inv = user_actor(rt, "ida", ["investigator"])
    sup = user_actor(rt, "sam", ["supervisor"])
    boss = user_actor(rt, "rex", ["records_commander"])
    req = file(rt, inv, cams)
    for who in (inv, sup):
        with pytest.raises(PolicyDenied) as denied:
            requests.decide_request(rt, principal_of_actor(rt, who), req.number, approve=True)
        assert denied.value.clause == "S2"
    own = file(rt, boss, cams, case_number="2026-9")
    with pytest.raises(PolicyDenied, match="own"):
        requests.decide_request(rt, principal_of_actor(rt, boss), own.number, approve=True)
    assert requests.get_request(rt, Principal.system(), own.number).status == "submitted"
    denials = rt.audit.search(action_prefix="storage_request.approve", outcome="denied")
    assert len(denials) == 3 and all(e.clauses == "S2" for e in denials)
    # The requester sees their own request; another investigator does not.
    other = user_actor(rt, "ole", ["investigator"])
    assert [v.number for v in requests.list_requests(rt, principal_of_actor(rt, other))] == []
    assert {v.number for v in requests.list_requests(rt, principal_of_actor(rt, inv))} == {req.number}
    assert {v.number for v in requests.list_requests(rt, principal_of_actor(rt, boss))} == {req.number, own.number}
    with pytest.raises(PolicyDenied):
        requests.get_request(rt, principal_of_actor(rt, other), req.number)


def test_S2_denial_needs_a_reason_and_releases_the_provisional_hold(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    cams = add_cameras(rt, 1)
    add_segments(rt, cams[0], [T0_MS])
    inv = user_actor(rt, "dan", ["investigator"])
    boss = user_actor(rt, "rose", ["records_commander"])
    req = file(rt, inv, cams)
    with pytest.raises(InvalidInput, match="reason"):
        requests.decide_request(rt, principal_of_actor(rt, boss), req.number, approve=False, reason="  ")
    denied = requests.decide_request(
        rt, principal_of_actor(rt, boss), req.number, approve=False, reason="no case number on file"
    )
    assert denied.status == "denied" and denied.decision_reason == "no case number on file"
    assert denied.hold_status == "released" and denied.evidence_item_id is None
    with pytest.raises(PolicyDenied, match="already denied"):
        requests.decide_request(rt, principal_of_actor(rt, boss), req.number, approve=True)
    # Nothing is preserved without an approved request: the footage now expires.
    assert RetentionSweeper(rt, clock=clock(T0 + timedelta(days=40))).run_once().deleted == 1


def test_S2_S3_approval_moves_the_footage_into_evidence_and_fulfils_the_request(runtime: Runtime) -> None:
    cams = add_cameras(runtime, 1)
    add_segments(runtime, cams[0], [T0_MS, T0_MS + DAY // 2, T0_MS + 2 * DAY])
    inv = user_actor(runtime, "eve", ["investigator"])
    boss = user_actor(runtime, "ray", ["records_commander"])
    req = file(runtime, inv, cams)
    done = requests.decide_request(
        runtime, principal_of_actor(runtime, boss), req.number, approve=True, now=T0 + timedelta(days=3)
    )
    assert done.status == "fulfilled" and done.decided_by == "ray" and done.evidence_item_id is not None
    assert done.hold_status == "released"
    with runtime.db.session() as s:
        assert s.scalar(select(Hold.status).where(Hold.id == done.hold_id)) == "released"
    from pscs.evidence.service import get_item

    item = get_item(runtime, Principal.system(), done.evidence_item_id)
    assert item.number == "EV-2026-0001" and item.files == 2 and [c.action for c in item.custody] == ["intake"]
    actions = [e.action for e in runtime.audit.search(action_prefix="storage_request.")]
    assert actions[:3] == ["storage_request.fulfil", "storage_request.approve", "storage_request.submit"]


def test_S2_log_exports_as_csv_and_pdf_and_the_form_prints(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    cams = add_cameras(rt, 1)
    inv = user_actor(rt, "lea", ["investigator"])
    boss = user_actor(rt, "rod", ["records_commander"])
    a = file(rt, inv, cams)
    file(rt, inv, cams, case_number="2026-5")
    requests.decide_request(rt, principal_of_actor(rt, boss), a.number, approve=False, reason="duplicate")
    views = requests.list_requests(rt, principal_of_actor(rt, boss))
    csv_text = log_csv(views)
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("number,status,submitted_at") and len(lines) == 3
    assert lines[1].startswith("2026-0001,denied,") and "duplicate" in lines[1]
    for pdf in (
        log_pdf(views, rt.profile.department),
        blank_form_pdf(rt.profile.department),
        filled_form_pdf(views[0], rt.profile.department, {cams[0]: "Camera 1"}),
    ):
        assert pdf.startswith(b"%PDF-") and len(pdf) > 1000
