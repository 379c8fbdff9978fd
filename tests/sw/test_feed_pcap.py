"""pcap: the written header and records, round trips, both resolutions and byte orders, truncation."""

import gzip
import io
import struct

import pytest

from t2t.feed.pcap import (
    LINKTYPE_ETHERNET, PcapFormatError, PcapPacket, PcapReader, PcapWriter, is_pcap_magic, read_pcap, write_pcap,
)

PACKETS = [(1_577_700_000_123_456_789, b"\x01" * 60), (1_577_700_000_123_456_790, b"\x02" * 1514),
           (1_577_700_001_000_000_000, b"")]


def hand_capture(byte_order, magic, records, linktype=LINKTYPE_ETHERNET):
    """A capture laid out by hand: 24-byte file header, then (seconds, fraction, incl_len, orig_len, data)."""
    data = struct.pack(byte_order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for seconds, fraction, payload in records:
        data += struct.pack(byte_order + "IIII", seconds, fraction, len(payload), len(payload)) + payload
    return data


def test_writer_uses_nanosecond_magic_little_endian_and_ethernet(tmp_path):
    path = tmp_path / "a.pcap"
    write_pcap(path, PACKETS[:1])
    raw = path.read_bytes()
    assert raw[:4] == bytes.fromhex("4d3cb2a1")
    assert struct.unpack("<HHiIII", raw[4:24]) == (2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)
    assert struct.unpack("<IIII", raw[24:40]) == (1_577_700_000, 123_456_789, 60, 60)
    assert raw[40:] == PACKETS[0][1]


def test_round_trip_keeps_nanoseconds_and_data(tmp_path):
    path = tmp_path / "a.pcap"
    assert write_pcap(path, PACKETS) == 3
    with PcapReader(path) as reader:
        assert (reader.linktype, reader.nanosecond, reader.snaplen) == (LINKTYPE_ETHERNET, True, 65535)
        packets = list(reader)
    assert packets == [PcapPacket(ts, data, len(data)) for ts, data in PACKETS]


@pytest.mark.parametrize("byte_order", ["<", ">"])
@pytest.mark.parametrize("magic, scale", [(0xA1B2C3D4, 1_000), (0xA1B23C4D, 1)])
def test_reader_accepts_both_resolutions_and_byte_orders(byte_order, magic, scale):
    capture = hand_capture(byte_order, magic, [(100, 250, b"abc"), (101, 7, b"de")])
    assert is_pcap_magic(capture[:4])
    assert list(read_pcap(io.BytesIO(capture))) == [
        PcapPacket(100 * 1_000_000_000 + 250 * scale, b"abc", 3),
        PcapPacket(101 * 1_000_000_000 + 7 * scale, b"de", 2),
    ]


def test_reader_reads_gzip_captures(tmp_path):
    buffer = io.BytesIO()
    write_pcap(buffer, PACKETS)
    path = tmp_path / "a.pcap.gz"
    path.write_bytes(gzip.compress(buffer.getvalue()))
    assert [packet.data for packet in read_pcap(path)] == [data for _, data in PACKETS]


def test_reader_streams_record_by_record():
    buffer = io.BytesIO()
    write_pcap(buffer, PACKETS)
    buffer.seek(0)
    reader = PcapReader(buffer)
    first = next(iter(reader))
    assert first.data == PACKETS[0][1]
    assert buffer.tell() == 24 + 16 + 60


@pytest.mark.parametrize("cut, offset", [(24 + 16 + 60 + 10, 100), (24 + 16 + 59, 24), (24 + 16 + 60 + 16 + 3, 100)])
def test_truncated_capture_names_the_offset_of_the_broken_record(cut, offset):
    buffer = io.BytesIO()
    write_pcap(buffer, PACKETS)
    with pytest.raises(PcapFormatError) as caught:
        list(read_pcap(io.BytesIO(buffer.getvalue()[:cut])))
    assert caught.value.offset == offset


def test_non_pcap_input_is_refused():
    assert not is_pcap_magic(b"\0\x13D\0")
    with pytest.raises(PcapFormatError):
        PcapReader(io.BytesIO(b"\0\x13" + bytes(40)))
    with pytest.raises(PcapFormatError):
        PcapReader(io.BytesIO(b"\xd4\xc3"))


def test_writer_leaves_a_caller_stream_open():
    buffer = io.BytesIO()
    with PcapWriter(buffer) as writer:
        writer.write(b"x", 5)
    assert not buffer.closed
    assert writer.count == 1
