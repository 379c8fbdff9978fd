"""Ethernet II / IPv4 / UDP frames: build them around a payload, and parse them the way the card's receive path does.

Frames are handled without the Ethernet FCS (as captured in pcap files) unless asked; :func:`ethernet_fcs`
computes it for test benches that feed a MAC. :func:`parse_udp_frame` either returns the layers or a
:class:`DropReason`, the reason the card would drop the frame; both the gateware tests and the virtual card use it
as the reference for what is accepted.
"""

import enum
import ipaddress
import struct
import zlib
from dataclasses import dataclass

__all__ = [
    "ETHERTYPE_IPV4", "ETHERTYPE_VLAN", "IP_PROTOCOL_UDP", "MIN_FRAME_LENGTH",
    "DropReason", "UdpFrame", "build_udp_frame", "parse_udp_frame", "ipv4_checksum", "udp_checksum",
    "ethernet_fcs", "multicast_mac", "mac_bytes", "ip_bytes",
]

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_VLAN = 0x8100
IP_PROTOCOL_UDP = 17
#: Shortest Ethernet frame without FCS; shorter frames are zero padded.
MIN_FRAME_LENGTH = 60

_ETHERNET = struct.Struct(">6s6sH")
_VLAN_TAG = struct.Struct(">HH")
_IPV4 = struct.Struct(">BBHHHBBH4s4s")
_UDP = struct.Struct(">HHHH")
_FLAG_DONT_FRAGMENT = 0x4000
_FLAG_MORE_FRAGMENTS = 0x2000
_FRAGMENT_OFFSET_MASK = 0x1FFF


class DropReason(enum.StrEnum):
    """Why a frame is not delivered as a UDP datagram (a ``str``, readable as is)."""

    TRUNCATED = "truncated frame"
    NOT_IPV4 = "not IPv4"
    BAD_IP_HEADER = "bad IPv4 version or header length"
    BAD_IP_LENGTH = "IPv4 total length disagrees with the frame"
    BAD_IP_CHECKSUM = "bad IPv4 header checksum"
    FRAGMENT = "IPv4 fragment"
    NOT_UDP = "not UDP"
    BAD_UDP_LENGTH = "UDP length disagrees with the IPv4 length"
    BAD_UDP_CHECKSUM = "bad UDP checksum"
    WRONG_ADDRESS = "destination address not subscribed"
    WRONG_PORT = "destination port not subscribed"


@dataclass(frozen=True, slots=True)
class UdpFrame:
    """The layers of a parsed frame. Addresses are dotted strings / colon-separated MACs, ``vlan_id`` is
    ``None`` when the frame is untagged, ``payload`` the UDP payload."""

    dst_mac: str
    src_mac: str
    vlan_id: int | None
    src_ip: str
    dst_ip: str
    ttl: int
    ip_id: int
    src_port: int
    dst_port: int
    payload: bytes


def mac_bytes(mac):
    """Six MAC bytes from ``"01:00:5e:00:00:01"`` (``-`` separators too) or bytes."""
    if isinstance(mac, str):
        raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    else:
        raw = bytes(mac)
    if len(raw) != 6:
        raise ValueError(f"a MAC address has 6 bytes: {mac!r}")
    return raw


def _mac_text(raw):
    return ":".join(f"{byte:02x}" for byte in raw)


def ip_bytes(address):
    """Four IPv4 address bytes from a dotted string, an ``int``, an ``ipaddress.IPv4Address`` or bytes."""
    if isinstance(address, (bytes, bytearray)):
        raw = bytes(address)
        if len(raw) != 4:
            raise ValueError(f"an IPv4 address has 4 bytes: {address!r}")
        return raw
    return ipaddress.IPv4Address(address).packed


def multicast_mac(address):
    """The Ethernet multicast MAC of an IPv4 multicast group (01:00:5e + low 23 bits of the address)."""
    raw = ip_bytes(address)
    return bytes((0x01, 0x00, 0x5E, raw[1] & 0x7F, raw[2], raw[3]))


def _ones_complement_sum(data):
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ipv4_checksum(header):
    """Internet checksum of an IPv4 header whose checksum field is zero (RFC 791 / RFC 1071).

    Over a header whose checksum field is filled in, the result is 0 when that checksum is right.
    """
    return ~_ones_complement_sum(header) & 0xFFFF


