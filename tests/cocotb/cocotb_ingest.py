"""cocotb tests of the whole market-data ingest in the Verilated top level (launched by test_ingest_cocotb.py).

A generated ITCH session is packed into MoldUDP64 packets with a random number of messages each, and sent on
feed A and feed B as UDP frames, beat by beat, one cocotb coroutine per RX port: B carries the same packets with a
random skew and jitter, some packets are lost on one feed only, some on both (real gaps), and both feeds carry
some noise (packets of another session on A, frames to another UDP port on B). Two sessions: one with a fixed
session name, packets of 1 to 24 messages, random idle time between frames, B mostly behind A and two packets lost
on both feeds; one with the session learned from the first packet, packets of up to 1400 bytes nearly back to
back, B mostly ahead of A, heartbeats and an end-of-session packet.

What leaves the ingest is recorded event by event: the ``o_event`` stream of the ingest, read through the
Verilator hierarchy at the book's input (``book.i_event``), and the book's BBO tap. The expected output is computed
from the session independently of the gateware: the reference MoldUDP64 arbiter (:mod:`t2t.feed.moldudp64`) gives
the messages delivered and the gaps, the ITCH codec (:mod:`t2t.feed.itch`) the fields of each event, and the
reference book (:mod:`t2t.book.reference`) the BBO changes. The card is configured by the host software itself
(:mod:`t2t.card`, :mod:`t2t.trading`, through :mod:`t2t_sim.cocotb.host`): feed addresses, the session, symbol
slots and subscriptions; counters and the gap queue are read back the same way.

The feeds' skew stays well below the arbiter's gap timeout (256 cycles), so a packet lost on one feed only is
always recovered from the other, in sequence order: the reference arbiter is given each packet's copies in
sequence order, as the gateware's waiting arbiter sees them.
"""

import collections
import dataclasses
import ipaddress
import logging
import random
import time

import cocotb
from cocotb.triggers import ClockCycles

from t2t import trading
from t2t.book.reference import ReferenceBook
from t2t.card import Card
from t2t.feed import itch
from t2t.feed.generator import generate_session
from t2t.feed.moldudp64 import MoldPacket, MoldUdp64Arbiter, encode_packet
from t2t.feed.netframe import build_udp_frame
from t2t_gateware.streams import BboUpdate, EventKind, ItchEvent
from t2t_sim.cocotb import TopTestbench
from t2t_sim.cocotb.host import CocotbTransport, host
from t2t_sim.cocotb.streams import INTER_FRAME_CYCLES, MacRxDriver, StreamMonitor

#: The session: its seed and length (about 5 cycles of traffic per message and feed; cocotb runs the top level at
#: a few thousand cycles a second with both feeds driven).
SEED = 5
MESSAGES = 20_000
MESSAGES_LINE_RATE = 10_000

#: The session of the packets sent on feed A that the card must refuse.
FOREIGN_SESSION = "OTHERSESS"
#: The gap timeout of the gateware arbiter (FeedIngest's default): the skew between the feeds stays below it.
GAP_TIMEOUT = 256

#: Decoded ITCH types and the event kind each becomes; the other types are counted only.
KINDS = {"A": EventKind.ADD, "F": EventKind.ADD, "E": EventKind.EXECUTE, "C": EventKind.EXECUTE_WITH_PRICE,
         "X": EventKind.CANCEL, "D": EventKind.DELETE, "U": EventKind.REPLACE, "P": EventKind.TRADE,
         "Q": EventKind.CROSS_TRADE, "S": EventKind.SYSTEM_EVENT, "H": EventKind.TRADING_ACTION}
EVENT_FIELDS = ("kind", "locate", "order_ref", "new_order_ref", "side", "shares", "price", "match_number",
                "timestamp", "code")
BBO_FIELDS = ("slot", "locate", "bid_price", "bid_shares", "bid_orders", "ask_price", "ask_shares", "ask_orders",
              "degraded", "timestamp")


