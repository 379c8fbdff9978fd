"""Ethernet / IPv4 / UDP frames: checksums against known values, build/parse round trips, and every drop reason."""

import struct
import zlib

import pytest

from t2t.feed.netframe import (
    DropReason, UdpFrame, build_udp_frame, ethernet_fcs, ipv4_checksum, multicast_mac, parse_udp_frame,
    udp_checksum,
)

# The classic worked example of the IPv4 header checksum (192.168.0.1 -> 192.168.0.199, UDP, DF, TTL 64).
CLASSIC_HEADER = bytes.fromhex("45000073000040004011b861c0a80001c0a800c7")
FEED_A = dict(dst_ip="233.54.12.111", dst_port=26477)
PAYLOAD = b"MoldUDP64 payload" * 3

IP_START = 14                                  # untagged: the IPv4 header follows the 14-byte Ethernet header


def test_ipv4_checksum_of_the_classic_header():
    zeroed = CLASSIC_HEADER[:10] + b"\0\0" + CLASSIC_HEADER[12:]
    assert ipv4_checksum(zeroed) == 0xB861
    assert ipv4_checksum(CLASSIC_HEADER) == 0


def test_multicast_mac_maps_the_low_23_bits():
    assert multicast_mac("233.54.12.111") == bytes.fromhex("01005e360c6f")
    assert multicast_mac("239.255.1.2") == bytes.fromhex("01005e7f0102")     # the 24th bit is dropped


def test_built_frame_has_the_expected_layout():
    frame = build_udp_frame(PAYLOAD, src_ip="10.0.0.1", src_port=40000, ttl=64, ip_id=7, **FEED_A)
    assert frame[0:6] == bytes.fromhex("01005e360c6f")
    assert frame[12:14] == b"\x08\x00"
    ip = frame[IP_START:IP_START + 20]
    assert ip[0] == 0x45
    assert struct.unpack(">H", ip[2:4])[0] == 20 + 8 + len(PAYLOAD)
    assert struct.unpack(">H", ip[4:6])[0] == 7
    assert ip[6:8] == b"\x40\x00"              # don't fragment
    assert (ip[8], ip[9]) == (64, 17)
    assert ipv4_checksum(ip) == 0
    assert ip[12:16] == bytes((10, 0, 0, 1)) and ip[16:20] == bytes((233, 54, 12, 111))
    assert struct.unpack(">HHHH", frame[34:42]) == (40000, 26477, 8 + len(PAYLOAD), 0)
    assert frame[42:] == PAYLOAD


def test_parse_returns_the_layers_of_a_built_frame():
    frame = build_udp_frame(PAYLOAD, src_ip="10.0.0.1", src_port=40000, ip_id=9, ttl=3, **FEED_A)
    assert parse_udp_frame(frame) == UdpFrame(
        dst_mac="01:00:5e:36:0c:6f", src_mac="02:00:00:00:00:01", vlan_id=None, src_ip="10.0.0.1",
        dst_ip="233.54.12.111", ttl=3, ip_id=9, src_port=40000, dst_port=26477, payload=PAYLOAD)


def test_vlan_tag_is_built_and_parsed():
    frame = build_udp_frame(PAYLOAD, vlan_id=100, vlan_priority=5, **FEED_A)
    assert frame[12:18] == bytes.fromhex("8100a0640800")
    parsed = parse_udp_frame(frame)
    assert parsed.vlan_id == 100 and parsed.payload == PAYLOAD


def test_short_frames_are_padded_and_the_padding_is_not_payload():
    frame = build_udp_frame(b"hi", **FEED_A)
    assert len(frame) == 60
    assert parse_udp_frame(frame).payload == b"hi"


def test_ip_options_set_the_header_length_and_are_skipped():
    frame = build_udp_frame(PAYLOAD, ip_options=b"\x94\x04\x00\x00\x01", **FEED_A)  # router alert + 1, padded
    assert frame[IP_START] == 0x47
    assert parse_udp_frame(frame).payload == PAYLOAD


