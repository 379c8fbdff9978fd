"""Test helpers for the feed gateware: ITCH 5.0 messages and MoldUDP64 packets built with struct, a reference
model of framing and decoding written from the specification tables, and a cycle-by-cycle stream bench."""

import struct

from amaranth.lib import data
from amaranth.sim import Simulator

from t2t_gateware.streams import BEAT_BYTES, EventKind

__all__ = [
    "LENGTHS", "DECODED", "EVENT_FIELDS", "SESSION", "random_message", "block", "mold_packet", "payload_beats",
    "block_beats", "expected_event", "split_blocks", "events_of_payloads", "schedule_packets", "Bench",
]

# ITCH 5.0 message lengths (PROTOCOLS.md).
LENGTHS = {
    "S": 12, "R": 39, "H": 25, "Y": 20, "L": 26, "V": 35, "W": 12, "K": 28, "J": 35, "h": 21,
    "A": 36, "F": 40, "E": 31, "C": 36, "X": 23, "D": 19, "U": 35, "P": 44, "Q": 40, "B": 19,
    "I": 50, "N": 20, "O": 48,
}

# Decoded types and their event kind.
DECODED = {
    "A": EventKind.ADD, "F": EventKind.ADD, "E": EventKind.EXECUTE, "C": EventKind.EXECUTE_WITH_PRICE,
    "X": EventKind.CANCEL, "D": EventKind.DELETE, "U": EventKind.REPLACE, "P": EventKind.TRADE,
    "Q": EventKind.CROSS_TRADE, "S": EventKind.SYSTEM_EVENT, "H": EventKind.TRADING_ACTION,
}

# Event fields each decoded type carries: name -> (offset, size) in the message (PROTOCOLS.md).
_FIELDS = {
    "A": {"order_ref": (11, 8), "side": (19, 1), "shares": (20, 4), "price": (32, 4)},
    "F": {"order_ref": (11, 8), "side": (19, 1), "shares": (20, 4), "price": (32, 4)},
    "E": {"order_ref": (11, 8), "shares": (19, 4), "match_number": (23, 8)},
    "C": {"order_ref": (11, 8), "shares": (19, 4), "match_number": (23, 8), "price": (32, 4)},
    "X": {"order_ref": (11, 8), "shares": (19, 4)},
    "D": {"order_ref": (11, 8)},
    "U": {"order_ref": (11, 8), "new_order_ref": (19, 8), "shares": (27, 4), "price": (31, 4)},
    "P": {"order_ref": (11, 8), "side": (19, 1), "shares": (20, 4), "price": (32, 4), "match_number": (36, 8)},
    "Q": {"shares": (11, 8), "price": (27, 4), "match_number": (31, 8), "code": (39, 1)},
    "S": {"code": (11, 1)},
    "H": {"code": (19, 1)},
}

EVENT_FIELDS = ("kind", "locate", "order_ref", "new_order_ref", "side", "shares", "price", "match_number",
                "timestamp", "code", "stamp")

SESSION = b"T2T0000001"


def random_message(rng, letter, *, big_shares=False, locate=None):
    """A message of type ``letter`` with random field values (valid side and code characters); S messages
    have locate 0, others ``locate`` if given."""
    length = LENGTHS[letter]
    body = bytearray(rng.randbytes(length))
    body[0] = ord(letter)
    if letter == "S":
        locate = 0
    struct.pack_into(">HH", body, 1, rng.randrange(1 << 16) if locate is None else locate, rng.randrange(1 << 16))
    if letter in "AFP":
        body[19] = ord(rng.choice("BS"))
    if letter == "S":
        body[11] = ord(rng.choice("OSQMEC"))
    if letter == "H":
        body[19] = ord(rng.choice("HPQT"))
    if letter == "Q" and not big_shares:
        struct.pack_into(">Q", body, 11, rng.randrange(1 << 32))
    return bytes(body)


