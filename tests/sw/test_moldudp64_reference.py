"""MoldUDP64: packet bytes against the specification's layout, packing limits, and the A/B arbiter model."""

import struct

import pytest

from t2t.feed.moldudp64 import (
    HEADER_LENGTH, MoldFormatError, MoldPacket, MoldUdp64Arbiter, decode_packet, encode_packet, pack_messages,
)

SESSION = "SESSION001"


def wire(session, sequence, count, *messages):
    """A downstream packet laid out by hand: session 10, sequence 8, count 2, then length-prefixed blocks."""
    return (session.encode().ljust(10) + struct.pack(">QH", sequence, count)
            + b"".join(struct.pack(">H", len(message)) + message for message in messages))


def message(sequence):
    """A distinguishable message body for ``sequence`` (its length varies, as ITCH lengths do)."""
    return f"m{sequence}".encode() * (1 + sequence % 3)


def packet(sequence, count, session=SESSION):
    return encode_packet(MoldPacket(session, sequence, tuple(message(sequence + i) for i in range(count))))


def test_encode_lays_out_header_and_blocks_as_the_specification():
    raw = encode_packet(MoldPacket("ABC", 0x0102030405060708, (b"hello", b"D" * 19)))
    assert raw == wire("ABC", 0x0102030405060708, 2, b"hello", b"D" * 19)
    assert raw[:10] == b"ABC       "
    assert raw[18:20] == b"\x00\x02"


def test_decode_round_trips_data_heartbeat_and_end_of_session():
    data = MoldPacket(SESSION, 42, (b"a", b"bb", b"ccc"))
    heartbeat = MoldPacket(SESSION, 45)
    end = MoldPacket(SESSION, 45, end_of_session=True)
    assert decode_packet(encode_packet(data)) == data
    assert decode_packet(encode_packet(heartbeat)).is_heartbeat
    assert encode_packet(end)[18:20] == b"\xff\xff"
    decoded_end = decode_packet(encode_packet(end))
    assert decoded_end.end_of_session and not decoded_end.is_heartbeat
    assert data.next_sequence == 45


@pytest.mark.parametrize("raw, reason", [
    (wire(SESSION, 1, 3, b"a", b"b"), "ends after 2"),                  # count larger than the blocks present
    (wire(SESSION, 1, 1, b"abc")[:-1], "runs past the end"),            # block cut short
    (wire(SESSION, 1, 1, b"abc") + b"\0", "trailing"),
    (wire(SESSION, 1, 0)[:19], "shorter than"),
])
def test_malformed_payloads_raise_with_a_reason(raw, reason):
    with pytest.raises(MoldFormatError, match=reason):
        decode_packet(raw)


def test_encode_refuses_a_long_session_and_messages_on_end_of_session():
    with pytest.raises(MoldFormatError):
        encode_packet(MoldPacket("ELEVENCHARS", 1))
    with pytest.raises(MoldFormatError):
        encode_packet(MoldPacket(SESSION, 1, (b"x",), end_of_session=True))


@pytest.mark.parametrize("max_payload", [HEADER_LENGTH + 2 + 28, 100, 1400])
def test_packer_fills_packets_up_to_the_payload_limit(max_payload):
    messages = [message(i) + b"#" * (i % 17) for i in range(500)]     # at most 28 bytes
    packets = list(pack_messages(messages, SESSION, first_sequence=7, max_payload=max_payload))
    assert [m for p in packets for m in p.messages] == messages
    sequence = 7
    for index, packed in enumerate(packets):
        assert packed.sequence == sequence
        sequence += len(packed.messages)
        size = len(encode_packet(packed))
        assert size <= max_payload
        if index + 1 < len(packets):
            # Dense: the next message would not have fit.
            assert size + 2 + len(packets[index + 1].messages[0]) > max_payload


def test_packer_respects_the_message_count_limit():
    packets = list(pack_messages([b"x"] * 10, SESSION, max_messages=4))
    assert [len(p.messages) for p in packets] == [4, 4, 2]
    assert [p.sequence for p in packets] == [1, 5, 9]


def test_packer_refuses_a_message_larger_than_a_packet():
    with pytest.raises(MoldFormatError):
        list(pack_messages([b"x" * 100], SESSION, max_payload=HEADER_LENGTH + 2 + 99))


def test_arbiter_keeps_first_copy_counts_duplicates_and_records_gaps():
    arbiter = MoldUdp64Arbiter()
    delivered = []
    arrivals = [
        ("A", packet(1, 3)),                 # 1..3 delivered
        ("B", packet(1, 3)),                 # duplicate of 1..3
        ("B", packet(4, 2)),                 # A lost 4..5, B delivers them
        ("A", packet(6, 3)),                 # 6..8
        ("B", packet(6, 3)),                 # duplicate
        ("A", packet(11, 2)),                # 9..10 lost on both: gap (9, 2); 11..12 delivered
        ("B", packet(9, 2)),                 # late copy of a lost range: duplicates
        ("A", packet(12, 3)),                # 12 duplicate, 13..14 delivered
        ("A", packet(15, 1, session="OTHER")),
        ("A", wire(SESSION, 15, 5, b"x")),   # count larger than the payload
        ("B", encode_packet(MoldPacket(SESSION, 17))),   # heartbeat: 15..16 missing
        ("A", packet(17, 1)),
        ("B", encode_packet(MoldPacket(SESSION, 18, end_of_session=True))),
    ]
    for feed, payload in arrivals:
        delivered += arbiter.receive(payload, feed)
    expected = [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 17]
    assert [sequence for sequence, _ in delivered] == expected
    assert [body for _, body in delivered] == [message(s) for s in expected]
    counters = arbiter.counters
    assert counters.delivered == len(expected)
    assert counters.duplicates == 3 + 3 + 2 + 1
    assert counters.gaps == [(9, 2), (15, 2)]
    assert counters.missing == 4
    assert counters.wrong_session == 1
    assert counters.malformed == 1
    assert counters.heartbeats == 1
    assert counters.end_of_session == 1 and arbiter.ended
    assert counters.packets == len(arrivals)
    assert counters.packets_by_feed == {"A": 7, "B": 6}
    assert arbiter.session == SESSION
    assert arbiter.next_sequence == 18


def test_arbiter_joins_mid_session_without_a_gap_unless_told_where_to_start():
    joined = MoldUdp64Arbiter()
    joined.receive(packet(100, 2))
    assert joined.counters.gaps == []
    strict = MoldUdp64Arbiter(session=SESSION, next_sequence=1)
    strict.receive(packet(100, 2))
    assert strict.counters.gaps == [(1, 99)]


def test_arbiter_with_a_set_session_drops_others_even_first():
    arbiter = MoldUdp64Arbiter(session=SESSION)
    assert arbiter.receive(packet(1, 1, session="OTHER")) == []
    assert arbiter.counters.wrong_session == 1
    assert [s for s, _ in arbiter.receive(packet(1, 1))] == [1]


def test_arbiter_over_interleaved_lossy_feeds_delivers_everything_once():
    messages = [message(i) for i in range(1, 301)]
    packets = [encode_packet(p) for p in pack_messages(messages, SESSION, max_messages=7)]
    arbiter = MoldUdp64Arbiter()
    delivered = []
    for index, payload in enumerate(packets):
        if index % 3 != 0:               # feed A loses a third of the packets,
            delivered += arbiter.receive(payload, "A")
        if index % 3 != 1:               # feed B another third
            delivered += arbiter.receive(payload, "B")
    assert [body for _, body in delivered] == messages
    assert arbiter.counters.gaps == []
