"""Tick-to-event latency of the market-data ingest: MAC beats into two UdpReceivers (feeds A and B), FeedIngest,
events out, counted in cycles from the MAC beat that carries each message's last byte.

Frames are built by the host reference (``t2t.feed.netframe``, ``t2t.feed.moldudp64``, ``t2t.feed.generator``),
sent on both feeds as 64-bit MAC beats, and every event is checked against the messages sent: nothing lost,
nothing twice, in order, and each within the latency bound.

Where the cycles go (untagged frames, payload at frame byte 42, lane 2 of MAC beat 5): the receiver registers
each payload beat once the MAC beat holding its highest byte has come, 1 cycle later; a payload beat takes the
lanes 2..7 of one MAC beat and the lanes 0..1 of the next, so a message ending in payload lanes 0..5 waits one
more MAC beat for its payload beat to be complete (2 cycles), and so does one ending in the final payload beat
when that beat's bytes all came in one MAC beat. FeedIngest then takes 2 cycles. Total: 3 or 4 cycles.
"""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from t2t.feed.generator import generate_session
from t2t.feed.itch import encode
from t2t.feed.moldudp64 import encode_packet, pack_messages
from t2t.feed.netframe import build_udp_frame
from t2t_gateware.feed.ingest import COUNTERS, FeedIngest
from t2t_gateware.feed.ingest import LATENCY as INGEST_LATENCY
from t2t_gateware.net import UdpReceiver
from t2t_gateware.streams import BEAT_BYTES, STAMP_BITS, ItchEvent, MacBeat

from itchbytes import expected_event, random_message

DST_IP = "233.54.12.111"
DST_IP_VALUE = 0xE9360C6F
DST_PORT = 26477
SESSION = "T2TLAT0001"
# Frame byte offset of the UDP payload (Ethernet 14, IPv4 20, UDP 8; no tag, no IP options).
PAYLOAD_OFFSET = 42
#: The bound asserted for every message: cycles from the MAC beat carrying its last byte to its event.
TOTAL_LATENCY = 4
SYSTEM_EVENT = 8


class RxIngest(wiring.Component):
    """Two UdpReceivers (A and B) in front of a FeedIngest, as in the top level."""
    rx_a: In(stream.Signature(MacBeat, always_ready=True))
    rx_b: In(stream.Signature(MacBeat, always_ready=True))
    stamp: In(STAMP_BITS)
    sub_addr: In(16)
    sub_data: In(1)
    sub_we: In(1)
    o_event: Out(stream.Signature(ItchEvent))

    def __init__(self):
        self.ingest = FeedIngest()
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.ingest = ingest = self.ingest
        for feed, (name, rx) in enumerate((("a", self.rx_a), ("b", self.rx_b))):
            receiver = m.submodules[f"receiver_{name}"] = UdpReceiver(feed)
            wiring.connect(m, wiring.flipped(rx), receiver.i_mac)
            wiring.connect(m, receiver.o_payload, getattr(ingest, f"i_feed_{name}"))
            m.d.comb += [receiver.stamp.eq(self.stamp), receiver.dst_ip.eq(DST_IP_VALUE),
                         receiver.dst_port.eq(DST_PORT)]
        wiring.connect(m, ingest.o_event, wiring.flipped(self.o_event))
        m.d.comb += [ingest.sub_addr.eq(self.sub_addr), ingest.sub_data.eq(self.sub_data),
                     ingest.sub_we.eq(self.sub_we)]
        return m


class Feed:
    """One feed's MAC beats, one per cycle (``None``: idle), and where each frame starts."""

    def __init__(self, skew=0):
        self.schedule = [None] * skew
        self.starts = []

    def send(self, payload, gap=0):
        frame = build_udp_frame(payload, dst_ip=DST_IP, dst_port=DST_PORT)
        self.starts.append(len(self.schedule))
        chunks = [frame[offset:offset + BEAT_BYTES] for offset in range(0, len(frame), BEAT_BYTES)]
        for number, chunk in enumerate(chunks):
            self.schedule.append({"data": int.from_bytes(chunk.ljust(BEAT_BYTES, b"\0"), "little"),
                                  "keep": (1 << len(chunk)) - 1, "first": number == 0,
                                  "last": number == len(chunks) - 1, "error": 0})
        self.schedule.extend([None] * gap)


