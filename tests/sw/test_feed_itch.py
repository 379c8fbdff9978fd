"""ITCH 5.0 codec: byte vectors built by hand from the specification's offsets, and round trips of every type."""

import dataclasses
import struct

import pytest

from t2t.feed import itch
from t2t.feed.itch import (
    MESSAGE_CLASSES, MESSAGE_LENGTHS, AddOrder, AddOrderMpid, CrossTrade, FieldValueError, ItchFormatError,
    MessageLengthError, OrderCancel, OrderDelete, OrderExecuted, OrderExecutedWithPrice, OrderReplace,
    StockDirectory, StockTradingAction, SystemEvent, Trade, UnknownMessageType, decode, decode_header, encode,
)

TIMESTAMP = 34_200_123_456_789          # 09:30:00.123456789
LOCATE, TRACKING = 0x0102, 0x0304


def header(letter):
    """The 11-byte common header, with the 48-bit timestamp written as 6 big-endian bytes."""
    return struct.pack(">cHH", letter.encode(), LOCATE, TRACKING) + TIMESTAMP.to_bytes(6, "big")


SPEC_LENGTHS = {
    "S": 12, "R": 39, "H": 25, "Y": 20, "L": 26, "V": 35, "W": 12, "K": 28, "J": 35, "h": 21, "A": 36, "F": 40,
    "E": 31, "C": 36, "X": 23, "D": 19, "U": 35, "P": 44, "Q": 40, "B": 19, "I": 50, "N": 20, "O": 48,
}

# (raw bytes laid out by hand from PROTOCOLS.md offsets, the message they must decode to)
HAND_VECTORS = {
    "S": (header("S") + b"Q",
          SystemEvent(LOCATE, TRACKING, TIMESTAMP, event_code="Q")),
    "R": (header("R") + b"AAPL    " + b"QN" + struct.pack(">I", 100) + b"NCZ PN 1N" + struct.pack(">I", 0) + b"N",
          StockDirectory(LOCATE, TRACKING, TIMESTAMP, stock="AAPL", market_category="Q", financial_status="N",
                         round_lot_size=100, round_lots_only="N", issue_classification="C", issue_subtype="Z",
                         authenticity="P", short_sale_threshold="N", ipo_flag=" ", luld_reference_price_tier="1",
                         etp_flag="N", etp_leverage_factor=0, inverse_indicator="N")),
    "H": (header("H") + b"MSFT    " + b"H" + b" " + b"T1  ",
          StockTradingAction(LOCATE, TRACKING, TIMESTAMP, stock="MSFT", trading_state="H", reserved=" ",
                             reason="T1")),
    "A": (header("A") + struct.pack(">Q", 0x1122334455667788) + b"B" + struct.pack(">I", 300) + b"AAPL    "
          + struct.pack(">I", 1_234_500),
          AddOrder(LOCATE, TRACKING, TIMESTAMP, order_ref=0x1122334455667788, side="B", shares=300, stock="AAPL",
                   price=1_234_500)),
    "F": (header("F") + struct.pack(">Q", 9) + b"S" + struct.pack(">I", 50) + b"GOOGL   " + struct.pack(">I", 99)
          + b"VIRT",
          AddOrderMpid(LOCATE, TRACKING, TIMESTAMP, order_ref=9, side="S", shares=50, stock="GOOGL", price=99,
                       attribution="VIRT")),
    "E": (header("E") + struct.pack(">QIQ", 9, 25, 0xABCDEF),
          OrderExecuted(LOCATE, TRACKING, TIMESTAMP, order_ref=9, executed_shares=25, match_number=0xABCDEF)),
    "C": (header("C") + struct.pack(">QIQ", 9, 25, 77) + b"Y" + struct.pack(">I", 1_000_100),
          OrderExecutedWithPrice(LOCATE, TRACKING, TIMESTAMP, order_ref=9, executed_shares=25, match_number=77,
                                 printable="Y", price=1_000_100)),
    "X": (header("X") + struct.pack(">QI", 9, 10),
          OrderCancel(LOCATE, TRACKING, TIMESTAMP, order_ref=9, cancelled_shares=10)),
    "D": (header("D") + struct.pack(">Q", 9),
          OrderDelete(LOCATE, TRACKING, TIMESTAMP, order_ref=9)),
    "U": (header("U") + struct.pack(">QQII", 9, 10, 200, 500_000),
          OrderReplace(LOCATE, TRACKING, TIMESTAMP, order_ref=9, new_order_ref=10, shares=200, price=500_000)),
    "P": (header("P") + struct.pack(">Q", 0) + b"S" + struct.pack(">I", 100) + b"IBM     "
          + struct.pack(">IQ", 1_500_000, 78),
          Trade(LOCATE, TRACKING, TIMESTAMP, order_ref=0, side="S", shares=100, stock="IBM", price=1_500_000,
                match_number=78)),
    "Q": (header("Q") + struct.pack(">Q", 1_000_000) + b"TSLA    " + struct.pack(">IQ", 2_000_000, 79) + b"O",
          CrossTrade(LOCATE, TRACKING, TIMESTAMP, shares=1_000_000, stock="TSLA", cross_price=2_000_000,
                     match_number=79, cross_type="O")),
}


