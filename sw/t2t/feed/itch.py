"""Nasdaq TotalView-ITCH 5.0 messages: one frozen dataclass per message type, and their wire codec.

Every message starts with the 11-byte common header (type, stock locate, tracking number, 48-bit timestamp in
nanoseconds since midnight), followed by a fixed body per type. All integers are big-endian unsigned. Prices are
integers: Price(4) fields hold ten-thousandths of a dollar (``1_234_500`` is $123.45), the Price(8) fields of the
MWCB decline level message hold hundred-millionths. Alpha fields decode to ``str`` with the space padding removed;
single-character fields keep their character (a space is a meaningful value there).

The wire layout of each class is declared once, on its fields (:func:`_u32`, :func:`_alpha`, ...), and the codec
is derived from it; at import the derived length is checked against :data:`MESSAGE_LENGTHS`, the table of the
specification.

Example
-------
>>> add = AddOrder(locate=1, tracking=0, timestamp_ns=34_200_000_000_000, order_ref=7, side="B",
...                shares=100, stock="AAPL", price=1_234_500)
>>> decode(encode(add)) == add
True
"""

import dataclasses
import struct
from dataclasses import dataclass, field
from typing import ClassVar

__all__ = [
    "MESSAGE_LENGTHS", "MESSAGE_CLASSES", "HEADER_LENGTH", "PRICE4_SCALE", "MAX_PRICE4",
    "ItchFormatError", "UnknownMessageType", "MessageLengthError", "FieldValueError",
    "ItchMessage", "encode", "decode", "decode_header", "message_length",
    "SystemEvent", "StockDirectory", "StockTradingAction", "RegShoRestriction", "MarketParticipantPosition",
    "MwcbDeclineLevel", "MwcbStatus", "IpoQuotingPeriodUpdate", "LuldAuctionCollar", "OperationalHalt",
    "AddOrder", "AddOrderMpid", "OrderExecuted", "OrderExecutedWithPrice", "OrderCancel", "OrderDelete",
    "OrderReplace", "Trade", "CrossTrade", "BrokenTrade", "NetOrderImbalance", "RetailPriceImprovement",
    "DirectListingCapitalRaise",
]

HEADER_LENGTH = 11
#: One dollar in Price(4) units.
PRICE4_SCALE = 10_000
#: The largest Price(4) the specification allows ($200,000.0000).
MAX_PRICE4 = 200_000 * PRICE4_SCALE

#: Total message length in bytes (header included) of every ITCH 5.0 message type, from the specification.
MESSAGE_LENGTHS = {
    "S": 12, "R": 39, "H": 25, "Y": 20, "L": 26, "V": 35, "W": 12, "K": 28, "J": 35, "h": 21,
    "A": 36, "F": 40, "E": 31, "C": 36, "X": 23, "D": 19, "U": 35, "P": 44, "Q": 40, "B": 19,
    "I": 50, "N": 20, "O": 48,
}

#: Message class of every type letter; filled by :func:`_itch_message` as the classes below are declared.
MESSAGE_CLASSES = {}

# The 48-bit timestamp is packed as a 16-bit high part and a 32-bit low part: struct has no 6-byte integer.
_HEADER_FORMAT = ">sHHHI"


class ItchFormatError(ValueError):
    """Bytes that are not a valid ITCH 5.0 message, or field values that cannot be encoded.

    ``offset`` is the byte offset of the offending message in its stream when a reader knows it, else ``None``;
    readers set it on the way out so that the message names where the problem is.
    """

    def __init__(self, message, *, offset=None):
        super().__init__(message)
        self.offset = offset

    def __str__(self):
        text = super().__str__()
        return text if self.offset is None else f"{text} (at byte offset {self.offset})"


class UnknownMessageType(ItchFormatError):
    """The first byte is not an ITCH 5.0 message type; ``type_byte`` holds it (an ``int``)."""

    def __init__(self, type_byte, *, offset=None):
        super().__init__(f"unknown ITCH message type {_describe_byte(type_byte)}", offset=offset)
        self.type_byte = type_byte