def run(feed_a, feed_b, subscribed, *, tail=40):
    """Simulate; return the events seen (with the cycle each was valid in) and the counters at the end."""
    dut = RxIngest()
    layout = MacBeat
    schedules = [[None if beat is None else layout.const(beat).as_value().value for beat in feed.schedule]
                 for feed in (feed_a, feed_b)]
    total = max(len(schedule) for schedule in schedules) + tail
    events, counters = [], {}
    fields = [(name, field.offset, field.width) for name, field in data.Layout.cast(ItchEvent)]

    async def testbench(ctx):
        for locate in subscribed:
            ctx.set(dut.sub_addr, locate)
            ctx.set(dut.sub_data, 1)
            ctx.set(dut.sub_we, 1)
            await ctx.tick()
        ctx.set(dut.sub_we, 0)
        ctx.set(dut.o_event.ready, 1)
        for cycle in range(total):
            ctx.set(dut.stamp, cycle % (1 << STAMP_BITS))
            for port, schedule in ((dut.rx_a, schedules[0]), (dut.rx_b, schedules[1])):
                beat = schedule[cycle] if cycle < len(schedule) else None
                ctx.set(port.valid, beat is not None)
                if beat is not None:
                    ctx.set(port.payload.as_value(), beat)
            if ctx.get(dut.o_event.valid):
                value = ctx.get(dut.o_event.payload.as_value())
                event = {name: (value >> offset) & ((1 << width) - 1) for name, offset, width in fields}
                event["cycle"] = cycle
                events.append(event)
            await ctx.tick()
        counters.update({name: ctx.get(getattr(dut.ingest, name)) for name in COUNTERS})

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return events, counters


def sent_messages(payloads):
    """(packet index, payload offset of the last byte, message) of every message, in sequence order."""
    result = []
    for index, payload in enumerate(payloads):
        count = int.from_bytes(payload[18:20], "big")
        position = 20
        for _ in range(count):
            length = int.from_bytes(payload[position:position + 2], "big")
            result.append((index, position + 2 + length - 1, payload[position + 2:position + 2 + length]))
            position += 2 + length
    return result


def mac_cycle(feed, packet, payload_offset):
    """Cycle of the MAC beat carrying a payload byte of a packet on a feed."""
    return feed.starts[packet] + (PAYLOAD_OFFSET + payload_offset) // BEAT_BYTES