def sample_message(message_class):
    """An instance of ``message_class`` whose fields all differ from one another and from the padding."""
    values = []
    for number, f in enumerate(dataclasses.fields(message_class)[3:], start=1):
        width = f.metadata["text_width"]
        if width == 1:
            values.append(chr(ord("A") + number))
        elif width:
            values.append(f"Z{number}"[:width])
        else:
            bits = 8 * struct.calcsize(f.metadata["struct"])
            values.append((0x5A5A5A5A5A5A5A5A + number) & ((1 << bits) - 1))
    return message_class(LOCATE, TRACKING, TIMESTAMP, *values)


def test_length_table_matches_the_specification():
    assert MESSAGE_LENGTHS == SPEC_LENGTHS
    assert set(MESSAGE_CLASSES) == set(SPEC_LENGTHS)


@pytest.mark.parametrize("letter", sorted(HAND_VECTORS))
def test_decode_of_hand_built_bytes_gives_the_fields_at_spec_offsets(letter):
    raw, expected = HAND_VECTORS[letter]
    assert len(raw) == SPEC_LENGTHS[letter]
    assert decode(raw) == expected


@pytest.mark.parametrize("letter", sorted(HAND_VECTORS))
def test_encode_gives_the_hand_built_bytes(letter):
    raw, message = HAND_VECTORS[letter]
    assert encode(message) == raw


@pytest.mark.parametrize("letter", sorted(SPEC_LENGTHS))
def test_every_type_round_trips_with_its_spec_length(letter):
    message = sample_message(MESSAGE_CLASSES[letter])
    raw = encode(message)
    assert raw[0:1] == letter.encode()
    assert len(raw) == SPEC_LENGTHS[letter] == message.length
    assert message.type == letter
    assert decode(raw) == message


def test_decode_accepts_memoryview_and_bytearray():
    raw, expected = HAND_VECTORS["A"]
    assert decode(memoryview(raw)) == expected
    assert decode(bytearray(raw)) == expected


def test_header_fields_and_largest_timestamp_round_trip():
    message = OrderDelete(locate=0xFFFF, tracking=0xFFFF, timestamp_ns=(1 << 48) - 1, order_ref=(1 << 64) - 1)
    raw = encode(message)
    assert raw == b"D" + b"\xff" * 18
    assert decode(raw) == message


def test_alpha_fields_are_stripped_but_single_characters_keep_spaces():
    raw, _ = HAND_VECTORS["R"]
    directory = decode(raw)
    assert directory.stock == "AAPL"
    assert directory.ipo_flag == " "


def test_decode_header_works_for_any_type():
    raw, _ = HAND_VECTORS["E"]
    assert decode_header(raw) == ("E", LOCATE, TRACKING, TIMESTAMP)
    assert decode_header(b"z" + raw[1:11]) == ("z", LOCATE, TRACKING, TIMESTAMP)
    with pytest.raises(MessageLengthError):
        decode_header(raw[:10])


def test_unknown_type_raises_unknown_message_type_with_the_byte():
    with pytest.raises(UnknownMessageType) as caught:
        decode(b"z" + bytes(20))
    assert caught.value.type_byte == ord("z")
    assert isinstance(caught.value, ItchFormatError)
    assert "'z'" in str(caught.value)


@pytest.mark.parametrize("delta", [-1, +1])
def test_length_disagreeing_with_type_raises_message_length_error(delta):
    raw, _ = HAND_VECTORS["A"]
    data = raw[:delta] if delta < 0 else raw + b"\0"
    with pytest.raises(MessageLengthError) as caught:
        decode(data)
    assert (caught.value.type, caught.value.expected, caught.value.actual) == ("A", 36, 36 + delta)


def test_empty_input_is_a_length_error():
    with pytest.raises(MessageLengthError):
        decode(b"")


@pytest.mark.parametrize("change, field_name", [
    ({"stock": "TOOLONGSYM"}, "stock"),
    ({"shares": -1}, "shares"),
    ({"price": 1 << 32}, "price"),
    ({"timestamp_ns": 1 << 48}, "timestamp_ns"),
    ({"stock": "\u20ac"}, "stock"),
])
def test_encode_refuses_values_that_do_not_fit(change, field_name):
    _, message = HAND_VECTORS["A"]
    with pytest.raises(FieldValueError) as caught:
        encode(dataclasses.replace(message, **change))
    assert caught.value.field == field_name


def test_encode_refuses_non_messages():
    with pytest.raises(TypeError):
        encode(("A", 1, 2))


def test_message_length_lookup():
    assert itch.message_length("O") == 48
    with pytest.raises(UnknownMessageType):
        itch.message_length("?")


def test_messages_of_different_types_with_equal_fields_are_not_equal():
    assert OrderDelete(1, 2, 3, order_ref=4) != itch.BrokenTrade(1, 2, 3, match_number=4)


def test_messages_are_frozen():
    _, message = HAND_VECTORS["D"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.order_ref = 5
