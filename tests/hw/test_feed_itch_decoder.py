"""MessageSplitter (framing, checking and decoding) against the reference model of itchbytes, beat by beat."""

import random

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from t2t_gateware.feed.itch import MESSAGE_TYPES
from t2t_gateware.feed.splitter import COUNTERS, BodyBeat, MessageSplitter
from t2t_gateware.streams import STAMP_BITS, ItchEvent

from itchbytes import (DECODED, LENGTHS, Bench, block, expected_event, mold_packet, payload_beats, random_message,
                       schedule_packets, split_blocks)

# Splitter latency target: cycles from the beat carrying a message's last byte to its event.
LATENCY = 2


class SkipBeat(data.Struct):
    """A :class:`BodyBeat` and the packet's ``skip`` (read on its first beat), for the test bench."""
    data: 64
    keep: 8
    first: 1
    last: 1
    error: 1
    truncated: 1
    stamp: STAMP_BITS
    replay: 1
    skip: 16


class SplitAndDecode(wiring.Component):
    """A splitter taking accepted (replay) packets, with every locate subscribed, and its counters."""
    i_beats: In(stream.Signature(SkipBeat, always_ready=True))
    o_event: Out(stream.Signature(ItchEvent, always_ready=True))
    message_counts: Out(32).array(len(MESSAGE_TYPES))
    truncated_messages: Out(32)
    length_errors: Out(32)
    unknown_types: Out(32)
    count_errors: Out(32)

    def __init__(self):
        self.splitter = MessageSplitter()
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.splitter = splitter = self.splitter
        beat = BodyBeat(splitter.i_beats.payload)
        skip = Signal(16)
        with m.If(self.i_beats.valid & self.i_beats.payload.first):
            m.d.sync += skip.eq(self.i_beats.payload.skip)
        m.d.comb += [
            splitter.i_beats.valid.eq(self.i_beats.valid),
            splitter.skip.eq(skip),
            splitter.lookup_subscribed.eq(1),
        ]
        for name in ("data", "keep", "first", "last", "error", "truncated", "stamp", "replay"):
            m.d.comb += getattr(beat, name).eq(getattr(self.i_beats.payload, name))
        wiring.connect(m, splitter.o_event, wiring.flipped(self.o_event))
        for index, name in enumerate(COUNTERS):
            counter = getattr(self, name)
            m.d.sync += counter.eq(counter + splitter.errors[index])
        for index, letter in enumerate(MESSAGE_TYPES):
            with m.If(splitter.counted & (splitter.counted_type == ord(letter))):
                m.d.sync += self.message_counts[index].eq(self.message_counts[index] + 1)
        return m


def body_beats(payload, *, skip=0):
    """The beats of one accepted packet from payload beat 2 on."""
    beats = payload_beats(payload[16:])
    for beat in beats:
        del beat["feed"]
        beat.update(truncated=0, replay=1, skip=skip)
    return beats