@dataclasses.dataclass
class Feeds:
    """One run's traffic: the session, its packets, what each feed sends and when."""
    session: str
    messages: list                 # decoded ITCH messages, sequence 1 first
    packets: list                  # MoldPacket, in sequence order (data, heartbeats, end of session)
    feed_a: tuple                  # (dotted IP, UDP port)
    feed_b: tuple
    schedule_a: list = dataclasses.field(default_factory=list)  # (idle cycles before, frame bytes)
    schedule_b: list = dataclasses.field(default_factory=list)
    lost_a: set = dataclasses.field(default_factory=set)        # packet indices feed A does not send
    lost_b: set = dataclasses.field(default_factory=set)
    foreign_payloads: list = dataclasses.field(default_factory=list)  # packets of another session (feed A)
    wrong_port_frames: int = 0          # frames to another UDP port (feed B)
    max_skew: int = 0                   # largest lead of one feed's copy over the other's, cycles
    b_first: int = 0                    # packets whose B copy starts first (or alone)

    @property
    def lost_both(self):
        return self.lost_a & self.lost_b

    def sent_by(self, index):
        return [feed for feed, lost in (("A", self.lost_a), ("B", self.lost_b)) if index not in lost]


def _beats(frame):
    return (len(frame) + 7) // 8


def build_feeds(seed, messages, *, session="T2TCOCOTB1", max_per_packet=24, idle=12, loss=0.03, lost_both=2,
                heartbeat_every=0, end_of_session=False, lag=20, lags=(-30, 90), feed_a=("239.10.1.1", 31001),
                feed_b=("239.10.2.1", 31002)):
    """A generated session as MoldUDP64 packets of 1 to ``max_per_packet`` messages (uniform, within 1400 bytes),
    and the A and B frame schedules.

    Between frames: the 10GbE inter-frame gap and 0 to ``idle - 1`` more idle cycles. B's copies start ``lag``
    cycles after A's (negative: before), then a bounded random walk within ``lags`` (near line rate a feed cannot
    catch up by more than the other's idle time). ``loss`` of the data packets are lost on A only and as many on
    B only, ``lost_both`` on both (never the first or last data packets, nor two in a row). A heartbeat follows
    every ``heartbeat_every`` data packets (0: none) and, with ``end_of_session``, an end-of-session packet ends
    the session, on both feeds.
    """
    rng = random.Random(seed)
    decoded = list(generate_session(seed=seed, messages=messages))
    raw = [itch.encode(message) for message in decoded]
    packets, index = [], 0
    while index < len(raw):
        count, size = rng.randint(1, max_per_packet), 20
        batch = []
        while index < len(raw) and len(batch) < count and size + 2 + len(raw[index]) <= 1400:
            size += 2 + len(raw[index])
            batch.append(raw[index])
            index += 1
        packets.append(MoldPacket(session, index - len(batch) + 1, tuple(batch)))
        if heartbeat_every and len(packets) % (heartbeat_every + 1) == heartbeat_every:
            packets.append(MoldPacket(session, index + 1))
    if end_of_session:
        packets.append(MoldPacket(session, len(raw) + 1, end_of_session=True))
    feeds = Feeds(session, decoded, packets, feed_a, feed_b)
    data = [number for number, packet in enumerate(packets) if packet.messages]
    inner = data[2:-2]
    both = set()
    while len(both) < lost_both:
        candidate = rng.choice(inner)
        if not {candidate - 1, candidate, candidate + 1} & both:
            both.add(candidate)
    singles = rng.sample([i for i in data[1:] if not {i - 1, i, i + 1} & both], 2 * round(loss * len(data)))
    half = len(singles) // 2
    feeds.lost_a = both | set(singles[:half])
    feeds.lost_b = both | set(singles[half:])

    foreign_at = set(rng.sample(data, 2))
    wrong_port_at = set(rng.sample(data, 3))
    a_clock = b_clock = 0        # when each feed is free (end of its last frame, sent or lost)
    a_sent = b_sent = 0          # end of the last frame each feed actually sent
    for number, packet in enumerate(packets):
        payload = encode_packet(packet)
        frame_a = build_udp_frame(payload, dst_ip=feed_a[0], dst_port=feed_a[1])
        frame_b = build_udp_frame(payload, dst_ip=feed_b[0], dst_port=feed_b[1])
        start_a = a_clock + INTER_FRAME_CYCLES + rng.randrange(idle)
        lag = min(max(lag + rng.randint(-12, 12), lags[0]), lags[1])
        start_b = max(start_a + lag, b_clock + INTER_FRAME_CYCLES)
        feeds.max_skew = max(feeds.max_skew, abs(start_b - start_a))
        feeds.b_first += number not in feeds.lost_b and (number in feeds.lost_a or start_b < start_a)
        if number not in feeds.lost_a:
            feeds.schedule_a.append((start_a - a_sent, frame_a))
            a_sent = start_a + _beats(frame_a)
        a_clock = start_a + _beats(frame_a)
        if number not in feeds.lost_b:
            feeds.schedule_b.append((start_b - b_sent, frame_b))
            b_sent = start_b + _beats(frame_b)
        b_clock = start_b + _beats(frame_b)
        if number in foreign_at:
            # Short noise frames, so that they shift their feed little.
            foreign = encode_packet(dataclasses.replace(packet, session=FOREIGN_SESSION,
                                                        messages=packet.messages[:1]))
            frame = build_udp_frame(foreign, dst_ip=feed_a[0], dst_port=feed_a[1])
            start = a_clock + INTER_FRAME_CYCLES
            feeds.schedule_a.append((start - a_sent, frame))
            a_sent = a_clock = start + _beats(frame)
            feeds.foreign_payloads.append(foreign)
        if number in wrong_port_at:
            frame = build_udp_frame(encode_packet(dataclasses.replace(packet, messages=packet.messages[:1])),
                                    dst_ip=feed_b[0], dst_port=feed_b[1] + 1)
            start = b_clock + INTER_FRAME_CYCLES
            feeds.schedule_b.append((start - b_sent, frame))
            b_sent = b_clock = start + _beats(frame)
            feeds.wrong_port_frames += 1
    return feeds


