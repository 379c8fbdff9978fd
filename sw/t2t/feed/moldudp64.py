"""MoldUDP64 downstream packets: codec, a packer that groups messages into packets, and a receiver model.

A downstream packet (the UDP payload) is a 20-byte header - session (10 bytes, alpha), sequence number of the
first message (8), message count (2) - followed by ``count`` message blocks, each a 2-byte length and the
message. Count 0 is a heartbeat whose sequence is the next one to be sent; count ``0xFFFF`` ends the session.

:class:`MoldUdp64Arbiter` is the reference model of the card's receive side: it merges the A and B copies of a
feed (the first copy of each sequence number wins), detects gaps, and counts what it throws away.
"""

import struct
from dataclasses import dataclass, field

__all__ = [
    "HEADER_LENGTH", "SESSION_LENGTH", "END_OF_SESSION_COUNT", "DEFAULT_MAX_PAYLOAD",
    "MoldFormatError", "MoldPacket", "encode_packet", "decode_packet", "pack_messages",
    "ArbiterCounters", "MoldUdp64Arbiter",
]

SESSION_LENGTH = 10
HEADER_LENGTH = 20
END_OF_SESSION_COUNT = 0xFFFF
#: Default largest UDP payload: fits a 1500-byte Ethernet MTU with IPv4 and UDP headers and room to spare.
DEFAULT_MAX_PAYLOAD = 1400
# The largest count a data packet may carry; 0xFFFF means end of session.
_MAX_COUNT = END_OF_SESSION_COUNT - 1

_HEADER = struct.Struct(">10sQH")
_BLOCK_LENGTH = struct.Struct(">H")


class MoldFormatError(ValueError):
    """A UDP payload that is not a well-formed MoldUDP64 downstream packet (the message says why)."""


@dataclass(frozen=True, slots=True)
class MoldPacket:
    """One MoldUDP64 downstream packet.

    Attributes
    ----------
    session : str
        Session name, up to 10 characters (space padding removed).
    sequence : int
        Sequence number of the first message; for a heartbeat or end of session, the next sequence number.
    messages : tuple of bytes
        The messages, in sequence order; empty for a heartbeat or end of session.
    end_of_session : bool
        The packet ends the session (count ``0xFFFF`` on the wire; it carries no messages).
    """

    session: str
    sequence: int
    messages: tuple = ()
    end_of_session: bool = False

    @property
    def count(self):
        """The message count field as sent on the wire."""
        return END_OF_SESSION_COUNT if self.end_of_session else len(self.messages)

    @property
    def is_heartbeat(self):
        return not self.end_of_session and not self.messages

    @property
    def next_sequence(self):
        """Sequence number following this packet's messages."""
        return self.sequence + len(self.messages)


def encode_packet(packet):
    """Serialize ``packet`` (a :class:`MoldPacket`) to a UDP payload.

    Raises
    ------
    MoldFormatError
        The session is longer than 10 bytes, an end of session carries messages, there are more than 65534
        messages, or a message is longer than 65535 bytes.
    """
    session = _session_bytes(packet.session)
    if packet.end_of_session and packet.messages:
        raise MoldFormatError("an end-of-session packet carries no messages")
    if len(packet.messages) > _MAX_COUNT:
        raise MoldFormatError(f"{len(packet.messages)} messages exceed the {_MAX_COUNT} a packet can count")
    parts = [_HEADER.pack(session, packet.sequence, packet.count)]
    for message in packet.messages:
        if len(message) > 0xFFFF:
            raise MoldFormatError(f"a {len(message)}-byte message does not fit a 2-byte block length")
        parts.append(_BLOCK_LENGTH.pack(len(message)))
        parts.append(bytes(message))
    return b"".join(parts)


def _session_bytes(session):
    raw = session.encode("ascii") if isinstance(session, str) else bytes(session)
    if len(raw) > SESSION_LENGTH:
        raise MoldFormatError(f"session {session!r} is longer than {SESSION_LENGTH} bytes")
    return raw.ljust(SESSION_LENGTH, b" ")


def decode_packet(payload):
    """Parse a UDP payload into a :class:`MoldPacket`.

    The payload must hold exactly ``count`` message blocks: bytes left over after them are an error, as are
    blocks that run past the end.

    Raises
    ------
    MoldFormatError
        Shorter than the header, a block running past the end of the payload (count larger than what the
        payload holds), or trailing bytes after the last block.
    """
    if len(payload) < HEADER_LENGTH:
        raise MoldFormatError(f"{len(payload)} bytes is shorter than the {HEADER_LENGTH}-byte header")
    raw_session, sequence, count = _HEADER.unpack_from(payload)
    session = raw_session.decode("latin-1").rstrip(" ")
    if count == END_OF_SESSION_COUNT:
        messages = ()
        cursor = HEADER_LENGTH
    else:
        messages, cursor = _split_blocks(payload, count)
    if cursor != len(payload):
        raise MoldFormatError(f"{len(payload) - cursor} trailing bytes after {len(messages)} message blocks")
    return MoldPacket(session, sequence, messages, count == END_OF_SESSION_COUNT)


def _split_blocks(payload, count):
    view = memoryview(payload)
    end = len(payload)
    cursor = HEADER_LENGTH
    messages = []
    for index in range(count):
        if cursor + 2 > end:
            raise MoldFormatError(f"count {count} but the payload ends after {index} message blocks")
        length = (view[cursor] << 8) | view[cursor + 1]
        cursor += 2
        if cursor + length > end:
            raise MoldFormatError(f"message block {index} of {length} bytes runs past the end of the payload")
        messages.append(bytes(view[cursor:cursor + length]))
        cursor += length
    return tuple(messages), cursor