class MessageLengthError(ItchFormatError):
    """A message whose length is not the one its type defines.

    Attributes ``type`` (the type letter), ``expected`` and ``actual`` (lengths in bytes).
    """

    def __init__(self, type_letter, expected, actual, *, offset=None):
        super().__init__(f"ITCH message type {type_letter!r} must be {expected} bytes long, got {actual}",
                         offset=offset)
        self.type = type_letter
        self.expected = expected
        self.actual = actual


class FieldValueError(ItchFormatError):
    """A field value that does not fit its wire field (``field`` names it, ``value`` holds it)."""

    def __init__(self, message_class, field_name, value, reason):
        super().__init__(f"{message_class.__name__}.{field_name} = {value!r}: {reason}")
        self.field = field_name
        self.value = value


def _describe_byte(value):
    char = chr(value)
    return f"{char!r} (0x{value:02x})" if char.isprintable() and value < 0x80 else f"0x{value:02x}"


# Wire kinds, stored in each dataclass field's metadata: a struct code and, for text, the width in bytes.
def _wire(code, text_width=None):
    return field(metadata={"struct": code, "text_width": text_width})


def _u8():
    return _wire("B")


def _u16():
    return _wire("H")


def _u32():
    return _wire("I")


def _u64():
    return _wire("Q")


def _char():
    return _wire("s", 1)


def _alpha(width):
    return _wire(f"{width}s", width)


@dataclass(frozen=True, slots=True)
class ItchMessage:
    """Fields common to every ITCH 5.0 message.

    Attributes
    ----------
    locate : int
        Stock locate code (1..65535 for a stock given by the stock directory, 0 for messages about no stock).
    tracking : int
        Nasdaq internal tracking number.
    timestamp_ns : int
        Nanoseconds since midnight (48 bits).
    type : str
        Class attribute: the one-letter message type.
    length : int
        Class attribute: the message length on the wire, header included.
    """

    type: ClassVar[str]
    length: ClassVar[int]

    locate: int = _u16()
    tracking: int = _u16()
    timestamp_ns: int = field(metadata={"struct": None, "text_width": None})


class _Codec:
    """Packs and unpacks one message class, following the wire kinds declared on its fields."""

    __slots__ = ("message_class", "type_byte", "struct", "body_fields", "text_fields")

    def __init__(self, message_class, type_letter):
        self.message_class = message_class
        self.type_byte = type_letter.encode("ascii")
        body = dataclasses.fields(message_class)[3:]
        self.body_fields = tuple(f.name for f in body)
        self.struct = struct.Struct(_HEADER_FORMAT + "".join(f.metadata["struct"] for f in body))
        # Index into the unpacked body of each text field, with its width, so that only those are converted.
        self.text_fields = tuple((index, f.name, f.metadata["text_width"])
                                 for index, f in enumerate(body) if f.metadata["text_width"])

    def encode(self, message):
        body = [getattr(message, name) for name in self.body_fields]
        for index, name, width in self.text_fields:
            text = body[index]
            try:
                raw = text.encode("latin-1")
            except (AttributeError, UnicodeEncodeError):
                raise FieldValueError(self.message_class, name, text, "not a latin-1 text") from None
            if len(raw) > width:
                raise FieldValueError(self.message_class, name, text, f"longer than {width} bytes")
            body[index] = raw.ljust(width, b" ")
        timestamp = message.timestamp_ns
        if not 0 <= timestamp < 1 << 48:
            raise FieldValueError(self.message_class, "timestamp_ns", timestamp, "not a 48-bit unsigned integer")
        try:
            return self.struct.pack(self.type_byte, message.locate, message.tracking,
                                    timestamp >> 32, timestamp & 0xFFFF_FFFF, *body)
        except struct.error as error:
            raise FieldValueError(self.message_class, *self._first_bad_integer(message), str(error)) from None

    def _first_bad_integer(self, message):
        # struct.error does not say which argument was wrong; find it for the error message.
        for f in dataclasses.fields(self.message_class):
            code = f.metadata["struct"]
            if code in ("B", "H", "I", "Q"):
                value = getattr(message, f.name)
                if not isinstance(value, int) or not 0 <= value < 1 << (8 * struct.calcsize(code)):
                    return f.name, value
        return "?", None

    def decode(self, data):
        _, locate, tracking, time_high, time_low, *body = self.struct.unpack(data)
        for index, _, width in self.text_fields:
            # Alpha fields are space padded on the right; one-character fields keep their (maybe space) value.
            text = body[index].decode("latin-1")
            body[index] = text.rstrip(" ") if width > 1 else text
        return self.message_class(locate, tracking, (time_high << 32) | time_low, *body)


