"""OUCH 4.2 and SoupBinTCP 3.00 codec: byte vectors built by hand from the specification's offsets."""

import dataclasses
import random

import pytest

from t2t.trade import ouch


def wire(length, *parts):
    """Assemble (offset, bytes) parts, checking each starts at the offset the specification gives."""
    out = bytearray()
    for offset, raw in parts:
        assert offset == len(out), f"part at {offset} would start at {len(out)}"
        out += raw
    assert len(out) == length
    return bytes(out)


def be(value, size):
    return value.to_bytes(size, "big")


ENTER_ORDER = wire(
    49, (0, b"O"), (1, b"T2TQA100000042"), (15, b"S"), (16, be(300, 4)), (20, b"AAPL    "), (28, be(1_895_000, 4)),
    (32, be(99998, 4)), (36, b"FIRM"), (40, b"Y"), (41, b"P"), (42, b"N"), (43, be(0, 4)), (47, b"N"), (48, b"N"))
ENTER_ORDER_FIELDS = ouch.EnterOrder(
    token="T2TQA100000042", side="S", shares=300, stock="AAPL", price=1_895_000, time_in_force=99998, firm="FIRM",
    display="Y", capacity="P", intermarket_sweep="N", minimum_quantity=0, cross_type="N", customer_type="N")

REPLACE_ORDER = wire(
    47, (0, b"U"), (1, b"T2TQA100000042"), (15, b"T2TQA100000043"), (29, be(200, 4)), (33, be(1_894_900, 4)),
    (37, be(0, 4)), (41, b"Y"), (42, b"N"), (43, be(100, 4)))
REPLACE_ORDER_FIELDS = ouch.ReplaceOrder(
    existing_token="T2TQA100000042", replacement_token="T2TQA100000043", shares=200, price=1_894_900,
    time_in_force=0, display="Y", intermarket_sweep="N", minimum_quantity=100)

CANCEL_ORDER = wire(19, (0, b"X"), (1, b"T2TQA100000043"), (15, be(0, 4)))
CANCEL_ORDER_FIELDS = ouch.CancelOrder(token="T2TQA100000043", shares=0)

TIMESTAMP = 34_200_000_000_123  # 09:30:00.000000123 in ns since midnight

ACCEPTED = wire(
    66, (0, b"A"), (1, be(TIMESTAMP, 8)), (9, b"T2TQA100000042"), (23, b"S"), (24, be(300, 4)), (28, b"AAPL    "),
    (36, be(1_895_000, 4)), (40, be(99998, 4)), (44, b"FIRM"), (48, b"Y"), (49, be(0x0123456789ABCDEF, 8)),
    (57, b"P"), (58, b"N"), (59, be(0, 4)), (63, b"N"), (64, b"L"), (65, b" "))
ACCEPTED_FIELDS = ouch.Accepted(
    timestamp=TIMESTAMP, token="T2TQA100000042", side="S", shares=300, stock="AAPL", price=1_895_000,
    time_in_force=99998, firm="FIRM", display="Y", order_reference=0x0123456789ABCDEF, capacity="P",
    intermarket_sweep="N", minimum_quantity=0, cross_type="N", order_state="L", bbo_weight=" ")

EXECUTED = wire(
    40, (0, b"E"), (1, be(TIMESTAMP + 5, 8)), (9, b"T2TQA100000042"), (23, be(100, 4)), (27, be(1_895_000, 4)),
    (31, b"R"), (32, be(987_654_321, 8)))
EXECUTED_FIELDS = ouch.Executed(
    timestamp=TIMESTAMP + 5, token="T2TQA100000042", shares=100, price=1_895_000, liquidity_flag="R",
    match_number=987_654_321)

CANCELED = wire(28, (0, b"C"), (1, be(TIMESTAMP + 9, 8)), (9, b"T2TQA100000042"), (23, be(200, 4)), (27, b"I"))
CANCELED_FIELDS = ouch.Canceled(timestamp=TIMESTAMP + 9, token="T2TQA100000042", decrement_shares=200, reason="I")

