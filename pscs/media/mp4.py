"""Reading back what the recorder wrote: the complete part of a fragmented MP4 and its
media duration.  Used by reconcile to salvage a ``.partial`` left by a crash."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import av


def complete_fragments_length(path: Path) -> int:
    """Length of the longest prefix made of whole top-level boxes that ends with a whole
    ``moof`` + ``mdat`` pair (0 if there is no complete fragment).

    The recorder writes ``ftyp``, ``moov`` (empty), then one ``moof``/``mdat`` pair per GOP or second;
    a crash cuts the file anywhere.  Everything up to the last whole pair plays."""
    size = path.stat().st_size
    good = 0
    previous = b""
    with open(path, "rb") as fh:
        pos = 0
        while pos + 8 <= size:
            fh.seek(pos)
            header = fh.read(16)
            box_size, box_type = struct.unpack(">I4s", header[:8])
            if box_size == 1 and len(header) == 16:
                box_size = struct.unpack(">Q", header[8:16])[0]
            if box_size < 8 or pos + box_size > size:
                break  # size 0 ("to the end") or cut short: not complete
            if box_type == b"mdat" and previous == b"moof":
                good = pos + box_size
            previous = box_type
            pos += box_size
    return good


@dataclass(frozen=True)
class MediaSummary:
    codec: str
    frames: int
    duration_ms: int


def summarize(path: Path) -> MediaSummary | None:
    """Frames and duration of the video stream, by demuxing (not decoding); None if the
    file holds no video packets."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            first: int | None = None
            end: int | None = None
            frames = 0
            last_step = 0
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                frames += 1
                step = packet.duration or last_step
                last_step = step
                first = packet.pts if first is None else min(first, packet.pts)
                end = packet.pts + step if end is None else max(end, packet.pts + step)
            if not frames or first is None or end is None or stream.time_base is None:
                return None
            duration_ms = round((end - first) * stream.time_base * 1000)
            return MediaSummary(stream.codec_context.name, frames, max(duration_ms, 1))
    except av.FFmpegError:
        return None
