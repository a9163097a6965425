"""A small fragmented-MP4 (ISO BMFF) writer for H.264, as Media Source Extensions take it.

FFmpeg's mp4 muxer holds each fragment back until the next packet arrives (one frame of
latency) and cannot be told to flush from PyAV; this writer emits a fragment the moment
its samples are known.  One video track, timescale 90 kHz:

* ``init_segment`` — ``ftyp`` + ``moov`` (``avc1``/``avcC`` from SPS and PPS, ``mvex``);
* ``fragment`` — ``moof`` (``tfdt`` with the absolute decode time, one ``trun``) +
  ``mdat`` with the samples in AVCC form (4-byte lengths).

A new init segment may be sent at any time (a changed SPS); MSE accepts it mid-stream.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pscs.media.h264 import NAL_AUD, NAL_PPS, NAL_SPS, SpsInfo, nal_type, parse_sps, to_avcc

TIMESCALE = 90_000
_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


@dataclass(frozen=True)
class Sample:
    nals: list[bytes]  # without start codes; SPS/PPS/AUD are dropped when written
    dts: int  # TIMESCALE units
    duration: int
    keyframe: bool
    cts_offset: int = 0  # pts - dts


def _avcc_record(sps: bytes, pps: bytes, info: SpsInfo) -> bytes:
    record = bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + struct.pack(">H", len(sps)) + sps
    record += bytes([1]) + struct.pack(">H", len(pps)) + pps
    if info.profile_idc in (100, 110, 122, 144):
        record += bytes(
            [0xFC | info.chroma_format_idc, 0xF8 | (info.bit_depth_luma - 8), 0xF8 | (info.bit_depth_chroma - 8), 0]
        )
    return box(b"avcC", record)


def init_segment(sps: bytes, pps: bytes) -> tuple[bytes, SpsInfo]:
    info = parse_sps(sps)
    w, h = info.width, info.height
    ftyp = box(b"ftyp", b"isom", struct.pack(">I", 512), b"isom", b"iso6", b"avc1", b"mp41")
    mvhd = full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, 1000, 0),
        struct.pack(">IH", 0x00010000, 0x0100),
        bytes(10),
        _MATRIX,
        bytes(24),
        struct.pack(">I", 2),
    )
    tkhd = full_box(
        b"tkhd",
        0,
        3,
        struct.pack(">IIII", 0, 0, 1, 0),
        struct.pack(">I", 0),
        bytes(8),
        struct.pack(">hhhH", 0, 0, 0, 0),
        _MATRIX,
        struct.pack(">II", w << 16, h << 16),
    )
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, TIMESCALE, 0), struct.pack(">HH", 0x55C4, 0))
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I", 0), b"vide", bytes(12), b"pscs video\x00")
    vmhd = full_box(b"vmhd", 0, 1, bytes(8))
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    avc1 = box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),
        bytes(16),
        struct.pack(">HH", w, h),
        struct.pack(">II", 0x00480000, 0x00480000),
        struct.pack(">IH", 0, 1),
        bytes(32),
        struct.pack(">Hh", 0x0018, -1),
        _avcc_record(sps, pps, info),
    )
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
        full_box(b"stts", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsc", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsz", 0, 0, struct.pack(">II", 0, 0)),
        full_box(b"stco", 0, 0, struct.pack(">I", 0)),
    )
    mdia = box(b"mdia", mdhd, hdlr, box(b"minf", vmhd, dinf, stbl))
    mvex = box(b"mvex", full_box(b"trex", 0, 0, struct.pack(">IIIII", 1, 1, 0, 0, 0)))
    moov = box(b"moov", mvhd, box(b"trak", tkhd, mdia), mvex)
    return ftyp + moov, info


_KEY_FLAGS = 0x02000000  # sample_depends_on = 2 (an I picture)
_DELTA_FLAGS = 0x01010000  # depends on others, non-sync


def fragment(sequence: int, samples: list[Sample]) -> bytes:
    if not samples:
        raise ValueError("a fragment needs at least one sample")
    payloads = [to_avcc([n for n in s.nals if nal_type(n) not in (NAL_SPS, NAL_PPS, NAL_AUD)]) for s in samples]
    entries = b"".join(
        struct.pack(">IIIi", s.duration, len(p), _KEY_FLAGS if s.keyframe else _DELTA_FLAGS, s.cts_offset)
        for s, p in zip(samples, payloads, strict=True)
    )
    trun_flags = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800

    def build(data_offset: int) -> bytes:
        trun = full_box(b"trun", 1, trun_flags, struct.pack(">Ii", len(samples), data_offset), entries)
        traf = box(
            b"traf",
            full_box(b"tfhd", 0, 0x020000, struct.pack(">I", 1)),
            full_box(b"tfdt", 1, 0, struct.pack(">Q", max(0, samples[0].dts))),
            trun,
        )
        return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence & 0xFFFFFFFF)), traf)

    moof_size = len(build(0))
    moof = build(moof_size + 8)
    return moof + box(b"mdat", *payloads)


class Fmp4Stream:
    """Turns access units into an init segment and fragments; notices a changed SPS."""

    def __init__(self) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        self.init: bytes | None = None
        self.info: SpsInfo | None = None
        self.sequence = 0

    def parameter_sets(self, nals: list[bytes]) -> bool:
        """Take SPS/PPS from an access unit; True when the init segment changed."""
        sps = next((n for n in nals if nal_type(n) == NAL_SPS), None)
        pps = next((n for n in nals if nal_type(n) == NAL_PPS), None)
        return self.set_parameter_sets(sps or self.sps, pps or self.pps)

    def set_parameter_sets(self, sps: bytes | None, pps: bytes | None) -> bool:
        if sps is None or pps is None or (sps == self.sps and pps == self.pps):
            return False
        self.sps, self.pps = bytes(sps), bytes(pps)
        self.init, self.info = init_segment(self.sps, self.pps)
        return True

    def fragment(self, samples: list[Sample]) -> bytes:
        self.sequence += 1
        return fragment(self.sequence, samples)
