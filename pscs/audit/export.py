"""Audit export for investigators (M1): CSV or JSON Lines, every field including the
hashes, so the case file can be checked against the chain later.  CSV cells that a
spreadsheet would run as a formula are written safe (:mod:`pscs.csvsafe`);
:func:`pscs.csvsafe.original` gives back the text the hash was taken over."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from pscs import csvsafe
from pscs.audit.chain import FIELDS
from pscs.audit.models import AuditEventRow
from pscs.clock import iso_us

COLUMNS = (*FIELDS[:2], "time_utc", *FIELDS[2:], "prev_hash", "hash")
FORMATS = ("csv", "jsonl")


def event_dict(row: AuditEventRow) -> dict[str, Any]:
    data = {name: getattr(row, name) for name in (*FIELDS, "prev_hash", "hash")}
    data["time_utc"] = iso_us(row.ts_us)
    return data


def export_lines(rows: Iterable[AuditEventRow], fmt: str) -> Iterator[str]:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps({k: event_dict(row)[k] for k in COLUMNS}, ensure_ascii=False) + "\n"
        return
    buffer = io.StringIO()
    writer = csvsafe.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(event_dict(row))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