def expected_event(message):
    """The ingest event of a decoded ITCH message (``None`` for a type that is only counted), from the message's
    decoded fields."""
    kind = KINDS.get(message.type)
    if kind is None:
        return None
    event = dict.fromkeys(EVENT_FIELDS, 0)
    event.update(kind=kind.value, locate=message.locate, timestamp=message.timestamp_ns)
    letter = message.type
    if letter in "AFP":
        event.update(order_ref=message.order_ref, side=int(message.side == "S"), shares=message.shares,
                     price=message.price)
    if letter in "ECP":
        event["match_number"] = message.match_number
    if letter in "EC":
        event.update(order_ref=message.order_ref, shares=message.executed_shares)
    if letter == "C":
        event["price"] = message.price
    if letter == "X":
        event.update(order_ref=message.order_ref, shares=message.cancelled_shares)
    if letter == "D":
        event["order_ref"] = message.order_ref
    if letter == "U":
        event.update(order_ref=message.order_ref, new_order_ref=message.new_order_ref, shares=message.shares,
                     price=message.price)
    if letter == "Q":
        event.update(shares=min(message.shares, 0xFFFF_FFFF), price=message.cross_price,
                     match_number=message.match_number, code=ord(message.cross_type))
    if letter == "S":
        event["code"] = ord(message.event_code)
    if letter == "H":
        event["code"] = ord(message.trading_state)
    return event


@dataclasses.dataclass
class Expected:
    delivered: list        # decoded messages delivered, in sequence order
    events: list           # event dicts (EVENT_FIELDS)
    unsubscribed: int      # decoded events held back by the filter
    gaps: list             # (first sequence, count)
    wrong_session: int
    type_counts: collections.Counter
    bbo: list              # reference BBO changes of the slot-mapped stocks, as dicts of BBO_FIELDS
    heartbeats: int        # heartbeat copies (both feeds)
    end_of_session: int    # end-of-session copies (both feeds)
    ended: bool
    accepted_packets: int
    duplicate_packets: int


