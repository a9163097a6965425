"""H.264 bitstream helpers: NAL unit splitting and the pscs capture-time SEI.

The simulator stamps every access unit with an SEI ``user_data_unregistered`` message
(H.264 D.1.7) carrying the sender's wall-clock capture time, so that latency tests can
read, from the decoded stream, when a picture was made.  Its layout is fixed-size so a
precomputed packet can be re-stamped in place:

    NAL header 0x06 | payloadType 5 | payloadSize 32 | UUID (16 bytes) |
    capture time: 16 ASCII decimal digits, microseconds since the Unix epoch (UTC) |
    rbsp trailing bits 0x80

ASCII digits never contain 0x00, so the NAL needs no emulation-prevention bytes and its
length never changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from pscs.media.h264 import (  # noqa: F401 - the bitstream helpers, shared with the egress paths
    NAL_AUD,
    NAL_IDR,
    NAL_PPS,
    NAL_SEI,
    NAL_SPS,
    nal_type,
    remove_emulation_prevention,
    split_annexb,
    split_avcc,
    to_annexb,
)

NAL_SLICE = 1
VCL_NAL_TYPES = frozenset(range(1, 6))

SEI_USER_DATA_UNREGISTERED = 5

#: Identifies the pscs capture-time SEI among other user_data_unregistered messages
#: (x264 writes its own, with its version string).  Contains no zero byte.
PSCS_SEI_UUID = uuid.UUID("5053c5e1-71de-4b3a-9c2f-7e1a6d4b8f93")
PSCS_SEI_TIME_DIGITS = 16
_SEI_PAYLOAD_SIZE = 16 + PSCS_SEI_TIME_DIGITS
#: Offset of the time digits inside the SEI NAL unit (header, type, size, UUID).
PSCS_SEI_TIME_OFFSET = 3 + 16
PSCS_SEI_NAL_SIZE = PSCS_SEI_TIME_OFFSET + PSCS_SEI_TIME_DIGITS + 1

assert 0 not in PSCS_SEI_UUID.bytes  # keeps the SEI free of emulation prevention


def format_sei_time(capture_time_us: int) -> bytes:
    """The 16 ASCII digits that carry a capture time in the pscs SEI."""
    return b"%016d" % capture_time_us


def build_pscs_sei(capture_time_us: int) -> bytes:
    """The pscs capture-time SEI NAL unit (without start code or length prefix)."""
    return (
        bytes([NAL_SEI, SEI_USER_DATA_UNREGISTERED, _SEI_PAYLOAD_SIZE])
        + PSCS_SEI_UUID.bytes
        + format_sei_time(capture_time_us)
        + b"\x80"
    )


def split_nal_units(data: bytes) -> list[bytes]:
    """NAL units of packet data in Annex-B or AVCC (length-prefixed) form, as demuxers return it."""
    data = bytes(data)
    if data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
        return split_annexb(data)
    for length_size in (4, 2, 1):
        nals = split_avcc(data, length_size)
        if nals is not None:
            return nals
    return []


def iter_sei_messages(sei_nal: bytes) -> Iterator[tuple[int, bytes]]:
    """(payloadType, payload) of each SEI message in an SEI NAL unit."""
    rbsp = remove_emulation_prevention(sei_nal[1:]).rstrip(b"\x00")
    pos = 0
    # The last byte is rbsp_trailing_bits (0x80), not the start of another message.
    while pos < len(rbsp) - 1:
        payload_type = 0
        while pos < len(rbsp) and rbsp[pos] == 0xFF:
            payload_type += 255
            pos += 1
        if pos >= len(rbsp):
            return
        payload_type += rbsp[pos]
        pos += 1
        payload_size = 0
        while pos < len(rbsp) and rbsp[pos] == 0xFF:
            payload_size += 255
            pos += 1
        if pos >= len(rbsp):
            return
        payload_size += rbsp[pos]
        pos += 1
        if pos + payload_size > len(rbsp):
            return
        yield payload_type, rbsp[pos : pos + payload_size]
        pos += payload_size


def parse_pscs_sei(packet_bytes: bytes) -> int | None:
    """The capture time (µs since the Unix epoch) from a packet's pscs SEI, or None.

    Accepts one access unit as a demuxer returns it: Annex-B (PyAV's RTSP/RTP and
    MPEG-TS demuxers) or AVCC length-prefixed (MP4/Matroska).
    """
    uuid_bytes = PSCS_SEI_UUID.bytes
    for nal in split_nal_units(packet_bytes):
        if nal_type(nal) != NAL_SEI:
            continue
        for payload_type, payload in iter_sei_messages(nal):
            if payload_type != SEI_USER_DATA_UNREGISTERED or not payload.startswith(uuid_bytes):
                continue
            digits = payload[16:]
            if len(digits) == PSCS_SEI_TIME_DIGITS and digits.isdigit():
                return int(digits)
    return None


def profile_level_id(sps: bytes) -> str:
    """SDP ``profile-level-id`` (RFC 6184 8.1): profile_idc, constraint flags, level_idc in hex."""
    return sps[1:4].hex()


def is_keyframe(nals: list[bytes]) -> bool:
    return any(nal_type(nal) == NAL_IDR for nal in nals)
