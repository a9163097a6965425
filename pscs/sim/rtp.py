"""RTP packetization of H.264 (RFC 6184) into RTSP interleaved frames, and RTCP sender reports.

An access unit is packetized once into a single buffer of interleaved frames
(RFC 2326 10.12: ``$``, channel, 16-bit length, RTP packet).  Sending it to a client then
only patches each packet's channel byte and, with one ``struct.pack_into``, its sequence
number, timestamp and SSRC, and writes the whole buffer with one call: the per-picture
cost does not depend on what the bitstream contains.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from pscs.sim.h264 import (
    NAL_AUD,
    NAL_PPS,
    NAL_SPS,
    PSCS_SEI_NAL_SIZE,
    PSCS_SEI_TIME_OFFSET,
    VCL_NAL_TYPES,
    build_pscs_sei,
    format_sei_time,
    is_keyframe,
    nal_type,
)

RTP_VERSION_BYTE = 0x80  # V=2, no padding, no extension, no CSRC
RTP_HEADER_SIZE = 12
INTERLEAVED_HEADER_SIZE = 4
H264_PAYLOAD_TYPE = 96
H264_CLOCK_RATE = 90_000
FU_A = 28
#: Largest RTP packet (header included) we send; leaves room for IP/UDP/TCP headers in 1500.
DEFAULT_MTU = 1400

# Per packet: sequence number, timestamp and SSRC, which start 6 bytes after the '$' of
# its interleaved frame ('$', channel, 16-bit length, first two RTP header bytes).
_PATCH = struct.Struct(">HII")
_PATCH_OFFSET = INTERLEAVED_HEADER_SIZE + 2
_NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


@dataclass(slots=True)
class PacketizedAccessUnit:
    """One access unit as ready-to-send interleaved RTP frames.

    ``buffer`` is patched in place before every send; callers write a copy of it.
    """

    buffer: bytearray
    packet_offsets: tuple[int, ...]  # offset of each frame's '$'
    payload_octets: int  # RTP payload bytes, for RTCP's sender octet count
    sei_time_offset: int  # where the SEI's 16 time digits are in ``buffer``
    keyframe: bool

    @property
    def packet_count(self) -> int:
        return len(self.packet_offsets)

    def stamp_capture_time(self, capture_time_us: int) -> None:
        offset = self.sei_time_offset
        self.buffer[offset : offset + 16] = format_sei_time(capture_time_us)

    def render_for(self, channel: int, first_seq: int, timestamp: int, ssrc: int) -> bytes:
        """The frames to send to one client: its channel and sequence numbers, the stream's timestamp."""
        buffer = self.buffer
        pack = _PATCH.pack_into
        seq = first_seq
        for offset in self.packet_offsets:
            buffer[offset + 1] = channel
            pack(buffer, offset + _PATCH_OFFSET, seq & 0xFFFF, timestamp, ssrc)
            seq += 1
        return bytes(buffer)


def _with_parameter_sets(nals: list[bytes], sps: bytes, pps: bytes) -> list[bytes]:
    """Make sure an IDR access unit carries SPS and PPS in-band, before its first slice."""
    types = {nal_type(nal) for nal in nals}
    if NAL_SPS in types and NAL_PPS in types:
        return nals
    head = [nal for nal in nals if nal_type(nal) == NAL_AUD]
    rest = [nal for nal in nals if nal_type(nal) not in (NAL_AUD, NAL_SPS, NAL_PPS)]
    return head + [sps, pps] + rest


