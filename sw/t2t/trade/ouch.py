"""OUCH 4.2 order entry messages and the SoupBinTCP 3.00 packets that carry them: decoders and encoders.

A SoupBinTCP packet is a 2-byte big-endian length (type + payload), a type letter and a payload. The client sends
L (login request), U (unsequenced data: an inbound OUCH message), R (heartbeat), O (logout); the server sends
A (login accepted), J (login rejected), S (sequenced data: an outbound OUCH message), H (heartbeat), Z (end of
session); both may send + (debug text).

OUCH 4.2 messages start with a type letter. Inbound (client to exchange): Enter Order O, Replace Order U, Cancel
Order X. Outbound (exchange to client), each with an 8-byte timestamp (ns since midnight) after the type: System
Event S, Accepted A, Replaced U, Canceled C, Executed E, Rejected J, Broken Trade B, Cancel Pending P, Cancel Reject
I. Integers are big-endian unsigned, prices Price(4) integer ticks; text fields are left-justified and space
padded, and decode without the padding. SoupBinTCP's numeric login fields are ASCII decimal, right-justified.

Decoding and encoding are separate functions, sharing only the field tables: the gateware's bytes are checked with
:func:`decode_client_packet` and :func:`decode_inbound`, the exchange simulator produces replies with
:func:`encode_message` and :func:`encode_packet`. Malformed input raises :class:`SoupBinTcpFormatError` or
:class:`OuchFormatError`, saying which packet or message, which field and why.
"""

import struct
from dataclasses import dataclass, field, fields
from typing import ClassVar

__all__ = [
    "OuchFormatError", "SoupBinTcpFormatError",
    "LoginRequest", "UnsequencedData", "ClientHeartbeat", "LogoutRequest",
    "LoginAccepted", "LoginRejected", "SequencedData", "ServerHeartbeat", "EndOfSession", "Debug",
    "EnterOrder", "ReplaceOrder", "CancelOrder",
    "SystemEvent", "Accepted", "Replaced", "Canceled", "Executed", "Rejected", "BrokenTrade", "CancelPending",
    "CancelReject",
    "decode_client_packet", "decode_server_packet", "split_packets", "encode_packet",
    "decode_inbound", "decode_outbound", "encode_message",
]


class SoupBinTcpFormatError(ValueError):
    """Bytes that are not a well-formed SoupBinTCP 3.00 packet (the message says why)."""


class OuchFormatError(ValueError):
    """Bytes that are not a well-formed OUCH 4.2 message, or a message that cannot be encoded (the message says
    why)."""


# Wire kinds of a field: text (left-justified, space padded), one character (kept as is: a space can mean
# something), big-endian unsigned integer, SoupBinTCP ASCII decimal (right-justified), and the rest of the packet.
_TEXT, _CHAR, _UINT, _DECIMAL, _REST = "text", "char", "uint", "decimal", "rest"


def _wire(kind, size=0):
    return field(metadata={"wire": (kind, size)})


def _text(size):
    return _wire(_TEXT, size)


def _char():
    return _wire(_CHAR, 1)


def _uint(size):
    return _wire(_UINT, size)


def _layout(cls):
    return [(item.name, *item.metadata["wire"]) for item in fields(cls)]


def _is_fixed(cls):
    return all(kind != _REST for _name, kind, _size in _layout(cls))


def _body_size(cls):
    """Bytes after the type letter (the minimum for a variable-length packet)."""
    return sum(size for _name, _kind, size in _layout(cls))


def _describe(cls):
    return f"{cls.__name__} {cls.TYPE!r}"


# --- SoupBinTCP packets -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """Client L: log in to ``session`` (blank: the current one) from message ``sequence`` (0: the newest)."""
    TYPE: ClassVar[str] = "L"
    username: str = _text(6)
    password: str = _text(10)
    session: str = _text(10)
    sequence: int = _wire(_DECIMAL, 20)


@dataclass(frozen=True, slots=True)
class UnsequencedData:
    """Client U: one inbound OUCH message."""
    TYPE: ClassVar[str] = "U"
    payload: bytes = _wire(_REST)


@dataclass(frozen=True, slots=True)
class ClientHeartbeat:
    TYPE: ClassVar[str] = "R"


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    TYPE: ClassVar[str] = "O"


@dataclass(frozen=True, slots=True)
class LoginAccepted:
    """Server A: logged in to ``session``; ``sequence`` is the number of the next sequenced message."""
    TYPE: ClassVar[str] = "A"
    session: str = _text(10)
    sequence: int = _wire(_DECIMAL, 20)