def reference(feeds, subscribed, slots):
    """What the ingest must deliver (``subscribed``: locates; ``slots``: locate -> book slot)."""
    arbiter = MoldUdp64Arbiter(session=feeds.session)
    by_sequence = {}
    for index, packet in enumerate(feeds.packets):
        payload = encode_packet(packet)
        for feed in feeds.sent_by(index):
            for sequence, raw in arbiter.receive(payload, feed):
                by_sequence[sequence] = raw
    for payload in feeds.foreign_payloads:
        arbiter.receive(payload, "A")
    delivered = [feeds.messages[sequence - 1] for sequence in sorted(by_sequence)]
    assert all(itch.encode(feeds.messages[s - 1]) == raw for s, raw in by_sequence.items())
    events, unsubscribed = [], 0
    for message in delivered:
        event = expected_event(message)
        if event is None:
            continue
        if message.type == "S" or message.locate in subscribed:
            events.append(event)
        else:
            unsubscribed += 1
    book = ReferenceBook(slots)
    bbo = []
    for message in delivered:
        change = book.apply(message)
        if change is not None:
            bbo.append({"slot": slots[change.locate], "locate": change.locate, "bid_price": change.bid_px,
                        "bid_shares": change.bid_qty, "bid_orders": change.bid_orders, "ask_price": change.ask_px,
                        "ask_shares": change.ask_qty, "ask_orders": change.ask_orders, "degraded": 0,
                        "timestamp": change.timestamp_ns})
    sent = [len(feeds.sent_by(index)) for index, packet in enumerate(feeds.packets) if packet.messages]
    return Expected(delivered, events, unsubscribed, list(arbiter.counters.gaps), arbiter.counters.wrong_session,
                    collections.Counter(message.type for message in delivered), bbo, arbiter.counters.heartbeats,
                    arbiter.counters.end_of_session, arbiter.ended,
                    accepted_packets=sum(1 for n in sent if n), duplicate_packets=sum(1 for n in sent if n == 2))


def quiet_bus(tb):
    """cocotbext-axi logs every register access at INFO: keep its warnings only."""
    for interface in (tb.axil.write_if, tb.axil.read_if):
        interface.log.setLevel(logging.WARNING)


@dataclasses.dataclass
class BboReport:
    exact: int = 0
    degraded: int = 0
    missing_while_degraded: int = 0
    problems: list = dataclasses.field(default_factory=list)


def compare_bbo(updates, changes):
    """Card BBO updates against the reference book's changes, stock by stock in message order (see the test)."""
    report = BboReport()
    by_locate = collections.defaultdict(lambda: ([], []))
    for update in updates:
        by_locate[update["locate"]][0].append(update)
    for change in changes:
        by_locate[change["locate"]][1].append(change)
    for locate, (card, ref) in sorted(by_locate.items()):
        position, degraded = 0, False

        def skip_before(timestamp):
            nonlocal position
            while position < len(ref) and ref[position]["timestamp"] < timestamp:
                if degraded:
                    report.missing_while_degraded += 1
                else:
                    report.problems.append(f"locate {locate}: no card update for the reference's {ref[position]}")
                position += 1

        for update in card:
            skip_before(update["timestamp"])
            here = ref[position] if position < len(ref) and ref[position]["timestamp"] == update["timestamp"] \
                else None
            if update["degraded"]:
                report.degraded += 1
                position += here is not None
            elif here is None:
                report.problems.append(f"locate {locate}: card update {update} is no reference change")
            else:
                fields = [name for name in BBO_FIELDS if name != "degraded"]
                if any(update[name] != here[name] for name in fields):
                    report.problems.append(f"locate {locate}: card update {update} reference {here}")
                else:
                    report.exact += 1
                position += 1
            degraded = bool(update["degraded"])
        skip_before(1 << 64)
    return report


