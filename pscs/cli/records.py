"""``pscs retention|hold|request|evidence|compliance``: the records office's commands (S1-S3).

Mounted in :mod:`pscs.cli.main`.  Decisions that need a person (approving a storage
request, authorising evidence disposal) are taken in the console by a signed-in user, not
here: the command line acts as the system (``cli:<os user>``).
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from pscs.cli.common import ID, YEAR, cli_actor, cli_principal, console, err, fail, instant, open_runtime, run_domain
from pscs.clock import format_utc
from pscs.errors import PscsError

retention_app = typer.Typer(help="Retention of recordings (S1): the sweeper and disposal records", no_args_is_help=True)
hold_app = typer.Typer(help="Holds on footage (S1; FOI, litigation)", no_args_is_help=True)
request_app = typer.Typer(help="Storage requests and the Records Commander's log (S2)", no_args_is_help=True)
evidence_app = typer.Typer(help="The evidence store (S3)", no_args_is_help=True)
compliance_app = typer.Typer(help="Checks that the installation honours S1-S3 (and M1)", no_args_is_help=True)


def _write(output: Path | None, data: bytes | str) -> None:
    raw = data.encode() if isinstance(data, str) else data
    if output is None:
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
    else:
        output.write_bytes(raw)
        err.print(f"wrote {output}")


# Retention ----------------------------------------------------------------------------------------
@retention_app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be destroyed; change nothing")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar")] = False,
) -> None:
    """Destroy every recording older than the retention limit that nothing protects (S1)."""
    from pscs.retention.sweeper import RetentionSweeper

    rt = open_runtime()
    sweeper = RetentionSweeper(rt, actor=cli_actor())
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
        transient=False,
    ) as bar:
        task = bar.add_task("checking" if dry_run else "sweeping", total=None)
        report = sweeper.run_once(
            dry_run=dry_run, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    table = Table("camera", "to destroy" if dry_run else "destroyed", "MB", "footage from", "to", "kept (held)")
    for camera_id, t in sorted(report.cameras.items()):
        table.add_row(
            str(camera_id),
            f"{t.deleted:,}",
            f"{t.bytes / 1e6:,.1f}",
            format_utc(t.from_ms, seconds=False) if t.from_ms is not None else "",
            format_utc(t.to_ms, seconds=False) if t.to_ms is not None else "",
            f"{t.protected:,}",
        )
    if report.cameras:
        console.print(table)
    verb = "would destroy" if dry_run else "destroyed"
    console.print(
        f"{verb} {report.deleted:,} recordings ({report.bytes / 1e6:,.1f} MB) that ended before "
        f"{report.cutoff:%Y-%m-%d %H:%M} UTC; {report.protected:,} kept by holds or pending requests"
    )
    quarantine = report.quarantine
    if quarantine.deleted or quarantine.protected:
        console.print(
            f"{verb} {len(quarantine.deleted):,} quarantined files ({quarantine.bytes_freed / 1e6:,.1f} MB); "
            f"{len(quarantine.protected):,} kept by holds or pending requests"
        )
    if report.holds_lapsed:
        console.print(f"holds lapsed (not re-affirmed): {', '.join(map(str, report.holds_lapsed))}")
    if report.resumed:
        console.print(f"finished {report.resumed:,} deletions an interrupted run had left")


@retention_app.command("report")
def retention_report(
    since: Annotated[datetime | None, typer.Option(help="UTC; default: 30 days ago", callback=instant)] = None,
    until: Annotated[datetime | None, typer.Option(help="UTC; default: now", callback=instant)] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or pdf")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """The periodic disposal report for the records office (S1; cf. CT form RC-075)."""
    from pscs.retention.disposal import report_csv
    from pscs.retention.report import read_disposal_report

    if fmt not in ("table", "csv", "pdf"):
        raise fail("--format must be table, csv or pdf", 2)
    if fmt == "pdf" and output is None:
        raise fail("a PDF needs --output FILE", 2)
    rt = open_runtime()
    report = run_domain(lambda: read_disposal_report(rt, cli_principal(), since=since, until=until, fmt=fmt))
    if fmt == "csv":
        _write(output, "".join(report_csv(report)))
        return
    if fmt == "pdf":
        from pscs.requests.pdf import disposal_report_pdf

        _write(output, disposal_report_pdf(report))
        return
    table = Table("camera", "location", "rule", "footage from", "to", "segments", "MB")
    for line in report.lines:
        table.add_row(
            f"{line.camera_name} (#{line.camera_id})",
            line.location,
            line.rule,
            format_utc(line.from_ms),
            format_utc(line.to_ms),
            f"{line.segments:,}",
            f"{line.bytes / 1e6:,.1f}",
        )
    console.print(f"Recordings destroyed {report.since:%Y-%m-%d} - {report.until:%Y-%m-%d} (UTC)")
    console.print(table)
    console.print(f"total: {report.segments:,} recordings, {report.bytes / 1e6:,.1f} MB")


# Holds --------------------------------------------------------------------------------------------
@hold_app.command("list")
def hold_list(
    status: Annotated[str | None, typer.Option(help="active, released or lapsed")] = "active",
    camera: Annotated[int | None, typer.Option(help="Only holds on this camera", **ID)] = None,
) -> None:
    """List holds and when each must next be re-affirmed."""
    from pscs.retention.holds import list_holds

    rt = open_runtime()
    table = Table("id", "reason", "reference", "cameras", "footage from", "to", "owner", "status", "review due")
    for h in list_holds(rt, cli_principal(), status=status or None, camera_id=camera):
        table.add_row(
            str(h.id),
            h.reason_label,
            h.reference,
            " ".join(map(str, h.camera_ids)),
            format_utc(h.start_ms, seconds=False),
            format_utc(h.end_ms, seconds=False),
            h.owner,
            h.status + (" (provisional)" if h.provisional else ""),
            f"{h.review_due_at:%Y-%m-%d}" if h.review_due_at else f"with request {h.storage_request}",
        )
    console.print(table)


@hold_app.command("review")
def hold_review() -> None:
    """Lapse overdue holds and send review reminders now (the sweeper also does this)."""
    from pscs.retention.holds import review_holds

    rt = open_runtime()
    result = review_holds(rt, actor=cli_actor())
    console.print(f"lapsed: {result.lapsed or 'none'}; reminded: {result.reminded or 'none'}")


# Storage requests ---------------------------------------------------------------------------------
@request_app.command("list")
def request_list(
    status: Annotated[str | None, typer.Option()] = None, year: Annotated[int | None, typer.Option(**YEAR)] = None
) -> None:
    """The Records Commander's log."""
    from pscs.requests.service import list_requests

    rt = open_runtime()
    table = Table("number", "status", "submitted", "requester", "unit", "case", "cameras", "footage", "decided by")
    for v in list_requests(rt, cli_principal(), status=status, year=year):
        table.add_row(
            v.number,
            v.status,
            f"{v.submitted_at:%Y-%m-%d}",
            v.requester,
            v.unit,
            v.case_number,
            " ".join(map(str, v.camera_ids)),
            f"{format_utc(v.start_ms, seconds=False)} - {format_utc(v.end_ms, seconds=False)}",
            v.decided_by or "",
        )
    console.print(table)