REJECTED = wire(24, (0, b"J"), (1, be(TIMESTAMP, 8)), (9, b"T2TQA100000044"), (23, b"X"))
REJECTED_FIELDS = ouch.Rejected(timestamp=TIMESTAMP, token="T2TQA100000044", reason="X")

SYSTEM_EVENT = wire(10, (0, b"S"), (1, be(14_400_000_000_000, 8)), (9, b"S"))
SYSTEM_EVENT_FIELDS = ouch.SystemEvent(timestamp=14_400_000_000_000, event_code="S")

INBOUND_VECTORS = [(ENTER_ORDER, ENTER_ORDER_FIELDS), (REPLACE_ORDER, REPLACE_ORDER_FIELDS),
                   (CANCEL_ORDER, CANCEL_ORDER_FIELDS)]
OUTBOUND_VECTORS = [(ACCEPTED, ACCEPTED_FIELDS), (EXECUTED, EXECUTED_FIELDS), (CANCELED, CANCELED_FIELDS),
                    (REJECTED, REJECTED_FIELDS), (SYSTEM_EVENT, SYSTEM_EVENT_FIELDS)]

LOGIN_REQUEST = wire(
    49, (0, be(47, 2)), (2, b"L"), (3, b"USER01"), (9, b"secret    "), (19, b"SESSION001"),
    (29, b"                  42"))
LOGIN_REQUEST_FIELDS = ouch.LoginRequest(username="USER01", password="secret", session="SESSION001", sequence=42)
LOGIN_ACCEPTED = wire(33, (0, be(31, 2)), (2, b"A"), (3, b"SESSION001"), (13, b"                   1"))
LOGIN_ACCEPTED_FIELDS = ouch.LoginAccepted(session="SESSION001", sequence=1)

CLIENT_VECTORS = [
    (LOGIN_REQUEST, LOGIN_REQUEST_FIELDS),
    (be(50, 2) + b"U" + ENTER_ORDER, ouch.UnsequencedData(ENTER_ORDER)),
    (b"\x00\x01R", ouch.ClientHeartbeat()),
    (b"\x00\x01O", ouch.LogoutRequest()),
    (b"\x00\x06+hello", ouch.Debug(b"hello")),
]
SERVER_VECTORS = [
    (LOGIN_ACCEPTED, LOGIN_ACCEPTED_FIELDS),
    (b"\x00\x02JA", ouch.LoginRejected("A")),
    (be(67, 2) + b"S" + ACCEPTED, ouch.SequencedData(ACCEPTED)),
    (b"\x00\x01H", ouch.ServerHeartbeat()),
    (b"\x00\x01Z", ouch.EndOfSession()),
]


@pytest.mark.parametrize("raw, fields", INBOUND_VECTORS, ids=lambda v: getattr(v, "TYPE", None))
def test_inbound_vector_decodes_to_its_fields_and_encodes_back(raw, fields):
    assert ouch.decode_inbound(raw) == fields
    assert ouch.encode_message(fields) == raw


@pytest.mark.parametrize("raw, fields", OUTBOUND_VECTORS, ids=lambda v: getattr(v, "TYPE", None))
def test_outbound_vector_decodes_to_its_fields_and_encodes_back(raw, fields):
    assert ouch.decode_outbound(raw) == fields
    assert ouch.encode_message(fields) == raw


@pytest.mark.parametrize("raw, fields", CLIENT_VECTORS, ids=lambda v: getattr(v, "TYPE", None))
def test_client_packet_vector_decodes_and_encodes_back(raw, fields):
    assert ouch.decode_client_packet(raw) == fields
    assert ouch.encode_packet(fields) == raw


@pytest.mark.parametrize("raw, fields", SERVER_VECTORS, ids=lambda v: getattr(v, "TYPE", None))
def test_server_packet_vector_decodes_and_encodes_back(raw, fields):
    assert ouch.decode_server_packet(raw) == fields
    assert ouch.encode_packet(fields) == raw