def run_packets(packets, *, skips=None, gap=0, rng=None, pause_chance=0.0):
    """Feed (payload) packets as accepted body streams; return the bench, expectations and schedule cycles."""
    skips = skips or [0] * len(packets)
    schedule, cycles = schedule_packets([body_beats(payload, skip=skip) for payload, skip in zip(packets, skips)],
                                        gap=gap, rng=rng, pause_chance=pause_chance)
    dut = SplitAndDecode()
    bench = Bench(dut)
    bench.drive(dut.i_beats, SkipBeat, schedule)
    bench.watch("events", dut.o_event, ItchEvent)
    for name in COUNTERS:
        bench.probe(name, getattr(dut, name))
    for index, letter in enumerate(MESSAGE_TYPES):
        bench.probe(letter, dut.message_counts[index])
    bench.run()

    expected, counters, type_counts = [], dict.fromkeys(COUNTERS, 0), dict.fromkeys(LENGTHS, 0)
    for payload, skip, beat_cycles in zip(packets, skips, cycles):
        delivered, increments = split_blocks(payload, skip)
        for name, value in increments.items():
            counters[name] += value
        for last_byte, message in delivered:
            type_counts[chr(message[0])] += 1
            # Block beats start at payload byte 16.
            event = expected_event(message, beat_cycles[last_byte // 8 - 2])
            if event is not None:
                expected.append(event)
    return bench, expected, counters, type_counts


def assert_matches_model(bench, expected, counters, type_counts):
    seen = [{name: value for name, value in event.items() if name != "cycle"} for event in bench.seen["events"]]
    assert len(seen) == len(expected)
    for got, want in zip(seen, expected):
        assert got == want
    assert {name: bench.probed[name] for name in COUNTERS} == counters
    assert {letter: bench.probed[letter] for letter in LENGTHS} == type_counts


def latencies(bench):
    return [event["cycle"] - event["stamp"] for event in bench.seen["events"]]


def test_every_decoded_type_at_every_start_lane_then_fields_match():
    rng = random.Random(1)
    packets, lanes_seen = [], set()
    for letter in DECODED:
        # n S blocks (14 bytes) and d D blocks (21 bytes) before it put the type byte at each lane 0..7.
        for system_events in range(4):
            for deletes in range(2):
                messages = ([random_message(rng, "S") for _ in range(system_events)] +
                            [random_message(rng, "D") for _ in range(deletes)] +
                            [random_message(rng, letter, big_shares=rng.random() < 0.3), random_message(rng, "D")])
                type_offset = 20 + 14 * system_events + 21 * deletes + 2
                lanes_seen.add((letter, type_offset % 8))
                packets.append(mold_packet(len(packets) + 1, messages))
    assert len(lanes_seen) == len(DECODED) * 8
    bench, expected, counters, type_counts = run_packets(packets)
    assert_matches_model(bench, expected, counters, type_counts)
    assert set(latencies(bench)) == {LATENCY}


def test_every_type_counted_and_only_book_and_status_types_become_events():
    rng = random.Random(2)
    packets = [mold_packet(1, [random_message(rng, letter) for letter in LENGTHS]),
               mold_packet(24, [random_message(rng, letter) for letter in reversed(LENGTHS)])]
    bench, expected, counters, type_counts = run_packets(packets)
    assert all(type_counts[letter] == 2 for letter in LENGTHS)
    assert len(expected) == 2 * len(DECODED)
    assert_matches_model(bench, expected, counters, type_counts)


def test_back_to_back_delete_packets_at_full_duty_then_every_event_at_line_rate():
    rng = random.Random(3)
    per_packet = (1400 - 20) // 21
    packets = [mold_packet(1 + n * per_packet, [random_message(rng, "D") for _ in range(per_packet)])
               for n in range(4)]
    bench, expected, counters, type_counts = run_packets(packets)
    assert_matches_model(bench, expected, counters, type_counts)
    assert len(bench.seen["events"]) == 4 * per_packet
    beats = sum(len(body_beats(payload)) for payload in packets)
    rate = len(bench.seen["events"]) / beats
    print(f"\nsplitter: {len(expected)} D messages in {beats} beats at 100% duty: {rate:.3f} messages/cycle "
          f"(wire limit 8/21 = {8 / 21:.3f} less the MoldUDP64 headers)")
    assert rate > 0.37
    assert max(latencies(bench)) <= 4
    assert set(latencies(bench)) == {LATENCY}


def test_overlap_skip_then_leading_messages_framed_but_not_delivered():
    rng = random.Random(4)
    payload = mold_packet(10, [random_message(rng, letter) for letter in "AFDEXCU"])
    bench, expected, counters, type_counts = run_packets([payload, payload], skips=[3, 0])
    assert len(expected) == 4 + 7
    assert_matches_model(bench, expected, counters, type_counts)


def test_bad_blocks_then_counted_rest_dropped_and_next_packet_decodes():
    rng = random.Random(5)

    def good(sequence):
        return mold_packet(sequence, [random_message(rng, letter) for letter in "ADXSU"])

    delete, add = random_message(rng, "D"), random_message(rng, "A")
    unknown = b"Z" + rng.randbytes(18)
    bad = [
        ("length_errors", mold_packet(1, count=3, blocks=block(delete) + block(add, 0) + block(delete))),
        ("length_errors", mold_packet(1, count=3, blocks=block(delete) + block(add, 40) + block(delete))),
        ("length_errors", mold_packet(1, count=2, blocks=block(delete, 18) + block(delete))),
        ("unknown_types", mold_packet(1, count=3, blocks=block(delete) + block(unknown) + block(delete))),
        ("truncated_messages", mold_packet(1, [delete, add, delete])[:-5]),
        ("truncated_messages", mold_packet(1, [delete, add])[:-len(add) - 1]),
        ("truncated_messages", mold_packet(1, [delete, add])[:-len(add)]),
        ("count_errors", mold_packet(1, [delete, add, delete], count=5)),
        ("count_errors", mold_packet(1, [delete, add, delete], count=2)),
        ("count_errors", mold_packet(1, [], count=1)),
    ]
    packets = []
    for _name, payload in bad:
        packets += [payload, good(100)]
    bench, expected, counters, type_counts = run_packets(packets)
    assert_matches_model(bench, expected, counters, type_counts)
    for name in ("length_errors", "unknown_types", "truncated_messages", "count_errors"):
        assert bench.probed[name] >= sum(1 for bad_name, _ in bad if bad_name == name)
    assert bench.probed["length_errors"] == 3 and bench.probed["unknown_types"] == 1
    # Each good packet after a bad one decodes whole (A, D, X, S, U: five events).
    assert type_counts["U"] == len(bad)


def test_random_packets_with_pauses_and_bad_blocks_then_matches_model():
    rng = random.Random(6)
    letters = list(LENGTHS)
    packets = []
    for sequence in range(120):
        messages = [random_message(rng, rng.choice(letters), big_shares=rng.random() < 0.1)
                    for _ in range(rng.randrange(1, 8))]
        blocks = [block(message) for message in messages]
        fault = rng.random()
        if fault < 0.1:
            blocks[rng.randrange(len(blocks))] = block(messages[0], rng.choice([0, 1, 11, 51, len(messages[0]) + 1]))
        elif fault < 0.15:
            blocks[rng.randrange(len(blocks))] = block(bytes([rng.choice(b"abcdGMTZ")]) + rng.randbytes(20))
        payload = mold_packet(sequence, messages, blocks=b"".join(blocks),
                              count=len(messages) + (rng.choice([-1, 1]) if 0.15 <= fault < 0.2 else 0))
        if 0.2 <= fault < 0.3:
            payload = payload[:rng.randrange(20, len(payload))]
        packets.append(payload)
    skips = [rng.choice([0, 0, 0, 1, 2]) for _ in packets]
    bench, expected, counters, type_counts = run_packets(packets, skips=skips, gap=0, rng=rng, pause_chance=0.1)
    assert_matches_model(bench, expected, counters, type_counts)
    assert max(latencies(bench)) == LATENCY