def packetize_access_unit(
    nals: list[bytes],
    *,
    sps: bytes,
    pps: bytes,
    mtu: int = DEFAULT_MTU,
    channel: int = 0,
) -> PacketizedAccessUnit:
    """Packetize one access unit (RFC 6184 packetization-mode=1).

    Adds the pscs capture-time SEI just before the first slice (SPS/PPS, if any, stay
    first), and SPS/PPS before an IDR that lacks them.  NAL units that fit ``mtu`` become
    single NAL unit packets, larger ones FU-A fragments; the marker bit is set on the
    access unit's last packet.  Sequence number, timestamp and SSRC are left zero.
    """
    keyframe = is_keyframe(nals)
    if keyframe:
        nals = _with_parameter_sets(nals, sps, pps)
    first_vcl = next((i for i, nal in enumerate(nals) if nal_type(nal) in VCL_NAL_TYPES), len(nals))
    sei = build_pscs_sei(0)
    ordered = [*nals[:first_vcl], sei, *nals[first_vcl:]]

    max_payload = mtu - RTP_HEADER_SIZE
    payloads: list[bytes] = []
    sei_index = first_vcl
    for nal in ordered:
        if len(nal) <= max_payload:
            payloads.append(nal)
            continue
        header = nal[0]
        fu_indicator = bytes([(header & 0xE0) | FU_A])
        fragment_size = max_payload - 2
        body = nal[1:]
        for start in range(0, len(body), fragment_size):
            fu_header = header & 0x1F
            if start == 0:
                fu_header |= 0x80  # S: first fragment
            if start + fragment_size >= len(body):
                fu_header |= 0x40  # E: last fragment
            payloads.append(fu_indicator + bytes([fu_header]) + body[start : start + fragment_size])

    buffer = bytearray()
    offsets: list[int] = []
    sei_time_offset = -1
    last = len(payloads) - 1
    for index, payload in enumerate(payloads):
        offsets.append(len(buffer))
        marker_and_type = (0x80 if index == last else 0) | H264_PAYLOAD_TYPE
        buffer += struct.pack(">cBH", b"$", channel, RTP_HEADER_SIZE + len(payload))
        buffer += struct.pack(">BBHII", RTP_VERSION_BYTE, marker_and_type, 0, 0, 0)
        if index == sei_index:
            assert len(payload) == PSCS_SEI_NAL_SIZE
            sei_time_offset = len(buffer) + PSCS_SEI_TIME_OFFSET
        buffer += payload
    return PacketizedAccessUnit(
        buffer=buffer,
        packet_offsets=tuple(offsets),
        payload_octets=sum(len(p) for p in payloads),
        sei_time_offset=sei_time_offset,
        keyframe=keyframe,
    )


def ntp_timestamp(unix_time: float) -> tuple[int, int]:
    """(seconds, fraction) of an NTP timestamp for a Unix time."""
    seconds = unix_time + _NTP_UNIX_OFFSET
    whole = int(seconds)
    return whole & 0xFFFFFFFF, int((seconds - whole) * (1 << 32)) & 0xFFFFFFFF


def build_sender_report(
    ssrc: int,
    rtp_timestamp: int,
    packet_count: int,
    octet_count: int,
    *,
    cname: str,
    unix_time: float | None = None,
) -> bytes:
    """A compound RTCP packet: SR (RFC 3550 6.4.1, no report blocks) + SDES with CNAME."""
    ntp_seconds, ntp_fraction = ntp_timestamp(time.time() if unix_time is None else unix_time)
    sender_report = struct.pack(
        ">BBHIIIIII",
        0x80,
        200,
        6,  # length in 32-bit words minus one
        ssrc,
        ntp_seconds,
        ntp_fraction,
        rtp_timestamp & 0xFFFFFFFF,
        packet_count & 0xFFFFFFFF,
        octet_count & 0xFFFFFFFF,
    )
    cname_bytes = cname.encode()[:255]
    item = bytes([1, len(cname_bytes)]) + cname_bytes + b"\x00"  # CNAME item, end of list
    item += b"\x00" * (-(4 + len(item)) % 4)  # pad the chunk to 32 bits
    sdes = struct.pack(">BBHI", 0x81, 202, (4 + len(item)) // 4, ssrc) + item
    return sender_report + sdes


def interleave(channel: int, packet: bytes) -> bytes:
    return struct.pack(">cBH", b"$", channel, len(packet)) + packet