def udp_checksum(src_ip, dst_ip, udp_segment):
    """UDP checksum over the IPv4 pseudo-header and ``udp_segment`` (header with checksum 0, then payload).

    A computed 0 is sent as 0xFFFF, since 0 on the wire means "no checksum".
    """
    pseudo = ip_bytes(src_ip) + ip_bytes(dst_ip) + struct.pack(">BBH", 0, IP_PROTOCOL_UDP, len(udp_segment))
    checksum = ~_ones_complement_sum(pseudo + bytes(udp_segment)) & 0xFFFF
    return checksum or 0xFFFF


def ethernet_fcs(frame):
    """The Ethernet frame check sequence of ``frame`` as the 4 bytes sent after it (CRC-32, least significant
    byte first)."""
    return struct.pack("<I", zlib.crc32(frame))


def build_udp_frame(payload, *, dst_ip, dst_port, src_ip="10.0.0.1", src_port=40000, dst_mac=None,
                    src_mac="02:00:00:00:00:01", vlan_id=None, vlan_priority=0, ttl=64, ip_id=0, dscp=0,
                    dont_fragment=True, more_fragments=False, fragment_offset=0, ip_options=b"",
                    with_udp_checksum=False, pad=True, with_fcs=False):
    """Wrap ``payload`` in UDP, IPv4 and Ethernet II (optionally 802.1Q tagged) headers.

    Parameters
    ----------
    payload : bytes
        The UDP payload.
    dst_ip, src_ip : str or int or bytes
        IPv4 addresses.
    dst_port, src_port : int
        UDP ports.
    dst_mac : str or bytes or None
        ``None``: the multicast MAC of ``dst_ip`` if it is a multicast group, else ``02:00:00:00:00:02``.
    src_mac : str or bytes
    vlan_id : int or None
        Adds one 802.1Q tag with this VLAN id (and ``vlan_priority``) when not ``None``.
    ttl, ip_id, dscp : int
        IPv4 header fields.
    dont_fragment, more_fragments, fragment_offset
        IPv4 fragmentation fields (``fragment_offset`` in 8-byte units); set the last two to build fragments.
    ip_options : bytes
        IPv4 options, padded with zeros to a multiple of 4 bytes (up to 40).
    with_udp_checksum : bool
        Compute the UDP checksum; otherwise send 0, which IPv4 allows.
    pad : bool
        Zero pad the frame to the 60-byte Ethernet minimum.
    with_fcs : bool
        Append the 4-byte FCS.

    Returns
    -------
    bytes
        The frame.
    """
    options = bytes(ip_options) + b"\0" * (-len(ip_options) % 4)
    if len(options) > 40:
        raise ValueError(f"IPv4 options are at most 40 bytes, got {len(options)}")
    src_ip_raw, dst_ip_raw = ip_bytes(src_ip), ip_bytes(dst_ip)
    udp_length = _UDP.size + len(payload)
    udp_header = _UDP.pack(src_port, dst_port, udp_length, 0)
    if with_udp_checksum:
        checksum = udp_checksum(src_ip_raw, dst_ip_raw, udp_header + payload)
        udp_header = _UDP.pack(src_port, dst_port, udp_length, checksum)
    header_words = (_IPV4.size + len(options)) // 4
    flags = ((_FLAG_DONT_FRAGMENT if dont_fragment else 0) | (_FLAG_MORE_FRAGMENTS if more_fragments else 0)
             | (fragment_offset & _FRAGMENT_OFFSET_MASK))
    total_length = header_words * 4 + udp_length
    if total_length > 0xFFFF:
        raise ValueError(f"{len(payload)}-byte payload does not fit an IPv4 packet")
    ip_fields = [0x40 | header_words, dscp << 2, total_length, ip_id, flags, ttl, IP_PROTOCOL_UDP, 0,
                 src_ip_raw, dst_ip_raw]
    ip_header = _IPV4.pack(*ip_fields) + options
    ip_fields[7] = ipv4_checksum(ip_header)
    ip_header = _IPV4.pack(*ip_fields) + options
    if dst_mac is None:
        dst_mac = multicast_mac(dst_ip_raw) if ipaddress.IPv4Address(dst_ip_raw).is_multicast \
            else "02:00:00:00:00:02"
    if vlan_id is None:
        ethernet = _ETHERNET.pack(mac_bytes(dst_mac), mac_bytes(src_mac), ETHERTYPE_IPV4)
    else:
        ethernet = (_ETHERNET.pack(mac_bytes(dst_mac), mac_bytes(src_mac), ETHERTYPE_VLAN)
                    + _VLAN_TAG.pack((vlan_priority << 13) | (vlan_id & 0x0FFF), ETHERTYPE_IPV4))
    frame = ethernet + ip_header + udp_header + bytes(payload)
    if pad and len(frame) < MIN_FRAME_LENGTH:
        frame += b"\0" * (MIN_FRAME_LENGTH - len(frame))
    return frame + ethernet_fcs(frame) if with_fcs else frame