@dataclass(frozen=True, slots=True)
class LoginRejected:
    """Server J: ``reason`` 'A' (not authorized) or 'S' (session not available)."""
    TYPE: ClassVar[str] = "J"
    reason: str = _char()


@dataclass(frozen=True, slots=True)
class SequencedData:
    """Server S: one outbound OUCH message."""
    TYPE: ClassVar[str] = "S"
    payload: bytes = _wire(_REST)


@dataclass(frozen=True, slots=True)
class ServerHeartbeat:
    TYPE: ClassVar[str] = "H"


@dataclass(frozen=True, slots=True)
class EndOfSession:
    TYPE: ClassVar[str] = "Z"


@dataclass(frozen=True, slots=True)
class Debug:
    """+ from either side: free text."""
    TYPE: ClassVar[str] = "+"
    text: bytes = _wire(_REST)


_CLIENT_PACKETS = {cls.TYPE: cls for cls in (LoginRequest, UnsequencedData, ClientHeartbeat, LogoutRequest, Debug)}
_SERVER_PACKETS = {cls.TYPE: cls for cls in (LoginAccepted, LoginRejected, SequencedData, ServerHeartbeat,
                                             EndOfSession, Debug)}
_PACKET_LENGTH = struct.Struct(">H")


# --- OUCH 4.2 messages ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnterOrder:
    """Inbound O (49 bytes). ``side`` B/S/T/E; ``time_in_force`` 0 = IOC, 99998 market hours, 99999 system hours."""
    TYPE: ClassVar[str] = "O"
    token: str = _text(14)
    side: str = _char()
    shares: int = _uint(4)
    stock: str = _text(8)
    price: int = _uint(4)
    time_in_force: int = _uint(4)
    firm: str = _text(4)
    display: str = _char()
    capacity: str = _char()
    intermarket_sweep: str = _char()
    minimum_quantity: int = _uint(4)
    cross_type: str = _char()
    customer_type: str = _char()


@dataclass(frozen=True, slots=True)
class ReplaceOrder:
    """Inbound U (47 bytes)."""
    TYPE: ClassVar[str] = "U"
    existing_token: str = _text(14)
    replacement_token: str = _text(14)
    shares: int = _uint(4)
    price: int = _uint(4)
    time_in_force: int = _uint(4)
    display: str = _char()
    intermarket_sweep: str = _char()
    minimum_quantity: int = _uint(4)


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Inbound X (19 bytes): ``shares`` is the new size; 0 cancels the whole order."""
    TYPE: ClassVar[str] = "X"
    token: str = _text(14)
    shares: int = _uint(4)


@dataclass(frozen=True, slots=True)
class SystemEvent:
    """Outbound S (10 bytes): ``event_code`` 'S' start of day, 'E' end of day."""
    TYPE: ClassVar[str] = "S"
    timestamp: int = _uint(8)
    event_code: str = _char()


@dataclass(frozen=True, slots=True)
class Accepted:
    """Outbound A (66 bytes)."""
    TYPE: ClassVar[str] = "A"
    timestamp: int = _uint(8)
    token: str = _text(14)
    side: str = _char()
    shares: int = _uint(4)
    stock: str = _text(8)
    price: int = _uint(4)
    time_in_force: int = _uint(4)
    firm: str = _text(4)
    display: str = _char()
    order_reference: int = _uint(8)
    capacity: str = _char()
    intermarket_sweep: str = _char()
    minimum_quantity: int = _uint(4)
    cross_type: str = _char()
    order_state: str = _char()
    bbo_weight: str = _char()


@dataclass(frozen=True, slots=True)
class Replaced:
    """Outbound U (80 bytes)."""
    TYPE: ClassVar[str] = "U"
    timestamp: int = _uint(8)
    replacement_token: str = _text(14)
    side: str = _char()
    shares: int = _uint(4)
    stock: str = _text(8)
    price: int = _uint(4)
    time_in_force: int = _uint(4)
    firm: str = _text(4)
    display: str = _char()
    order_reference: int = _uint(8)
    capacity: str = _char()
    intermarket_sweep: str = _char()
    minimum_quantity: int = _uint(4)
    cross_type: str = _char()
    order_state: str = _char()
    previous_token: str = _text(14)
    bbo_weight: str = _char()


@dataclass(frozen=True, slots=True)
class Canceled:
    """Outbound C (28 bytes): ``decrement_shares`` taken off the order, for ``reason``."""
    TYPE: ClassVar[str] = "C"
    timestamp: int = _uint(8)
    token: str = _text(14)
    decrement_shares: int = _uint(4)
    reason: str = _char()


@dataclass(frozen=True, slots=True)
class Executed:
    """Outbound E (40 bytes)."""
    TYPE: ClassVar[str] = "E"
    timestamp: int = _uint(8)
    token: str = _text(14)
    shares: int = _uint(4)
    price: int = _uint(4)
    liquidity_flag: str = _char()
    match_number: int = _uint(8)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Outbound J (24 bytes)."""
    TYPE: ClassVar[str] = "J"
    timestamp: int = _uint(8)
    token: str = _text(14)
    reason: str = _char()