def test_udp_checksum_zero_or_correct_is_accepted_and_wrong_is_dropped():
    checked = build_udp_frame(PAYLOAD, with_udp_checksum=True, **FEED_A)
    assert struct.unpack(">H", checked[40:42])[0] != 0
    assert parse_udp_frame(checked).payload == PAYLOAD
    corrupted = checked[:-1] + bytes([checked[-1] ^ 1])
    assert parse_udp_frame(corrupted) is DropReason.BAD_UDP_CHECKSUM
    assert parse_udp_frame(corrupted, check_udp_checksum=False).payload == corrupted[42:]


def test_udp_checksum_of_a_hand_summed_segment():
    # Pseudo-header 10.0.0.1 + 10.0.0.2 + 0x0011 + 0x000a, segment 0x0001 0x0002 0x000a 0 "ab":
    # sum = 0x0a00+0x0001+0x0a00+0x0002+0x0011+0x000a + 0x0001+0x0002+0x000a+0x0000+0x6162 = 0x758d -> ~ = 0x8a72
    assert udp_checksum("10.0.0.1", "10.0.0.2", bytes.fromhex("00010002000a0000") + b"ab") == 0x8A72


def test_fcs_leaves_the_crc32_residue():
    frame = build_udp_frame(PAYLOAD, with_fcs=True, **FEED_A)
    assert frame[-4:] == ethernet_fcs(frame[:-4])
    assert zlib.crc32(frame) == 0x2144DF1C


def rechecksummed(frame, offset, value):
    """``frame`` with IPv4 header byte ``offset`` set to ``value`` and the header checksum made right again."""
    header = bytearray(frame[IP_START:IP_START + 20])
    header[offset] = value
    header[10:12] = b"\0\0"
    header[10:12] = struct.pack(">H", ipv4_checksum(bytes(header)))
    return frame[:IP_START] + bytes(header) + frame[IP_START + 20:]


GOOD = build_udp_frame(PAYLOAD, **FEED_A)


@pytest.mark.parametrize("frame, reason", [
    (GOOD[:12] + b"\x08\x06" + GOOD[14:], DropReason.NOT_IPV4),
    (GOOD[:IP_START + 11] + bytes([GOOD[IP_START + 11] ^ 0xFF]) + GOOD[IP_START + 12:], DropReason.BAD_IP_CHECKSUM),
    (rechecksummed(GOOD, 9, 6), DropReason.NOT_UDP),
    (rechecksummed(GOOD, 0, 0x65), DropReason.BAD_IP_HEADER),
    (rechecksummed(GOOD, 0, 0x44), DropReason.BAD_IP_HEADER),
    (rechecksummed(GOOD, 3, 0xFF), DropReason.BAD_IP_LENGTH),
    (build_udp_frame(PAYLOAD, more_fragments=True, **FEED_A), DropReason.FRAGMENT),
    (build_udp_frame(PAYLOAD, fragment_offset=185, dont_fragment=False, **FEED_A), DropReason.FRAGMENT),
    (GOOD[:30], DropReason.TRUNCATED),
    (GOOD[:10], DropReason.TRUNCATED),
])
def test_frames_the_card_must_drop_say_why(frame, reason):
    result = parse_udp_frame(frame)
    assert result is reason
    assert isinstance(result, str)


def test_port_and_address_filters():
    assert parse_udp_frame(GOOD, dst_ports={26477}).payload == PAYLOAD
    assert parse_udp_frame(GOOD, dst_ports={26478}) is DropReason.WRONG_PORT
    assert parse_udp_frame(GOOD, dst_ips={"233.54.12.111"}).payload == PAYLOAD
    assert parse_udp_frame(GOOD, dst_ips={"233.49.196.71"}) is DropReason.WRONG_ADDRESS


def test_udp_length_must_match_the_ip_length():
    bad = GOOD[:38] + struct.pack(">H", 9 + len(PAYLOAD)) + GOOD[40:]
    assert parse_udp_frame(bad) is DropReason.BAD_UDP_LENGTH


def test_unicast_destination_gets_a_unicast_mac_and_options_are_limited():
    frame = build_udp_frame(b"x", dst_ip="192.168.0.199", dst_port=1)
    assert frame[0] & 1 == 0
    with pytest.raises(ValueError):
        build_udp_frame(b"x", ip_options=bytes(41), **FEED_A)