def ip_value(dotted):
    return int(ipaddress.IPv4Address(dotted))


def configure_feeds(card, feeds, fixed_session):
    """Host side: both feeds' destinations and the session (fixed, or learned from the first packet), applied by
    one ``feed`` commit."""
    card.write("feed.dst_ip_a", ip_value(feeds.feed_a[0]))
    card.write("feed.dst_port_a", feeds.feed_a[1])
    card.write("feed.dst_ip_b", ip_value(feeds.feed_b[0]))
    card.write("feed.dst_port_b", feeds.feed_b[1])
    card.write("feed.session", int.from_bytes(feeds.session.encode().ljust(10), "big") if fixed_session else 0)
    mode = card.regmap["feed.session_mode"].field("mode")
    card.write("feed.session_mode", mode.enum["fixed" if fixed_session else "learn"] << mode.offset)
    card.commit("feed")


def read_counters(card):
    paths = [f"itch.messages_{letter}" for letter in itch.MESSAGE_LENGTHS]
    paths += [f"moldudp64.{name}" for name in ("accepted_packets", "duplicates", "gaps", "gap_fifo_overflow",
                                               "bad_session", "heartbeats", "end_of_session", "bad_fcs_packets",
                                               "overflow", "runt_packets", "cut_packets", "next_expected",
                                               "current_session")]
    paths += [f"itch.{name}" for name in ("events", "unsubscribed_events", "event_overflow", "truncated_messages",
                                          "length_errors", "unknown_types", "count_errors")]
    paths += [f"rx_{port}.{name}" for port in "ab" for name in ("frames", "accepted", "wrong_port", "bad_fcs")]
    paths += ["book.bbo_updates", "book.unknown_refs", "book.table_overflows", "book.tops_unknown"]
    paths += [reg.path for reg in card.regmap if reg.path.startswith("last_event.")]
    values = trading.read_many(card, paths)
    values["status"] = card.decode("moldudp64.status", card.read("moldudp64.status"))
    return values


def first_difference(observed, expected):
    for index, (a, b) in enumerate(zip(observed, expected)):
        if a != b:
            return index
    return None if len(observed) == len(expected) else min(len(observed), len(expected))


async def run_feeds(tb, feeds, subscribe_symbols, fixed_session):
    """Configure the card through the host software, send both feeds, and return what came out."""
    dut = tb.dut
    card = await host(Card, CocotbTransport(tb.axil))
    locates = {m.stock.strip(): m.locate for m in feeds.messages if m.type == "R"}
    slot_map = trading.SlotMap.assign(subscribe_symbols, locates, await host(trading.slot_capacity, card))
    await host(configure_feeds, card, feeds, fixed_session)
    await host(trading.load_symbols, card, slot_map)

    monitor = StreamMonitor(dut)
    events = monitor.add("events", dut.book.i_event__valid, dut.book.i_event__payload, ItchEvent,
                         ready=dut.book.i_event__ready)
    bbo = monitor.add("bbo", dut.bbo__valid, dut.bbo__payload, BboUpdate)
    monitor.start()
    drivers = MacRxDriver(dut, "rx_a"), MacRxDriver(dut, "rx_b")
    started = time.perf_counter()
    tasks = [cocotb.start_soon(driver.send(schedule))
             for driver, schedule in zip(drivers, (feeds.schedule_a, feeds.schedule_b))]
    for task in tasks:
        await task
    # The last gap wait, the packet buffers and the event FIFO drain well within this.
    await ClockCycles(dut.clk, 2 * GAP_TIMEOUT)
    seconds = time.perf_counter() - started
    monitor.stop()
    counters = await host(read_counters, card)
    gaps = await host(trading.drain_gaps, card)
    return slot_map, events, bbo, counters, gaps, seconds, drivers