_CODECS_BY_TYPE = {}
_CODECS_BY_CLASS = {}


def _itch_message(type_letter):
    """Register a message class under its type letter, checking its declared layout against the spec length."""

    def register(message_class):
        codec = _Codec(message_class, type_letter)
        if codec.struct.size != MESSAGE_LENGTHS[type_letter]:
            raise AssertionError(f"{message_class.__name__} layout is {codec.struct.size} bytes, the specification "
                                 f"says {MESSAGE_LENGTHS[type_letter]}")
        message_class.type = type_letter
        message_class.length = codec.struct.size
        MESSAGE_CLASSES[type_letter] = message_class
        _CODECS_BY_TYPE[type_letter.encode("ascii")[0]] = codec
        _CODECS_BY_CLASS[message_class] = codec
        return message_class

    return register


@_itch_message("S")
@dataclass(frozen=True, slots=True)
class SystemEvent(ItchMessage):
    """S: system event. ``event_code``: O start of messages, S start of system hours, Q start of market hours,
    M end of market hours, E end of system hours, C end of messages."""

    event_code: str = _char()


@_itch_message("R")
@dataclass(frozen=True, slots=True)
class StockDirectory(ItchMessage):
    """R: stock directory, one per symbol at the start of the day; binds ``stock`` to the header's locate code."""

    stock: str = _alpha(8)
    market_category: str = _char()
    financial_status: str = _char()
    round_lot_size: int = _u32()
    round_lots_only: str = _char()
    issue_classification: str = _char()
    issue_subtype: str = _alpha(2)
    authenticity: str = _char()
    short_sale_threshold: str = _char()
    ipo_flag: str = _char()
    luld_reference_price_tier: str = _char()
    etp_flag: str = _char()
    etp_leverage_factor: int = _u32()
    inverse_indicator: str = _char()


@_itch_message("H")
@dataclass(frozen=True, slots=True)
class StockTradingAction(ItchMessage):
    """H: trading state of a stock. ``trading_state``: H halted, P paused, Q quotation only, T trading."""

    stock: str = _alpha(8)
    trading_state: str = _char()
    reserved: str = _char()
    reason: str = _alpha(4)


@_itch_message("Y")
@dataclass(frozen=True, slots=True)
class RegShoRestriction(ItchMessage):
    """Y: Reg SHO short sale price test restriction. ``action``: 0 none, 1 in effect (intraday), 2 remains."""

    stock: str = _alpha(8)
    action: str = _char()


@_itch_message("L")
@dataclass(frozen=True, slots=True)
class MarketParticipantPosition(ItchMessage):
    """L: market participant position."""

    mpid: str = _alpha(4)
    stock: str = _alpha(8)
    primary_market_maker: str = _char()
    market_maker_mode: str = _char()
    market_participant_state: str = _char()


@_itch_message("V")
@dataclass(frozen=True, slots=True)
class MwcbDeclineLevel(ItchMessage):
    """V: market-wide circuit breaker decline levels, Price(8) (hundred-millionths of a dollar)."""

    level1: int = _u64()
    level2: int = _u64()
    level3: int = _u64()


@_itch_message("W")
@dataclass(frozen=True, slots=True)
class MwcbStatus(ItchMessage):
    """W: market-wide circuit breaker breached (``breached_level`` '1', '2' or '3')."""

    breached_level: str = _char()