@dataclass(frozen=True, slots=True)
class BrokenTrade:
    """Outbound B (32 bytes)."""
    TYPE: ClassVar[str] = "B"
    timestamp: int = _uint(8)
    token: str = _text(14)
    match_number: int = _uint(8)
    reason: str = _char()


@dataclass(frozen=True, slots=True)
class CancelPending:
    """Outbound P (23 bytes)."""
    TYPE: ClassVar[str] = "P"
    timestamp: int = _uint(8)
    token: str = _text(14)


@dataclass(frozen=True, slots=True)
class CancelReject:
    """Outbound I (23 bytes)."""
    TYPE: ClassVar[str] = "I"
    timestamp: int = _uint(8)
    token: str = _text(14)


_INBOUND = {cls.TYPE: cls for cls in (EnterOrder, ReplaceOrder, CancelOrder)}
_OUTBOUND = {cls.TYPE: cls for cls in (SystemEvent, Accepted, Replaced, Canceled, Executed, Rejected, BrokenTrade,
                                       CancelPending, CancelReject)}
_SIDES = "BSTE"


# --- Decoding ---------------------------------------------------------------------------------------------------


def _decode_text(raw, where, error):
    if not all(0x20 <= byte < 0x7F for byte in raw):
        raise error(f"{where} is not printable ASCII: {raw!r}")
    return raw.decode("ascii")


def _decode_body(cls, body, error):
    """The fields of ``cls`` from ``body`` (the bytes after the type letter), whose length the caller checked."""
    values, offset = {}, 0
    for name, kind, size in _layout(cls):
        where = f"{_describe(cls)} field {name!r}"
        raw = body[offset:] if kind == _REST else body[offset:offset + size]
        offset += len(raw)
        if kind == _UINT:
            values[name] = int.from_bytes(raw, "big")
        elif kind == _TEXT:
            values[name] = _decode_text(raw, where, error).rstrip(" ")
        elif kind == _CHAR:
            values[name] = _decode_text(raw, where, error)
        elif kind == _DECIMAL:
            digits = _decode_text(raw, where, error).strip(" ")
            if not digits.isdigit():
                raise error(f"{where} is not a decimal number: {raw!r}")
            values[name] = int(digits)
        else:
            values[name] = bytes(raw)
    return cls(**values)


def _decode_typed(table, buffer, direction, error, counted=""):
    buffer = bytes(buffer)
    if not buffer:
        raise error(f"empty {direction}")
    letter = chr(buffer[0])
    cls = table.get(letter)
    if cls is None:
        raise error(f"unknown {direction} type {letter!r} (known: {''.join(table)})")
    body = buffer[1:]
    if _is_fixed(cls) and len(body) != _body_size(cls):
        raise error(f"{_describe(cls)} is {1 + _body_size(cls)} bytes{counted}, got {len(buffer)}")
    return cls, _decode_body(cls, body, error)


def _decode_packet(table, packet, direction):
    packet = bytes(packet)
    if len(packet) < 3:
        raise SoupBinTcpFormatError(f"{direction} of {len(packet)} bytes is shorter than a length and a type")
    (length,) = _PACKET_LENGTH.unpack_from(packet)
    if length != len(packet) - 2:
        raise SoupBinTcpFormatError(f"{direction} length field says {length} bytes after it, got {len(packet) - 2}")
    _cls, decoded = _decode_typed(table, packet[2:], direction, SoupBinTcpFormatError, " after the length field")
    return decoded


def decode_client_packet(packet):
    """Decode one whole SoupBinTCP packet sent by a client (length field included).

    Raises
    ------
    SoupBinTcpFormatError
        The length field disagrees with the packet's size, the type is not a client type, the size is wrong for
        the type, or a login field is not printable ASCII (decimal for the sequence number).
    """
    return _decode_packet(_CLIENT_PACKETS, packet, "client packet")


def decode_server_packet(packet):
    """Decode one whole SoupBinTCP packet sent by a server (length field included); raises as
    :func:`decode_client_packet`."""
    return _decode_packet(_SERVER_PACKETS, packet, "server packet")


