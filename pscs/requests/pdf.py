"""The records office's printable documents (reportlab): the storage request form, blank or
filled (S2); the Records Commander's log (S2); the periodic disposal report (S1, in the
spirit of Connecticut form RC-075)."""

from __future__ import annotations

import io
from collections.abc import Iterable
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import LETTER, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import inch
from reportlab.platypus import Flowable, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from pscs.clock import format_utc, iso_ms, utcnow
from pscs.requests.log import log_rows
from pscs.requests.models import RequestStatus
from pscs.requests.service import ATTESTATION, RequestView
from pscs.retention.models import HOLD_REASONS

_styles = getSampleStyleSheet()
TITLE = _styles["Title"]
H2 = _styles["Heading2"]
BODY = _styles["BodyText"]
SMALL = ParagraphStyle("small", parent=BODY, fontSize=8, leading=10)
CELL = ParagraphStyle("cell", parent=BODY, fontSize=7.5, leading=9)
GRID = TableStyle(
    [
        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (0, -1), colors.whitesmoke),
    ]
)
HEADER_GRID = TableStyle(
    [
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
        ("REPEATROWS", (0, 0), (-1, 0)),
    ]
)


def _p(text: str, style: ParagraphStyle = BODY) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _build(flowables: list[Flowable], title: str, *, wide: bool = False) -> bytes:
    buf = io.BytesIO()
    size = landscape(LETTER) if wide else LETTER

    def footer(canvas, doc) -> None:  # noqa: ANN001
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(0.6 * inch, 0.4 * inch, f"{title} - page {doc.page}")
        canvas.drawRightString(
            size[0] - 0.6 * inch, 0.4 * inch, f"printed {format_utc(utcnow(), seconds=False)} by pscs"
        )
        canvas.restoreState()

    doc = SimpleDocTemplate(
        buf,
        pagesize=size,
        title=title,
        author="pscs",
        leftMargin=0.6 * inch,
        rightMargin=0.6 * inch,
        topMargin=0.6 * inch,
        bottomMargin=0.7 * inch,
    )
    doc.build(flowables, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()


# The storage request form ------------------------------------------------------------------------
FORM_TITLE = "Public Safety Camera System - Request to Store Images"


def _form(department: str, view: RequestView | None, camera_names: dict[int, str]) -> list[Flowable]:
    blank = "\u00a0" * 60

    def val(text: str | None) -> Paragraph:
        return _p(text if text else "", BODY) if view else Paragraph(blank, BODY)

    reasons = "\n".join(
        f"[{'X' if view and view.reason == key else ' '}] {label}" for key, label in HOLD_REASONS.items()
    )
    cameras = ", ".join(f"{camera_names.get(c, 'camera')} (#{c})" for c in view.camera_ids) if view else None
    rows = [
        ["Request number (Records log)", val(view.number if view else None)],
        ["Requester (name, user id)", val(f"{view.requester_name} ({view.requester})" if view else None)],
        ["Unit / division", val(view.unit if view else None)],
        ["Case / incident number", val(view.case_number if view else None)],
        ["Camera(s)", val(cameras)],
        ["Footage from (UTC)", val(iso_ms(view.start_ms) if view else None)],
        ["Footage to (UTC)", val(iso_ms(view.end_ms) if view else None)],
        ["Reason", _p(reasons)],
        ["Why the images are needed", val(view.narrative if view else None)],
    ]
    table = Table(
        [[_p(k), v] for k, v in rows],
        colWidths=[2.1 * inch, 5.1 * inch],
        rowHeights=[None] * 8 + [None if view else 1.2 * inch],
    )
    table.setStyle(GRID)
    attest = [
        _p("Attestation", H2),
        _p(ATTESTATION),
        Spacer(1, 6),
        Table(
            [
                [
                    _p("Signature (typed name)"),
                    val(view.attestation_name if view else None),
                    _p("Date"),
                    val(f"{view.submitted_at:%Y-%m-%d %H:%M} UTC" if view else None),
                ]
            ],
            colWidths=[1.5 * inch, 2.9 * inch, 0.6 * inch, 2.2 * inch],
            style=GRID,
        ),
    ]
    decision = [
        _p("Records Service Division Commander - decision (S2)", H2),
        Table(
            [
                [_p("Decision"), val(view.status if view and view.status != RequestStatus.SUBMITTED else None)],
                [_p("Reason / conditions"), val(view.decision_reason if view else None)],
                [
                    _p("Decided by"),
                    val(f"{view.decided_by_name} ({view.decided_by})" if view and view.decided_by else None),
                ],
                [_p("Date"), val(f"{view.decided_at:%Y-%m-%d %H:%M} UTC" if view and view.decided_at else None)],
                [
                    _p("Evidence item (S3)"),
                    val(f"EV-{view.number} (item {view.evidence_item_id})" if view and view.evidence_item_id else None),
                ],
            ],
            colWidths=[2.1 * inch, 5.1 * inch],
            style=GRID,
        ),
        Spacer(1, 6),
        _p(
            "Approved images are stored permanently and treated as evidence (policy, Storage & Archive 3). "
            "No images are stored without this form (Storage & Archive 2).",
            SMALL,
        ),
    ]
    return [
        _p(department, H2),
        _p(FORM_TITLE, TITLE),
        _p(
            "Submitting this form places a provisional hold on the footage it names until the Records Service "
            "Division Commander decides on it.",
            SMALL,
        ),
        Spacer(1, 8),
        table,
        Spacer(1, 8),
        KeepTogether(attest),
        Spacer(1, 8),
        KeepTogether(decision),
    ]


def blank_form_pdf(department: str) -> bytes:
    return _build(_form(department, None, {}), FORM_TITLE)


def filled_form_pdf(view: RequestView, department: str, camera_names: dict[int, str]) -> bytes:
    return _build(_form(department, view, camera_names), f"{FORM_TITLE} {view.number}")


# The log ----------------------------------------------------------------------------------------
def log_pdf(views: Iterable[RequestView], department: str) -> bytes:
    header = [
        "No.",
        "Status",
        "Submitted",
        "Requester",
        "Unit",
        "Case",
        "Reason",
        "Cameras",
        "Footage (UTC)",
        "Decided by",
        "Decided",
        "Decision reason",
    ]
    data = [[_p(h, CELL) for h in header]]
    for r in log_rows(list(views)):
        number, status, submitted, requester, _name, unit, case, reason, cams, lo, hi, by, at, why, _f, _e = r
        data.append(
            [
                _p(x, CELL)
                for x in (
                    number,
                    status,
                    submitted[:16],
                    requester,
                    unit,
                    case,
                    reason,
                    cams,
                    f"{lo[:16]} - {hi[:16]}",
                    by,
                    at[:16],
                    why,
                )
            ]
        )
    table = Table(
        data,
        repeatRows=1,
        colWidths=[
            0.65 * inch,
            0.65 * inch,
            0.85 * inch,
            0.7 * inch,
            0.9 * inch,
            0.8 * inch,
            0.9 * inch,
            0.55 * inch,
            1.3 * inch,
            0.7 * inch,
            0.85 * inch,
            1.05 * inch,
        ],
    )
    table.setStyle(HEADER_GRID)
    title = "Storage request log - Records Service Division Commander"
    return _build([_p(department, H2), _p(title, TITLE), table], title, wide=True)


# The disposal report ----------------------------------------------------------------------------
def disposal_report_pdf(report) -> bytes:  # noqa: ANN001 - pscs.retention.disposal.DisposalReport

    title = "Records disposal report - Public Safety Camera System recordings"
    intro = (
        f"Recordings of the Public Safety Camera System destroyed between {report.since:%Y-%m-%d} and "
        f"{report.until:%Y-%m-%d} (UTC) under the retention rule of the department's policy (S1): recordings are "
        f"destroyed after {report.retention_days} days in accordance with the State of Connecticut retention "
        "schedule, unless used in a criminal investigation or prosecution, or subject to litigation, a "
        "preservation order or a pending public records request. Each deletion was verified and recorded when it "
        "happened. Prepared for the records office (cf. form RC-075, Records Disposition Authorization)."
    )
    header = ["Camera", "Location", "Rule", "Footage from", "Footage to", "Segments", "Size (MB)", "Destroyed"]
    data = [[_p(h, CELL) for h in header]]
    for line in report.lines:
        data.append(
            [
                _p(x, CELL)
                for x in (
                    f"{line.camera_name} (#{line.camera_id})",
                    line.location,
                    line.rule,
                    format_utc(line.from_ms),
                    format_utc(line.to_ms),
                    f"{line.segments:,}",
                    f"{line.bytes / 1e6:,.1f}",
                    f"{line.first_disposed:%Y-%m-%d} - {line.last_disposed:%Y-%m-%d}",
                )
            ]
        )
    data.append(
        [_p(x, CELL) for x in ("Total", "", "", "", "", f"{report.segments:,}", f"{report.bytes / 1e6:,.1f}", "")]
    )
    table = Table(
        data,
        repeatRows=1,
        colWidths=[1.4 * inch, 1.7 * inch, 1.0 * inch, 1.3 * inch, 1.3 * inch, 0.8 * inch, 0.8 * inch, 1.4 * inch],
    )
    table.setStyle(HEADER_GRID)
    signatures = Table(
        [
            [_p("Prepared by (records custodian)"), "", _p("Date"), ""],
            [_p("Records Service Division Commander"), "", _p("Date"), ""],
        ],
        colWidths=[2.4 * inch, 3.6 * inch, 0.6 * inch, 2.0 * inch],
        rowHeights=[0.4 * inch] * 2,
        style=GRID,
    )
    return _build(
        [
            _p(report.department, H2),
            _p(title, TITLE),
            _p(intro, SMALL),
            Spacer(1, 8),
            table,
            Spacer(1, 14),
            KeepTogether(signatures),
        ],
        title,
        wide=True,
    )