def expected_event(message, stamp):
    """The event the decoder must produce for one message (``None`` for a type that is only counted)."""
    letter = chr(message[0])
    if letter not in DECODED:
        return None
    event = dict.fromkeys(EVENT_FIELDS, 0)
    event["kind"] = DECODED[letter].value
    event["locate"] = int.from_bytes(message[1:3], "big")
    event["timestamp"] = int.from_bytes(message[5:11], "big")
    event["stamp"] = stamp & 0xFFFF
    for name, (offset, size) in _FIELDS[letter].items():
        event[name] = int.from_bytes(message[offset:offset + size], "big")
    if "side" in _FIELDS[letter]:
        event["side"] = int(message[19] == ord("S"))
    event["shares"] = min(event["shares"], 0xFFFF_FFFF)
    return event


def block(message, length=None):
    """A message block: 2-byte big-endian length (the message's own unless given) and the message."""
    return struct.pack(">H", len(message) if length is None else length) + message


def mold_packet(sequence, messages=(), *, count=None, session=SESSION, blocks=None):
    """A MoldUDP64 downstream packet; ``blocks`` (raw bytes) replaces the blocks built from ``messages``."""
    body = b"".join(block(message) for message in messages) if blocks is None else blocks
    return struct.pack(">10sQH", session, sequence, len(messages) if count is None else count) + body


def _chunks(octets):
    return [octets[i:i + BEAT_BYTES] for i in range(0, len(octets), BEAT_BYTES)]


def payload_beats(payload, *, feed=0, error=False):
    """The ``PayloadBeat`` fields of one UDP payload (``stamp`` is set by the bench)."""
    chunks = _chunks(payload)
    return [{"data": int.from_bytes(chunk, "little"), "keep": (1 << len(chunk)) - 1, "first": i == 0,
             "last": i == len(chunks) - 1, "error": error and i == len(chunks) - 1, "feed": feed}
            for i, chunk in enumerate(chunks)]


def block_beats(payload, *, skip=0, error=False):
    """The ``MessageBlockBeat`` fields the arbiter outputs for one accepted MoldUDP64 packet."""
    _session, sequence, count = struct.unpack_from(">10sQH", payload)
    beats = payload_beats(payload[16:], error=error)
    beats[0]["keep"] &= 0xF0
    for beat in beats:
        del beat["feed"]
        beat.update(sequence=sequence, count=count, skip=skip)
    return beats


def split_blocks(payload, skip=0):
    """Reference framing of one MoldUDP64 packet's message blocks: (delivered, counter increments), where
    ``delivered`` lists (payload offset of the message's last byte, message)."""
    count = int.from_bytes(payload[18:20], "big")
    body = payload[20:]
    counters = dict.fromkeys(("truncated_messages", "length_errors", "unknown_types", "count_errors"), 0)
    delivered = []
    position = index = 0
    while position < len(body):
        if index >= count:
            counters["count_errors"] += 1
            return delivered, counters
        if position + 2 >= len(body):
            counters["truncated_messages"] += 1
            break
        length = int.from_bytes(body[position:position + 2], "big")
        letter = chr(body[position + 2])
        if letter not in LENGTHS:
            counters["unknown_types"] += 1
            return delivered, counters
        if length != LENGTHS[letter]:
            counters["length_errors"] += 1
            return delivered, counters
        if position + 2 + length > len(body):
            counters["truncated_messages"] += 1
            break
        if index >= skip:
            delivered.append((20 + position + 2 + length - 1, body[position + 2:position + 2 + length]))
        index += 1
        position += 2 + length
    if index < count:
        counters["count_errors"] += 1
    return delivered, counters


def events_of_payloads(payloads_and_skips):
    """Reference events (without ``stamp``), per-type message counts and counters for a list of
    (MoldUDP64 payload, skip) accepted in that order."""
    events, type_counts = [], dict.fromkeys(LENGTHS, 0)
    counters = dict.fromkeys(("truncated_messages", "length_errors", "unknown_types", "count_errors"), 0)
    for payload, skip in payloads_and_skips:
        delivered, increments = split_blocks(payload, skip)
        for name, value in increments.items():
            counters[name] += value
        for _end, message in delivered:
            type_counts[chr(message[0])] += 1
            event = expected_event(message, 0)
            if event is not None:
                del event["stamp"]
                events.append(event)
    return events, type_counts, counters