def parse_udp_frame(frame, *, dst_ports=None, dst_ips=None, check_udp_checksum=True):
    """Parse an Ethernet II frame (no FCS) down to its UDP payload, or say why it is dropped.

    Accepted: untagged or single 802.1Q tagged Ethernet II, IPv4 with a correct header checksum and any
    options, not a fragment, UDP whose checksum is 0 or correct. Ethernet padding after the IPv4 packet is ignored.

    Parameters
    ----------
    frame : bytes
    dst_ports : collection of int or None
        Destination ports to accept (``None``: any).
    dst_ips : collection of str or None
        Destination addresses to accept, dotted strings (``None``: any).
    check_udp_checksum : bool
        Verify a non-zero UDP checksum.

    Returns
    -------
    UdpFrame or DropReason
    """
    if len(frame) < _ETHERNET.size:
        return DropReason.TRUNCATED
    dst_mac, src_mac, ethertype = _ETHERNET.unpack_from(frame)
    cursor = _ETHERNET.size
    vlan_id = None
    if ethertype == ETHERTYPE_VLAN:
        if len(frame) < cursor + _VLAN_TAG.size:
            return DropReason.TRUNCATED
        tci, ethertype = _VLAN_TAG.unpack_from(frame, cursor)
        vlan_id = tci & 0x0FFF
        cursor += _VLAN_TAG.size
    if ethertype != ETHERTYPE_IPV4:
        return DropReason.NOT_IPV4
    if len(frame) < cursor + _IPV4.size:
        return DropReason.TRUNCATED
    (version_ihl, _, total_length, ip_id, flags, ttl, protocol, _, src_ip, dst_ip) = \
        _IPV4.unpack_from(frame, cursor)
    header_length = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or header_length < _IPV4.size:
        return DropReason.BAD_IP_HEADER
    if total_length < header_length or cursor + total_length > len(frame):
        return DropReason.BAD_IP_LENGTH
    if ipv4_checksum(frame[cursor:cursor + header_length]) != 0:
        return DropReason.BAD_IP_CHECKSUM
    if flags & (_FLAG_MORE_FRAGMENTS | _FRAGMENT_OFFSET_MASK):
        return DropReason.FRAGMENT
    if protocol != IP_PROTOCOL_UDP:
        return DropReason.NOT_UDP
    src_ip_text, dst_ip_text = str(ipaddress.IPv4Address(src_ip)), str(ipaddress.IPv4Address(dst_ip))
    if dst_ips is not None and dst_ip_text not in dst_ips:
        return DropReason.WRONG_ADDRESS
    udp_start = cursor + header_length
    udp_end = cursor + total_length
    if udp_end - udp_start < _UDP.size:
        return DropReason.BAD_UDP_LENGTH
    src_port, dst_port, udp_length, checksum = _UDP.unpack_from(frame, udp_start)
    if udp_length != udp_end - udp_start:
        return DropReason.BAD_UDP_LENGTH
    if dst_ports is not None and dst_port not in dst_ports:
        return DropReason.WRONG_PORT
    segment = frame[udp_start:udp_end]
    if check_udp_checksum and checksum:
        zeroed = segment[:6] + b"\0\0" + segment[8:]
        if udp_checksum(src_ip, dst_ip, zeroed) != checksum:
            return DropReason.BAD_UDP_CHECKSUM
    return UdpFrame(_mac_text(dst_mac), _mac_text(src_mac), vlan_id, src_ip_text, dst_ip_text, ttl, ip_id,
                    src_port, dst_port, bytes(segment[_UDP.size:]))