def payload_stamp(feed, packet, payload_offset, payload_length):
    """The stamp the receiver gives the payload beat holding a byte: the MAC beat of that beat's highest byte."""
    highest = min(payload_offset // BEAT_BYTES * BEAT_BYTES + BEAT_BYTES - 1, payload_length - 1)
    return mac_cycle(feed, packet, highest) % (1 << STAMP_BITS)


def check_latency(payloads, feed_a, feed_b, subscribed):
    """Run, check every event against the messages sent, and return the latency of each event."""
    events, counters = run(feed_a, feed_b, subscribed)
    expected = []
    for packet, last_byte, message in sent_messages(payloads):
        event = expected_event(message, 0)
        if event is not None and (event["locate"] in subscribed or event["kind"] == SYSTEM_EVENT):
            expected.append((packet, last_byte, event))
    got = [{name: value for name, value in event.items() if name not in ("stamp", "cycle")} for event in events]
    want = [{name: value for name, value in event.items() if name != "stamp"} for _p, _b, event in expected]
    assert got == want, "events lost, repeated or out of order"
    latencies = []
    for event, (packet, last_byte, _message) in zip(events, expected):
        # The copy that was delivered is the one whose payload beat stamp the event carries.
        length = len(payloads[packet])
        copies = [feed for feed in (feed_a, feed_b)
                  if payload_stamp(feed, packet, last_byte, length) == event["stamp"]]
        assert copies, f"event stamp {event['stamp']} matches neither copy of packet {packet}"
        latencies.append(min(event["cycle"] - mac_cycle(feed, packet, last_byte) for feed in copies))
    assert counters["accepted_packets"] == len(payloads)
    assert counters["duplicates"] == len(payloads)
    assert counters["event_overflow"] == 0
    return latencies


def delete_packets(rng, packets, per_packet, locates):
    """MoldUDP64 payloads full of D messages (the shortest decoded type: 19 bytes, 21 with the length)."""
    return [encode_packet(packet) for packet in pack_messages(
        [random_message(rng, "D", locate=rng.choice(locates)) for _ in range(packets * per_packet)],
        SESSION, max_messages=per_packet)]


@pytest.mark.parametrize("skew_a,skew_b", [(0, 0), (0, 1), (1, 0), (0, 7), (29, 0), (0, 90), (185, 0)])
def test_full_delete_packets_back_to_back_on_both_feeds_then_every_message_within_4_cycles(skew_a, skew_b):
    """100 % duty on both feeds (frames back to back, a MAC beat every cycle), packets as full as a 1400-byte
    payload allows of the shortest messages: nothing lost, and every message out within the bound."""
    rng = random.Random(skew_a * 1000 + skew_b)
    locates = (1, 2, 3, 300)
    payloads = delete_packets(rng, 5, (1400 - 20) // 21, locates)
    feed_a, feed_b = Feed(skew_a), Feed(skew_b)
    for payload in payloads:
        feed_a.send(payload)
        feed_b.send(payload)
    assert all(feed_a.schedule[skew_a:]) and all(feed_b.schedule[skew_b:]), "100 % duty"
    latencies = check_latency(payloads, feed_a, feed_b, set(locates))
    print(f"\nskew A {skew_a} B {skew_b}: {len(latencies)} D events, latency {min(latencies)}..{max(latencies)} "
          f"cycles from the MAC beat of the last byte")
    assert max(latencies) <= TOTAL_LATENCY
    assert min(latencies) == 1 + INGEST_LATENCY


@pytest.mark.parametrize("per_packet", [1, 2, 3])
def test_short_delete_packets_back_to_back_on_both_feeds_then_every_message_within_4_cycles(per_packet):
    """The tightest case for the arbiter: small packets back to back, so each header is decided right after
    the packet before it ended."""
    rng = random.Random(per_packet)
    locates = (5, 6)
    payloads = delete_packets(rng, 24, per_packet, locates)
    for skew_a, skew_b in ((0, 0), (0, 2), (3, 0), (0, 11)):
        feed_a, feed_b = Feed(skew_a), Feed(skew_b)
        for payload in payloads:
            feed_a.send(payload)
            feed_b.send(payload)
        latencies = check_latency(payloads, feed_a, feed_b, set(locates))
        assert max(latencies) <= TOTAL_LATENCY, (skew_a, skew_b)


def test_generated_session_on_both_feeds_with_jitter_then_every_message_within_4_cycles():
    """A generated session (system events, directory, adds, executions, cancels, replaces, trades, halts) in
    packets of varied size, on both feeds with idle gaps of their own, so that either feed's copy wins: the
    winning copy of every packet is delivered within the bound, half the symbols filtered out."""
    messages = [encode(message) for message in generate_session(seed=7, messages=700)]
    payloads = [encode_packet(packet) for packet in pack_messages(messages, SESSION, max_payload=400)]
    rng = random.Random(7)
    feed_a, feed_b = Feed(0), Feed(rng.randrange(40))
    for payload in payloads:
        feed_a.send(payload, gap=rng.choice((0, 0, 0, 3, 30)))
        feed_b.send(payload, gap=rng.choice((0, 0, 0, 3, 30)))
    latencies = check_latency(payloads, feed_a, feed_b, {1, 2, 3, 4})
    print(f"\nsession: {len(messages)} messages in {len(payloads)} packets, {len(latencies)} events, latency "
          f"{min(latencies)}..{max(latencies)} cycles from the MAC beat of the last byte")
    assert max(latencies) <= TOTAL_LATENCY