@request_app.command("log")
def request_log(
    fmt: Annotated[str, typer.Option("--format", help="csv or pdf")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    year: Annotated[int | None, typer.Option(**YEAR)] = None,
) -> None:
    """Export the log (CSV, or PDF with --output)."""
    from pscs.requests.log import export_request_log, log_csv

    if fmt not in ("csv", "pdf"):
        raise fail("--format must be csv or pdf", 2)
    if fmt == "pdf" and output is None:
        raise fail("a PDF needs --output FILE", 2)
    rt = open_runtime()
    views = run_domain(lambda: export_request_log(rt, cli_principal(), year=year, fmt=fmt))
    if fmt == "csv":
        _write(output, log_csv(views))
        return
    from pscs.requests.pdf import log_pdf

    _write(output, log_pdf(views, rt.profile.department))


@request_app.command("form")
def request_form(
    output: Annotated[Path, typer.Option("--output", "-o", help="PDF file to write")],
    number: Annotated[str | None, typer.Argument(help="A filed request (default: the blank form)")] = None,
) -> None:
    """Print the department's storage request form, blank or filled (S2)."""
    from pscs.requests.pdf import blank_form_pdf, filled_form_pdf

    rt = open_runtime()
    if number is None:
        _write(output, blank_form_pdf(rt.profile.department))
        return
    from pscs.cameras.models import Camera
    from pscs.requests.service import get_request

    try:
        view = get_request(rt, cli_principal(), number)
    except PscsError as exc:
        raise fail(exc.message, 2) from exc
    with rt.db.session() as s:
        names = {c.id: c.name for c in s.query(Camera).filter(Camera.id.in_(view.camera_ids))}
    rt.audit.record(
        "storage_request.print", cli_actor(), object_type="storage_request", object_id=number, clauses=("S2",)
    )
    _write(output, filled_form_pdf(view, rt.profile.department, names))


@request_app.command("fulfil")
def request_fulfil(number: str) -> None:
    """Retry the evidence intake of an approved request (after a failure)."""
    from pscs.requests.service import fulfil_request

    rt = open_runtime()
    try:
        view = fulfil_request(rt, cli_principal(), number)
    except PscsError as exc:
        raise fail(exc.message, 2) from exc
    console.print(f"{view.number} is {view.status}; evidence item {view.evidence_item_id}")


# Evidence ----------------------------------------------------------------------------------------
@evidence_app.command("list")
def evidence_list() -> None:
    """List evidence items."""
    from pscs.evidence.service import list_items

    rt = open_runtime()
    table = Table("id", "number", "request", "case", "cameras", "footage", "files", "MB", "status")
    for i in list_items(rt, cli_principal()):
        table.add_row(
            str(i.id),
            i.number,
            i.request_number or "",
            i.case_number,
            " ".join(map(str, i.camera_ids)),
            f"{format_utc(i.start_ms, seconds=False)} - {format_utc(i.end_ms, seconds=False)}",
            str(i.files),
            f"{i.bytes / 1e6:,.1f}",
            i.status,
        )
    console.print(table)


@evidence_app.command("verify")
def evidence_verify(item: Annotated[int | None, typer.Argument(help="An item id (default: all)")] = None) -> None:
    """Recompute every evidence file's SHA-256 and check the signed manifests; exit 1 on a mismatch."""
    from pscs.evidence.service import verify_all, verify_item

    rt = open_runtime()
    try:
        reports = [verify_item(rt, cli_actor(), item)] if item is not None else verify_all(rt, cli_actor())
    except PscsError as exc:
        raise fail(exc.message, 2) from exc
    bad = [p for r in reports for p in r.problems]
    for r in reports:
        console.print(f"{r.number}: {'ok' if r.ok else 'FAILED'} ({r.files_checked} files)")
    for problem in bad:
        err.print(f"[bold red]S3:[/] {problem}")
    if bad:
        raise typer.Exit(1)


@evidence_app.command("transfer")
def evidence_transfer(
    item: Annotated[int, typer.Argument(**ID)],
    to: Annotated[str, typer.Option(help="Who received it")],
    method: Annotated[str, typer.Option(help="How it was handed over")],
    note: Annotated[str, typer.Option()] = "",
) -> None:
    """Record a hand-over of an evidence item in its chain of custody."""
    from pscs.evidence.service import transfer

    rt = open_runtime()
    try:
        transfer(rt, cli_actor(), item, to=to, method=method, note=note)
    except PscsError as exc:
        raise fail(exc.message, 2) from exc
    console.print(f"transfer of item {item} to {to} recorded")


# Compliance ---------------------------------------------------------------------------------------
@compliance_app.command("check")
def compliance_check() -> None:
    """Exit 1, naming the footage, when anything violates S1-S3 or the audit trail is broken."""
    from pscs.compliance.check import run_compliance_check

    rt = open_runtime()
    report = run_compliance_check(rt, cli_actor())
    for f in report.warnings:
        err.print(f"[yellow]warning {f.clause}:[/] {f.what}")
    for f in report.violations:
        err.print(f"[bold red]VIOLATION {f.clause}:[/] {f.what}")
    stats = ", ".join(f"{k.replace('_', ' ')}: {v:,}" for k, v in report.stats.items())
    if report.ok:
        console.print(f"compliant ({stats})")
        return
    console.print(f"{len(report.violations)} violation(s) ({stats})")
    raise typer.Exit(1)