def _unpack(fields, value):
    return {name: (value >> offset) & ((1 << width) - 1) for name, offset, width in fields}


def _layout_fields(shape):
    return [(name, field.offset, field.width) for name, field in data.Layout.cast(shape)]


class Bench:
    """Drives streams cycle by cycle from per-cycle schedules and records what valid output streams carry.

    Cycle numbers count from the start of the traffic; each driven beat gets ``stamp`` = its cycle number (mod
    2**16), so an event's latency is the cycle it was seen minus its ``stamp``.
    """

    def __init__(self, dut):
        self.dut = dut
        self._drives = []
        self._watches = {}
        self._setup = []
        self._probes = {}
        self.seen = {}
        self.probed = {}
        self.cycles = 0

    def drive(self, port, shape, schedule):
        """Drive ``port`` with ``schedule``: one beat (a field dict) or ``None`` (idle) per cycle."""
        layout = data.Layout.cast(shape)
        stamp_offset = layout["stamp"].offset if "stamp" in dict(iter(layout)) else None
        encoded = [None if beat is None else layout.const(beat).as_value().value for beat in schedule]
        self._drives.append((port, encoded, stamp_offset))

    def watch(self, name, port, shape, ready=None):
        """Record each beat of ``port`` (as a field dict with its cycle in ``"cycle"``); ``ready(cycle)`` drives
        ``port.ready`` if given."""
        self._watches[name] = (port, _layout_fields(shape), ready)
        self.seen[name] = []

    def setup(self, *assignments):
        """Set the (signal, value) ``assignments`` for one cycle before the traffic, then back to 0 (a host
        write)."""
        self._setup.append(assignments)

    def probe(self, name, signal):
        """Read ``signal`` at the end into ``probed[name]``."""
        self._probes[name] = signal

    def run(self, *, tail=40, settings=()):
        """Run until every schedule is done plus ``tail`` cycles. ``settings`` are (signal, value) held all along."""
        total = max((len(encoded) for _port, encoded, _offset in self._drives), default=0) + tail
        self.cycles = total

        async def testbench(ctx):
            for signal, value in settings:
                ctx.set(signal, value)
            for assignments in self._setup:
                for signal, value in assignments:
                    ctx.set(signal, value)
                await ctx.tick()
                for signal, _value in assignments:
                    ctx.set(signal, 0)
            for cycle in range(total):
                for port, encoded, stamp_offset in self._drives:
                    beat = encoded[cycle] if cycle < len(encoded) else None
                    ctx.set(port.valid, beat is not None)
                    if beat is not None:
                        if stamp_offset is not None:
                            beat |= (cycle & 0xFFFF) << stamp_offset
                        ctx.set(port.payload.as_value(), beat)
                for name, (port, fields, ready) in self._watches.items():
                    accepting = True
                    if ready is not None:
                        accepting = ready(cycle)
                        ctx.set(port.ready, accepting)
                    if accepting and ctx.get(port.valid):
                        beat = _unpack(fields, ctx.get(port.payload.as_value()))
                        beat["cycle"] = cycle
                        self.seen[name].append(beat)
                await ctx.tick()
            for name, signal in self._probes.items():
                self.probed[name] = ctx.get(signal)

        simulator = Simulator(self.dut)
        simulator.add_clock(1e-8)
        simulator.add_testbench(testbench)
        simulator.run()
        return self


def schedule_packets(packets_beats, *, gap=0, rng=None, pause_chance=0.0):
    """Concatenate packets' beats into one per-cycle schedule: ``gap`` idle cycles after each packet, and with
    ``pause_chance`` an idle cycle before any beat (a pause inside a packet). Returns (schedule, cycles) where
    ``cycles[i][j]`` is the cycle of packet ``i``'s beat ``j``."""
    schedule, cycles = [], []
    for beats in packets_beats:
        cycles.append([])
        for beat in beats:
            if rng is not None and rng.random() < pause_chance:
                schedule.append(None)
            cycles[-1].append(len(schedule))
            schedule.append(beat)
        schedule.extend([None] * gap)
    return schedule, cycles