async def check_ingest(dut, feeds, subscribe, fixed_session):
    """Send ``feeds`` through the top level and compare everything that leaves the ingest with the reference."""
    tb = TopTestbench(dut)
    quiet_bus(tb)
    await tb.start()
    slot_map, events, bbo, counters, gaps, seconds, drivers = await run_feeds(tb, feeds, subscribe, fixed_session)
    subscribed = {locate for _, _, locate in slot_map.entries}
    slots = {locate: slot for slot, _, locate in slot_map.entries}
    expected = reference(feeds, subscribed, slots)

    cycles = max(sum(idle for idle, _ in s) + drivers[i].beats for i, s in
                 enumerate((feeds.schedule_a, feeds.schedule_b)))
    data = sum(1 for packet in feeds.packets if packet.messages)
    dut._log.info(
        f"session: {len(feeds.messages)} messages in {data} data packets ({len(feeds.packets) - data} heartbeat or "
        f"end of session); feed A {len(feeds.schedule_a)} frames, feed B {len(feeds.schedule_b)} frames; lost on A "
        f"only {len(feeds.lost_a - feeds.lost_b)}, on B only {len(feeds.lost_b - feeds.lost_a)}, on both "
        f"{len(feeds.lost_both)}; B first {feeds.b_first}; max skew {feeds.max_skew} cycles; {cycles} cycles of "
        f"traffic in {seconds:.1f} s")
    dut._log.info(f"compared: {len(events)} events (reference {len(expected.events)}), {len(bbo)} BBO updates "
                  f"(reference {len(expected.bbo)}), {len(gaps)} gaps; {len(expected.delivered)} messages delivered")

    dut._log.info("card: " + ", ".join(f"{name} {value}" for name, value in counters.items()
                                       if name.startswith(("moldudp64.", "rx_")) and value))
    dut._log.info(f"reference: accepted_packets {expected.accepted_packets}, duplicates {expected.duplicate_packets}, "
                  f"heartbeats {expected.heartbeats}, end_of_session {expected.end_of_session}, gaps {expected.gaps}")

    # The traffic is what the test means it to be.
    assert feeds.max_skew < GAP_TIMEOUT - 64
    assert len(feeds.lost_a - feeds.lost_b) and len(feeds.lost_b - feeds.lost_a)
    assert len(expected.delivered) == len(feeds.messages) - sum(len(feeds.packets[i].messages)
                                                                for i in feeds.lost_both)
    assert feeds.b_first > data // 10, "feed B must win a fair share of the packets"

    # Event by event: every delivered message of a subscribed stock (and every system event) once, in sequence
    # order, with the fields of the reference decode.
    observed = [{name: event[name] for name in EVENT_FIELDS} for event in events]
    first = first_difference(observed, expected.events)
    assert first is None, (f"event {first} of {len(observed)} (reference {len(expected.events)}): card "
                           f"{observed[first] if first < len(observed) else None} reference "
                           f"{expected.events[first] if first < len(expected.events) else None}")

    # Gaps: the packets lost on both feeds, each reported once on the gap queue, none for a one-feed loss.
    assert [(gap.first, gap.count) for gap in gaps] == expected.gaps
    assert len(expected.gaps) == len(feeds.lost_both)
    for (first_missing, count), index in zip(expected.gaps, sorted(feeds.lost_both)):
        packet = feeds.packets[index]
        assert (first_missing, count) == (packet.sequence, len(packet.messages))

    # Counters, against the same reference.
    for letter in itch.MESSAGE_LENGTHS:
        assert counters[f"itch.messages_{letter}"] == expected.type_counts.get(letter, 0), letter
    assert counters["itch.events"] == len(expected.events)
    assert counters["itch.unsubscribed_events"] == expected.unsubscribed
    assert counters["moldudp64.accepted_packets"] == expected.accepted_packets
    assert counters["moldudp64.duplicates"] == expected.duplicate_packets
    assert counters["moldudp64.gaps"] == len(expected.gaps)
    assert counters["moldudp64.bad_session"] == expected.wrong_session == len(feeds.foreign_payloads)
    assert counters["moldudp64.next_expected"] == len(feeds.messages) + 1
    assert counters["moldudp64.current_session"].to_bytes(10, "big") == feeds.session.encode().ljust(10)
    assert counters["status"]["session_known"] == 1 and counters["status"]["synced"] == 1
    assert counters["moldudp64.heartbeats"] == expected.heartbeats
    assert counters["moldudp64.end_of_session"] == expected.end_of_session
    assert counters["status"]["session_ended"] == int(expected.ended)
    for name in ("gap_fifo_overflow", "bad_fcs_packets", "overflow", "runt_packets", "cut_packets"):
        assert counters[f"moldudp64.{name}"] == 0, name
    for name in ("event_overflow", "truncated_messages", "length_errors", "unknown_types", "count_errors"):
        assert counters[f"itch.{name}"] == 0, name
    assert counters["rx_a.frames"] == len(feeds.schedule_a) == drivers[0].frames
    assert counters["rx_b.frames"] == len(feeds.schedule_b) == drivers[1].frames
    assert counters["rx_a.accepted"] == len(feeds.schedule_a)
    assert counters["rx_b.accepted"] == len(feeds.schedule_b) - feeds.wrong_port_frames
    assert counters["rx_b.wrong_port"] == feeds.wrong_port_frames and counters["rx_a.wrong_port"] == 0

    # The last event kept for bring-up is the last one out.
    last = expected.events[-1]
    assert counters["last_event.locate"] == last["locate"]
    assert counters["last_event.timestamp"] == last["timestamp"]
    assert counters["last_event.kind"] & 0xF == last["kind"]

    # The book fed by this stream: every update it sends with an exact book (not degraded) is the reference
    # book's change for the same message, and every change of the reference book has its update unless that
    # stock's book was degraded then (a side's last kept level emptied while orders rested beyond the levels the
    # card keeps: the card flags such updates rather than guess).
    report = compare_bbo(bbo, expected.bbo)
    dut._log.info(f"BBO: {report.exact} updates equal to the reference's, {report.degraded} degraded updates, "
                  f"{report.missing_while_degraded} reference changes hidden by a degraded book; "
                  f"book.tops_unknown {counters['book.tops_unknown']}")
    assert not report.problems, "\n".join(report.problems[:10])
    assert report.exact >= 0.9 * len(expected.bbo)
    assert (report.degraded > 0) == (counters["book.tops_unknown"] > 0)
    assert counters["book.bbo_updates"] == len(bbo)