def test_same_letter_means_replace_inbound_and_replaced_outbound():
    replaced = ouch.Replaced(
        timestamp=1, replacement_token="B", side="B", shares=2, stock="X", price=3, time_in_force=4, firm="F",
        display="Y", order_reference=5, capacity="P", intermarket_sweep="N", minimum_quantity=6, cross_type="N",
        order_state="L", previous_token="A", bbo_weight=" ")
    raw = ouch.encode_message(replaced)
    assert len(raw) == 80 and raw[:1] == b"U"
    assert ouch.decode_outbound(raw) == replaced
    with pytest.raises(ouch.OuchFormatError, match="is 47 bytes, got 80"):
        ouch.decode_inbound(raw)


def random_value(rng, name, kind, size):
    if kind == "uint":
        return rng.choice([0, (1 << (8 * size)) - 1, rng.randrange(1 << (8 * size))])
    if kind == "decimal":
        return rng.choice([0, 10 ** size - 1, rng.randrange(10 ** 9)])
    if kind == "char":
        return rng.choice("BSTE") if name == "side" else chr(rng.randrange(0x20, 0x7F))
    if kind == "text":
        # Decoding drops trailing spaces, so a round trip needs a value without them.
        return "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(rng.randrange(size + 1))).rstrip(" ")
    return bytes(rng.randrange(256) for _ in range(rng.randrange(60)))


def random_item(rng, cls):
    return cls(**{item.name: random_value(rng, item.name, *item.metadata["wire"]) for item in dataclasses.fields(cls)})


MESSAGES = {
    ouch.decode_inbound: [ouch.EnterOrder, ouch.ReplaceOrder, ouch.CancelOrder],
    ouch.decode_outbound: [ouch.SystemEvent, ouch.Accepted, ouch.Replaced, ouch.Canceled, ouch.Executed,
                           ouch.Rejected, ouch.BrokenTrade, ouch.CancelPending, ouch.CancelReject],
}
PACKETS = {
    ouch.decode_client_packet: [ouch.LoginRequest, ouch.UnsequencedData, ouch.ClientHeartbeat, ouch.LogoutRequest,
                                ouch.Debug],
    ouch.decode_server_packet: [ouch.LoginAccepted, ouch.LoginRejected, ouch.SequencedData, ouch.ServerHeartbeat,
                                ouch.EndOfSession, ouch.Debug],
}


def test_random_messages_and_packets_round_trip():
    rng = random.Random(1)
    for _ in range(200):
        for decode, classes in MESSAGES.items():
            for cls in classes:
                item = random_item(rng, cls)
                assert decode(ouch.encode_message(item)) == item
        for decode, classes in PACKETS.items():
            for cls in classes:
                item = random_item(rng, cls)
                assert decode(ouch.encode_packet(item)) == item


def test_split_packets_reassembles_a_stream_cut_anywhere():
    packets = [raw for raw, _fields in CLIENT_VECTORS]
    stream = b"".join(packets)
    for cut in range(len(stream) + 1):
        first, rest = ouch.split_packets(stream[:cut])
        second, tail = ouch.split_packets(rest + stream[cut:])
        assert first + second == packets and tail == b""


@pytest.mark.parametrize("raw, message", [
    (b"", "empty inbound OUCH message"),
    (b"Q" + bytes(48), "unknown inbound OUCH message type 'Q'"),
    (ENTER_ORDER[:-1], "EnterOrder 'O' is 49 bytes, got 48"),
    (ENTER_ORDER + b"N", "EnterOrder 'O' is 49 bytes, got 50"),
    (ENTER_ORDER[:20] + b"AA\x00L    " + ENTER_ORDER[28:], "field 'stock' is not printable ASCII"),
    (ENTER_ORDER[:15] + b"X" + ENTER_ORDER[16:], "field 'side' is 'X', not one of BSTE"),
    (ACCEPTED, "unknown inbound OUCH message type 'A'"),
])
def test_malformed_inbound_message_raises_with_the_reason(raw, message):
    with pytest.raises(ouch.OuchFormatError, match=message):
        ouch.decode_inbound(raw)