@_itch_message("K")
@dataclass(frozen=True, slots=True)
class IpoQuotingPeriodUpdate(ItchMessage):
    """K: IPO quoting period update; ``release_time`` in seconds since midnight, ``ipo_price`` Price(4)."""

    stock: str = _alpha(8)
    release_time: int = _u32()
    release_qualifier: str = _char()
    ipo_price: int = _u32()


@_itch_message("J")
@dataclass(frozen=True, slots=True)
class LuldAuctionCollar(ItchMessage):
    """J: limit up-limit down auction collar, prices in Price(4)."""

    stock: str = _alpha(8)
    reference_price: int = _u32()
    upper_price: int = _u32()
    lower_price: int = _u32()
    extension: int = _u32()


@_itch_message("h")
@dataclass(frozen=True, slots=True)
class OperationalHalt(ItchMessage):
    """h: operational halt of a stock on one market (``market_code``); ``action`` H halted, T resumed."""

    stock: str = _alpha(8)
    market_code: str = _char()
    action: str = _char()


@_itch_message("A")
@dataclass(frozen=True, slots=True)
class AddOrder(ItchMessage):
    """A: a new visible order on the book; ``side`` 'B' buy or 'S' sell, ``price`` Price(4)."""

    order_ref: int = _u64()
    side: str = _char()
    shares: int = _u32()
    stock: str = _alpha(8)
    price: int = _u32()


@_itch_message("F")
@dataclass(frozen=True, slots=True)
class AddOrderMpid(ItchMessage):
    """F: as :class:`AddOrder`, attributed to the market participant ``attribution``."""

    order_ref: int = _u64()
    side: str = _char()
    shares: int = _u32()
    stock: str = _alpha(8)
    price: int = _u32()
    attribution: str = _alpha(4)


@_itch_message("E")
@dataclass(frozen=True, slots=True)
class OrderExecuted(ItchMessage):
    """E: ``executed_shares`` of a resting order traded at the order's own price."""

    order_ref: int = _u64()
    executed_shares: int = _u32()
    match_number: int = _u64()


@_itch_message("C")
@dataclass(frozen=True, slots=True)
class OrderExecutedWithPrice(ItchMessage):
    """C: ``executed_shares`` of a resting order traded at ``price`` (Price(4)), which may differ from the
    order's; the book still reduces the order at its own level. ``printable`` 'Y' or 'N'."""

    order_ref: int = _u64()
    executed_shares: int = _u32()
    match_number: int = _u64()
    printable: str = _char()
    price: int = _u32()


@_itch_message("X")
@dataclass(frozen=True, slots=True)
class OrderCancel(ItchMessage):
    """X: ``cancelled_shares`` removed from a resting order that stays on the book."""

    order_ref: int = _u64()
    cancelled_shares: int = _u32()


@_itch_message("D")
@dataclass(frozen=True, slots=True)
class OrderDelete(ItchMessage):
    """D: a resting order leaves the book."""

    order_ref: int = _u64()


@_itch_message("U")
@dataclass(frozen=True, slots=True)
class OrderReplace(ItchMessage):
    """U: ``order_ref`` leaves the book and ``new_order_ref`` enters it with ``shares`` at ``price``,
    keeping the original's side and stock."""

    order_ref: int = _u64()
    new_order_ref: int = _u64()
    shares: int = _u32()
    price: int = _u32()


@_itch_message("P")
@dataclass(frozen=True, slots=True)
class Trade(ItchMessage):
    """P: execution of a non-displayed order; does not touch the visible book (``order_ref`` is usually 0)."""

    order_ref: int = _u64()
    side: str = _char()
    shares: int = _u32()
    stock: str = _alpha(8)
    price: int = _u32()
    match_number: int = _u64()


@_itch_message("Q")
@dataclass(frozen=True, slots=True)
class CrossTrade(ItchMessage):
    """Q: bulk print of a cross (``cross_type`` O opening, C closing, H IPO/halt, I intraday); not on the book."""

    shares: int = _u64()
    stock: str = _alpha(8)
    cross_price: int = _u32()
    match_number: int = _u64()
    cross_type: str = _char()