@cocotb.test()
async def ab_feeds_with_losses_skew_and_noise_deliver_the_reference_events_in_order(dut):
    """A fixed session; packets of 1 to 24 messages with random idle time between frames, feed B mostly behind."""
    feeds = build_feeds(seed=SEED, messages=MESSAGES, lost_both=2)
    await check_ingest(dut, feeds, ["AAPL", "MSFT", "NVDA", "TSLA", "META"], fixed_session=True)


@cocotb.test()
async def near_line_rate_large_packets_heartbeats_and_end_of_session_on_a_learned_session(dut):
    """The session learned from the first packet; packets of up to 60 messages (to 1400 bytes) nearly back to
    back, feed B mostly ahead, a heartbeat every 20 data packets and an end-of-session packet, on both feeds.

    No packet is lost on both feeds here: near line rate, the arbiter's wait for the missing packet (up to
    ``GAP_TIMEOUT`` cycles) fills the packet buffers past their admission limit (a 512-beat body FIFO keeps room
    for a longest packet, 184 beats), and copies are refused (``moldudp64.overflow``). A packet lost on one feed
    only costs a wait of the skew between the feeds (tens of cycles).
    """
    feeds = build_feeds(seed=SEED + 1, messages=MESSAGES_LINE_RATE, session="T2TLEARNED", max_per_packet=60,
                        idle=2, heartbeat_every=20, end_of_session=True, lost_both=0, lag=-20, lags=(-40, -5))
    await check_ingest(dut, feeds, ["GOOGL", "AMZN", "INTC", "AAPL"], fixed_session=False)