@pytest.mark.parametrize("raw, message", [
    (b"", "empty outbound OUCH message"),
    (EXECUTED[:30], "Executed 'E' is 40 bytes, got 30"),
    (ENTER_ORDER, "unknown outbound OUCH message type 'O'"),
    (REJECTED[:9] + "T2TQA1ééé".encode() + REJECTED[-3:], "field 'token' is not printable ASCII"),
])
def test_malformed_outbound_message_raises_with_the_reason(raw, message):
    with pytest.raises(ouch.OuchFormatError, match=message):
        ouch.decode_outbound(raw)


@pytest.mark.parametrize("raw, message", [
    (b"\x00\x01", "shorter than a length and a type"),
    (b"\x00\x05R", "length field says 5 bytes after it, got 1"),
    (b"\x00\x02RR", "ClientHeartbeat 'R' is 1 bytes after the length field, got 2"),
    (b"\x00\x01S", "unknown client packet type 'S'"),
    (LOGIN_REQUEST[:-2] + b"4x", "field 'sequence' is not a decimal number"),
    (LOGIN_REQUEST[:-1], "length field says 47 bytes after it, got 46"),
])
def test_malformed_client_packet_raises_with_the_reason(raw, message):
    with pytest.raises(ouch.SoupBinTcpFormatError, match=message):
        ouch.decode_client_packet(raw)


def test_malformed_server_packet_raises_with_the_reason():
    with pytest.raises(ouch.SoupBinTcpFormatError, match="unknown server packet type 'U'"):
        ouch.decode_server_packet(be(50, 2) + b"U" + ENTER_ORDER)
    with pytest.raises(ouch.SoupBinTcpFormatError, match="'A' is 31 bytes after the length field, got 30"):
        ouch.decode_server_packet(be(30, 2) + LOGIN_ACCEPTED[2:-1])


def test_split_packets_refuses_a_zero_length_field():
    with pytest.raises(ouch.SoupBinTcpFormatError, match="length field 0 at stream offset 3"):
        ouch.split_packets(b"\x00\x01R\x00\x00")


@pytest.mark.parametrize("change, message", [
    ({"token": "T2TQA1000000042"}, "field 'token' 'T2TQA1000000042' is longer than 14 characters"),
    ({"stock": "AAPL\n"}, "field 'stock' is not printable ASCII"),
    ({"shares": 1 << 32}, "field 'shares' must be an integer in"),
    ({"price": -1}, "field 'price' must be an integer in"),
    ({"side": "BS"}, "field 'side' must be one character"),
    ({"firm": 1234}, "field 'firm' must be a str"),
])
def test_message_that_does_not_fit_raises_on_encode(change, message):
    with pytest.raises(ouch.OuchFormatError, match=message):
        ouch.encode_message(dataclasses.replace(ENTER_ORDER_FIELDS, **change))


def test_packet_that_does_not_fit_raises_on_encode():
    with pytest.raises(ouch.SoupBinTcpFormatError, match="field 'sequence' must be an integer in"):
        ouch.encode_packet(dataclasses.replace(LOGIN_REQUEST_FIELDS, sequence=10 ** 20))
    with pytest.raises(ouch.SoupBinTcpFormatError, match="does not fit the length field"):
        ouch.encode_packet(ouch.UnsequencedData(bytes(0xFFFF)))
    with pytest.raises(ouch.SoupBinTcpFormatError, match="not a SoupBinTCP packet"):
        ouch.encode_packet(ENTER_ORDER_FIELDS)
    with pytest.raises(ouch.OuchFormatError, match="not an OUCH 4.2 message"):
        ouch.encode_message(ouch.ClientHeartbeat())