def split_packets(stream):
    """Split TCP stream bytes into whole SoupBinTCP packets (still encoded, length field included).

    Returns ``(packets, rest)``: the complete packets in order, and the bytes of an incomplete one at the end.

    Raises
    ------
    SoupBinTcpFormatError
        A length field of 0 (a packet must have a type).
    """
    stream = bytes(stream)
    packets, offset = [], 0
    while len(stream) - offset >= _PACKET_LENGTH.size:
        (length,) = _PACKET_LENGTH.unpack_from(stream, offset)
        if length == 0:
            raise SoupBinTcpFormatError(f"length field 0 at stream offset {offset}: a packet has at least a type")
        end = offset + _PACKET_LENGTH.size + length
        if end > len(stream):
            break
        packets.append(stream[offset:end])
        offset = end
    return packets, stream[offset:]


def _decode_message(table, message, direction):
    cls, decoded = _decode_typed(table, message, direction, OuchFormatError)
    if cls in (EnterOrder, Accepted, Replaced) and decoded.side not in _SIDES:
        raise OuchFormatError(f"{_describe(cls)} field 'side' is {decoded.side!r}, not one of {_SIDES}")
    return decoded


def decode_inbound(message):
    """Decode one inbound OUCH 4.2 message (client to exchange: O, U, X).

    Raises
    ------
    OuchFormatError
        The type is unknown, the size is wrong for the type, a text field is not printable ASCII or the side of an
        Enter Order is not B, S, T or E.
    """
    return _decode_message(_INBOUND, message, "inbound OUCH message")


def decode_outbound(message):
    """Decode one outbound OUCH 4.2 message (exchange to client: S, A, U, C, E, J, B, P, I); raises as
    :func:`decode_inbound`."""
    return _decode_message(_OUTBOUND, message, "outbound OUCH message")


# --- Encoding ---------------------------------------------------------------------------------------------------


def _encode_text(value, size, where, error):
    if not isinstance(value, str):
        raise error(f"{where} must be a str, not {type(value).__name__}")
    if not all(" " <= char <= "~" for char in value):
        raise error(f"{where} is not printable ASCII: {value!r}")
    if len(value) > size:
        raise error(f"{where} {value!r} is longer than {size} characters")
    return value.encode("ascii")


def _encode_body(item, error):
    cls = type(item)
    parts = [cls.TYPE.encode("ascii")]
    for name, kind, size in _layout(cls):
        value = getattr(item, name)
        where = f"{_describe(cls)} field {name!r}"
        if kind == _UINT:
            if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
                raise error(f"{where} must be an integer in [0, 2**{8 * size}), not {value!r}")
            parts.append(value.to_bytes(size, "big"))
        elif kind == _TEXT:
            parts.append(_encode_text(value, size, where, error).ljust(size, b" "))
        elif kind == _CHAR:
            if not isinstance(value, str) or len(value) != 1:
                raise error(f"{where} must be one character, not {value!r}")
            parts.append(_encode_text(value, size, where, error))
        elif kind == _DECIMAL:
            if not isinstance(value, int) or not 0 <= value < 10 ** size:
                raise error(f"{where} must be an integer in [0, 10**{size}), not {value!r}")
            parts.append(str(value).rjust(size).encode("ascii"))
        else:
            if not isinstance(value, (bytes, bytearray)):
                raise error(f"{where} must be bytes, not {type(value).__name__}")
            parts.append(bytes(value))
    return b"".join(parts)


def encode_packet(packet):
    """Encode a SoupBinTCP packet (any of the packet dataclasses), length field included.

    Raises
    ------
    SoupBinTcpFormatError
        A field does not fit (text too long or not printable ASCII, sequence number over 20 digits) or the packet
        is longer than 65535 bytes after the length field.
    """
    if type(packet) not in (_CLIENT_PACKETS | _SERVER_PACKETS).values():
        raise SoupBinTcpFormatError(f"not a SoupBinTCP packet: {packet!r}")
    body = _encode_body(packet, SoupBinTcpFormatError)
    if len(body) > 0xFFFF:
        raise SoupBinTcpFormatError(f"{_describe(type(packet))} of {len(body)} bytes does not fit the length field")
    return _PACKET_LENGTH.pack(len(body)) + body


def encode_message(message):
    """Encode an OUCH 4.2 message (any of the inbound or outbound message dataclasses).

    Raises
    ------
    OuchFormatError
        A field does not fit: an integer out of range, text too long or not printable ASCII, a character field
        that is not exactly one character.
    """
    if type(message) not in (*_INBOUND.values(), *_OUTBOUND.values()):
        raise OuchFormatError(f"not an OUCH 4.2 message: {message!r}")
    return _encode_body(message, OuchFormatError)