def pack_messages(messages, session, *, first_sequence=1, max_payload=DEFAULT_MAX_PAYLOAD, max_messages=None):
    """Group ``messages`` into MoldUDP64 packets, in order, as full as the limits allow.

    Parameters
    ----------
    messages : iterable of bytes
        Encoded messages (for ITCH, see :func:`t2t.feed.itch.encode`).
    session : str
        Session name (up to 10 characters).
    first_sequence : int
        Sequence number of the first message.
    max_payload : int
        Largest UDP payload in bytes, header included.
    max_messages : int or None
        Most messages per packet (``None``: limited by ``max_payload`` and 65534 only).

    Yields
    ------
    MoldPacket
        Packets with consecutive sequence numbers; none is empty.

    Raises
    ------
    MoldFormatError
        A message that cannot fit in a packet of ``max_payload`` bytes on its own.
    ValueError
        A limit that leaves no room for any message.
    """
    _session_bytes(session)
    if max_payload < HEADER_LENGTH + 2:
        raise ValueError(f"max_payload {max_payload} leaves no room for a message after the {HEADER_LENGTH}-byte "
                         f"header")
    count_limit = _MAX_COUNT if max_messages is None else min(max_messages, _MAX_COUNT)
    if count_limit < 1:
        raise ValueError(f"max_messages must be at least 1, got {max_messages}")
    sequence = first_sequence
    batch = []
    size = HEADER_LENGTH
    for message in messages:
        block = 2 + len(message)
        if HEADER_LENGTH + block > max_payload:
            raise MoldFormatError(f"a {len(message)}-byte message does not fit a {max_payload}-byte payload")
        if size + block > max_payload or len(batch) == count_limit:
            yield MoldPacket(session, sequence, tuple(batch))
            sequence += len(batch)
            batch = []
            size = HEADER_LENGTH
        batch.append(message)
        size += block
    if batch:
        yield MoldPacket(session, sequence, tuple(batch))


@dataclass(slots=True)
class ArbiterCounters:
    """What :class:`MoldUdp64Arbiter` has seen.

    Attributes
    ----------
    packets : int
        Every payload offered, good or bad.
    packets_by_feed : dict
        Payloads offered per feed label.
    delivered : int
        Messages passed on, each sequence number once.
    duplicates : int
        Messages dropped because their sequence number was already passed on or already declared lost.
    gaps : list of (int, int)
        ``(first missing sequence, number missing)`` for each jump forward in sequence numbers.
    heartbeats : int
        Packets with count 0.
    end_of_session : int
        Packets with count 0xFFFF.
    wrong_session : int
        Packets dropped because their session is not the arbiter's.
    malformed : int
        Payloads dropped because they do not decode (e.g. a count larger than the payload holds).
    """

    packets: int = 0
    packets_by_feed: dict = field(default_factory=dict)
    delivered: int = 0
    duplicates: int = 0
    gaps: list = field(default_factory=list)
    heartbeats: int = 0
    end_of_session: int = 0
    wrong_session: int = 0
    malformed: int = 0

    @property
    def missing(self):
        """Total number of sequence numbers declared lost."""
        return sum(count for _, count in self.gaps)


class MoldUdp64Arbiter:
    """Receiver model: A/B arbitration, gap detection and session filtering of MoldUDP64 packets.

    Feed packets from both feeds, in arrival order, to :meth:`receive`. Each sequence number is passed on once,
    from whichever copy arrives first. The arbiter does not wait for a missing sequence number: a packet starting
    beyond the next expected number records a gap and is passed on, and a copy of a lost number arriving later is
    dropped as a duplicate. Heartbeats and end-of-session packets carry the next sequence number and so reveal
    gaps too.

    Parameters
    ----------
    session : str or None
        Session to accept; ``None`` learns it from the first well-formed packet.
    next_sequence : int or None
        Next expected sequence number; ``None`` takes it from the first packet of the session, so that joining
        a feed mid-session is not a gap.
    """

    def __init__(self, session=None, next_sequence=None):
        self.session = session
        self.next_sequence = next_sequence
        self.ended = False
        self.counters = ArbiterCounters()

    def receive(self, payload, feed="A"):
        """Offer one UDP payload received on ``feed``; return the ``(sequence, message)`` pairs it passes on."""
        counters = self.counters
        counters.packets += 1
        counters.packets_by_feed[feed] = counters.packets_by_feed.get(feed, 0) + 1
        try:
            packet = decode_packet(payload)
        except MoldFormatError:
            counters.malformed += 1
            return []
        if self.session is None:
            self.session = packet.session
        elif packet.session != self.session:
            counters.wrong_session += 1
            return []
        if self.next_sequence is None:
            self.next_sequence = packet.sequence
        if packet.end_of_session:
            counters.end_of_session += 1
            self.ended = True
        elif not packet.messages:
            counters.heartbeats += 1
        if not packet.messages:
            self._skip_to(packet.sequence)
            return []
        return self._accept(packet)

    def _accept(self, packet):
        counters = self.counters
        first_new = max(packet.sequence, self.next_sequence)
        already_seen = first_new - packet.sequence
        if already_seen >= len(packet.messages):
            counters.duplicates += len(packet.messages)
            return []
        counters.duplicates += already_seen
        self._skip_to(first_new)
        delivered = [(packet.sequence + index, message)
                     for index, message in enumerate(packet.messages[already_seen:], start=already_seen)]
        counters.delivered += len(delivered)
        self.next_sequence = packet.next_sequence
        return delivered

    def _skip_to(self, sequence):
        if sequence > self.next_sequence:
            self.counters.gaps.append((self.next_sequence, sequence - self.next_sequence))
            self.next_sequence = sequence
