"""H.264 helpers for the recorder and the egress paths: NAL units in Annex-B and AVCC
form, and the few SPS fields a recording, a fragmented-MP4 init segment and the browser's
codec string need."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (3- or 4-byte start codes), without start codes."""
    nals: list[bytes] = []
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        end = data.find(b"\x00\x00\x01", begin)
        chunk = data[begin:] if end < 0 else data[begin:end]
        # A 4-byte start code's leading zero (and any trailing_zero_8bits) belongs to no NAL.
        chunk = chunk.rstrip(b"\x00")
        if chunk:
            nals.append(chunk)
        start = end
    return nals


def split_avcc(data: bytes, length_size: int = 4) -> list[bytes] | None:
    """NAL units of length-prefixed (AVCC) data; None when the data is not of that form."""
    nals: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + length_size > len(data):
            return None
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size == 0 or pos + size > len(data):
            return None
        nals.append(data[pos : pos + size])
        pos += size
    return nals


def split_nals(data: bytes) -> list[bytes]:
    """NAL units of one access unit, as a demuxer or encoder hands it over (either form)."""
    data = bytes(data)
    if data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
        return split_annexb(data)
    return split_avcc(data) or []


def to_avcc(nals: list[bytes]) -> bytes:
    return b"".join(len(n).to_bytes(4, "big") + n for n in nals)


START_CODE = b"\x00\x00\x00\x01"


def to_annexb(nals: Sequence[bytes]) -> bytes:
    """NAL units as an H.264 byte stream (ITU-T H.264 Annex B): each after a start code."""
    return START_CODE + START_CODE.join(nals) if nals else b""


def parameter_sets_from_extradata(extradata: bytes | None) -> tuple[bytes | None, bytes | None]:
    """(SPS, PPS) from codec extradata: an avcC record (MP4) or Annex-B (RTSP's SDP)."""
    if not extradata:
        return None, None
    data = bytes(extradata)
    sps = pps = None
    if data[0] == 1 and len(data) > 7:  # avcC
        pos = 5
        count = data[pos] & 0x1F
        pos += 1
        for _ in range(count):
            size = int.from_bytes(data[pos : pos + 2], "big")
            sps = sps or data[pos + 2 : pos + 2 + size]
            pos += 2 + size
        count = data[pos]
        pos += 1
        for _ in range(count):
            size = int.from_bytes(data[pos : pos + 2], "big")
            pps = pps or data[pos + 2 : pos + 2 + size]
            pos += 2 + size
        return sps, pps
    for nal in split_annexb(data):
        if nal_type(nal) == NAL_SPS and sps is None:
            sps = nal
        elif nal_type(nal) == NAL_PPS and pps is None:
            pps = nal
    return sps, pps


def remove_emulation_prevention(nal: bytes) -> bytes:
    """NAL payload -> RBSP: drop every 0x03 that follows two zero bytes."""
    if b"\x00\x00\x03" not in nal:
        return nal
    out = bytearray()
    zeros = 0
    for byte in nal:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3] if (self.pos >> 3) < len(self.data) else 0
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


@dataclass(frozen=True)
class SpsInfo:
    profile_idc: int
    constraints: int
    level_idc: int
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    width: int
    height: int

    @property
    def codec(self) -> str:
        """The RFC 6381 codec string, e.g. ``avc1.4d401f``."""
        return f"avc1.{self.profile_idc:02x}{self.constraints:02x}{self.level_idc:02x}"


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def parse_sps(sps: bytes) -> SpsInfo:
    b = _Bits(remove_emulation_prevention(sps)[1:])
    profile, constraints, level = b.u(8), b.u(8), b.u(8)
    b.ue()  # seq_parameter_set_id
    chroma, depth_l, depth_c = 1, 8, 8
    if profile in _HIGH_PROFILES:
        chroma = b.ue()
        if chroma == 3:
            b.u(1)
        depth_l, depth_c = b.ue() + 8, b.ue() + 8
        b.u(1)
        if b.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if b.u(1):
                    size, last, nxt = (16 if i < 6 else 64), 8, 8
                    for _ in range(size):
                        if nxt:
                            nxt = (last + b.se() + 256) % 256
                        last = nxt or last
    b.ue()  # log2_max_frame_num_minus4
    poc_type = b.ue()
    if poc_type == 0:
        b.ue()
    elif poc_type == 1:
        b.u(1)
        b.se()
        b.se()
        for _ in range(b.ue()):
            b.se()
    b.ue()  # max_num_ref_frames
    b.u(1)
    width_mbs, height_units = b.ue() + 1, b.ue() + 1
    frame_mbs_only = b.u(1)
    if not frame_mbs_only:
        b.u(1)
    b.u(1)
    width, height = width_mbs * 16, (2 - frame_mbs_only) * height_units * 16
    if b.u(1):  # frame_cropping_flag
        left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
        unit_x = 1 if chroma in (0, 3) else 2
        unit_y = (1 if chroma in (0, 2, 3) else 2) * (2 - frame_mbs_only)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    return SpsInfo(profile, constraints, level, chroma, depth_l, depth_c, width, height)