@_itch_message("B")
@dataclass(frozen=True, slots=True)
class BrokenTrade(ItchMessage):
    """B: the execution ``match_number`` was broken."""

    match_number: int = _u64()


@_itch_message("I")
@dataclass(frozen=True, slots=True)
class NetOrderImbalance(ItchMessage):
    """I: net order imbalance indicator before a cross; prices in Price(4)."""

    paired_shares: int = _u64()
    imbalance_shares: int = _u64()
    imbalance_direction: str = _char()
    stock: str = _alpha(8)
    far_price: int = _u32()
    near_price: int = _u32()
    current_reference_price: int = _u32()
    cross_type: str = _char()
    price_variation_indicator: str = _char()


@_itch_message("N")
@dataclass(frozen=True, slots=True)
class RetailPriceImprovement(ItchMessage):
    """N: retail price improvement indicator (``interest_flag`` B buy, S sell, A both, N none)."""

    stock: str = _alpha(8)
    interest_flag: str = _char()


@_itch_message("O")
@dataclass(frozen=True, slots=True)
class DirectListingCapitalRaise(ItchMessage):
    """O: direct listing with capital raise price discovery; prices in Price(4), ``near_execution_time`` in
    nanoseconds since midnight."""

    stock: str = _alpha(8)
    open_eligibility_status: str = _char()
    minimum_allowable_price: int = _u32()
    maximum_allowable_price: int = _u32()
    near_execution_price: int = _u32()
    near_execution_time: int = _u64()
    lower_price_range_collar: int = _u32()
    upper_price_range_collar: int = _u32()


if MESSAGE_CLASSES.keys() != MESSAGE_LENGTHS.keys():
    raise AssertionError(f"message types without a class: {sorted(MESSAGE_LENGTHS.keys() - MESSAGE_CLASSES.keys())}")


def message_length(type_letter):
    """Length in bytes (header included) of the ITCH message type ``type_letter`` (a 1-character ``str``).

    Raises
    ------
    UnknownMessageType
        ``type_letter`` is not an ITCH 5.0 message type.
    """
    try:
        return MESSAGE_LENGTHS[type_letter]
    except KeyError:
        raise UnknownMessageType(ord(type_letter[:1] or "\0")) from None


def encode(message):
    """Serialize ``message`` (an instance of one of the message classes) to its wire bytes.

    Raises
    ------
    FieldValueError
        A field does not fit its wire field: an integer out of range, a text too long or not latin-1.
    TypeError
        ``message`` is not an ITCH message object.
    """
    codec = _CODECS_BY_CLASS.get(message.__class__)
    if codec is None:
        raise TypeError(f"not an ITCH message: {message!r}")
    return codec.encode(message)


def decode(data):
    """Parse one ITCH message from ``data`` (bytes-like, exactly one message, no length prefix).

    Returns
    -------
    ItchMessage
        An instance of the class registered for the type letter in ``data[0]``.

    Raises
    ------
    UnknownMessageType
        ``data`` is empty or its first byte is not an ITCH 5.0 type.
    MessageLengthError
        ``len(data)`` is not the length of that type.
    """
    if not data:
        raise MessageLengthError("?", HEADER_LENGTH, 0)
    codec = _CODECS_BY_TYPE.get(data[0])
    if codec is None:
        raise UnknownMessageType(data[0])
    if len(data) != codec.struct.size:
        raise MessageLengthError(codec.message_class.type, codec.struct.size, len(data))
    return codec.decode(data)


def decode_header(data):
    """Parse only the common header of ``data``: ``(type, locate, tracking, timestamp_ns)``.

    Works for any type letter, known or not, as long as the 11 header bytes are present.

    Raises
    ------
    MessageLengthError
        ``data`` is shorter than the header.
    """
    if len(data) < HEADER_LENGTH:
        raise MessageLengthError(chr(data[0]) if data else "?", HEADER_LENGTH, len(data))
    type_byte, locate, tracking, time_high, time_low = struct.unpack_from(_HEADER_FORMAT, data)
    return type_byte.decode("latin-1"), locate, tracking, (time_high << 32) | time_low
