"""MoldUdp64Arbiter: A/B merge, duplicates, gaps, overlap, sessions, heartbeats, bad FCS, buffer limits.

The arbiter decides which packets each feed's splitter delivers, so it is tested inside FeedIngest: the events
out must be those of the packets the policy accepts, in order (every message type used here is decoded, every
locate subscribed), and the arbiter's counters and status are FeedIngest's.
"""

import random

from t2t_gateware.feed.ingest import COUNTERS as INGEST_COUNTERS
from t2t_gateware.feed.ingest import FeedIngest
from t2t_gateware.feed.moldudp64 import COUNTERS, SequenceGap
from t2t_gateware.streams import ItchEvent, PayloadBeat

from itchbytes import (SESSION, Bench, events_of_payloads, mold_packet, payload_beats, random_message,
                       schedule_packets)

# Cycles from the payload beat carrying a message's last byte to its event, for a packet delivered as it arrives.
LATENCY = 2
OTHER_SESSION = b"OTHER00001"
LOCATES = (1, 2, 3, 4)


def data_packets(rng, first_sequence, packets, messages=4, letters="ADEXU", session=SESSION):
    """Consecutive MoldUDP64 packets of ``messages`` random messages each (decoded types, subscribed locates)."""
    result = []
    for n in range(packets):
        result.append(mold_packet(first_sequence + n * messages,
                                  [random_message(rng, rng.choice(letters), locate=rng.choice(LOCATES))
                                   for _ in range(messages)],
                                  session=session))
    return result


def heartbeat(sequence, session=SESSION):
    return mold_packet(sequence, session=session)


def end_of_session(sequence):
    return mold_packet(sequence, count=0xFFFF)


def feed_schedule(payloads, *, feed, skew=0, gap=0, errors=(), lost=()):
    """One feed's beats: packets back to back (``gap`` idle cycles between), those in ``errors`` with a bad FCS,
    those in ``lost`` replaced by as many idle cycles (lost on the wire)."""
    beats = [payload_beats(payload, feed=feed, error=index in errors) for index, payload in enumerate(payloads)]
    beats = [[None] * len(packet) if index in lost else packet for index, packet in enumerate(beats)]
    schedule, _cycles = schedule_packets(beats, gap=gap)
    return [None] * skew + schedule


def run_arbiter(feed_a=(), feed_b=(), *, settings=(), tail=60, **options):
    dut = FeedIngest(**options)
    bench = Bench(dut)
    for locate in LOCATES:
        bench.setup((dut.sub_addr, locate), (dut.sub_data, 1), (dut.sub_we, 1))
    bench.drive(dut.i_feed_a, PayloadBeat, list(feed_a))
    bench.drive(dut.i_feed_b, PayloadBeat, list(feed_b))
    bench.watch("events", dut.o_event, ItchEvent, ready=lambda cycle: True)
    bench.watch("gaps", dut.o_gap, SequenceGap, ready=lambda cycle: True)
    for name in INGEST_COUNTERS + ("next_expected", "synced", "session_known", "current_session", "session_ended"):
        bench.probe(name, getattr(dut, name))
    return bench.run(tail=tail, settings=[(getattr(dut, name), value) for name, value in settings])


def events(bench):
    return [{name: value for name, value in event.items() if name not in ("stamp", "cycle")}
            for event in bench.seen["events"]]


def expected(*payloads_and_skips):
    """The events of the packets the arbiter accepts, in order: payloads, or (payload, skip) for an overlap."""
    accepted = [item if isinstance(item, tuple) else (item, 0) for item in payloads_and_skips]
    return events_of_payloads(accepted)[0]


def latencies(bench):
    return {event["cycle"] - event["stamp"] for event in bench.seen["events"]}


def counters(bench):
    return {name: bench.probed[name] for name in COUNTERS if bench.probed[name]}


def splitter_counters(bench):
    return {name: bench.probed[name] for name in INGEST_COUNTERS
            if name not in COUNTERS and name != "event_overflow" and bench.probed[name]}


def test_single_feed_in_order_then_every_packet_delivered_with_latency_2():
    rng = random.Random(1)
    payloads = data_packets(rng, 1, 5)
    bench = run_arbiter(feed_schedule(payloads, feed=0, gap=3))
    assert events(bench) == expected(*payloads)
    assert latencies(bench) == {LATENCY}
    assert bench.probed["next_expected"] == 21 and bench.probed["synced"]
    assert bench.probed["current_session"] == int.from_bytes(SESSION, "big")
    assert counters(bench) == {"accepted_packets": 5}


def test_identical_feeds_back_to_back_at_full_duty_then_each_packet_once_as_it_arrives():
    rng = random.Random(2)
    payloads = data_packets(rng, 1, 12, messages=8)
    for skew_a, skew_b in ((0, 0), (0, 1), (5, 0), (0, 40), (90, 0)):
        bench = run_arbiter(feed_schedule(payloads, feed=0, skew=skew_a), feed_schedule(payloads, feed=1, skew=skew_b))
        assert events(bench) == expected(*payloads)
        assert counters(bench) == {"accepted_packets": 12, "duplicates": 12}
        assert latencies(bench) == {LATENCY}, (skew_a, skew_b)


def test_identical_feeds_of_smallest_packets_at_full_duty_then_each_once_with_constant_latency():
    rng = random.Random(15)
    payloads = data_packets(rng, 1, 60, messages=1, letters="S")
    for skew_b in (0, 2):
        bench = run_arbiter(feed_schedule(payloads, feed=0), feed_schedule(payloads, feed=1, skew=skew_b),
                            body_depth=64, max_payload_bytes=200)
        assert events(bench) == expected(*payloads)
        assert counters(bench) == {"accepted_packets": 60, "duplicates": 60}
        assert latencies(bench) == {LATENCY}


def test_missing_packet_then_gap_reported_and_next_expected_jumps():
    rng = random.Random(3)
    payloads = data_packets(rng, 1, 5)
    kept = payloads[:2] + payloads[3:]
    bench = run_arbiter(feed_schedule(kept, feed=0), gap_timeout=0)
    assert events(bench) == expected(*kept)
    assert [(gap["first"], gap["count"]) for gap in bench.seen["gaps"]] == [(9, 4)]
    assert counters(bench) == {"accepted_packets": 4, "gaps": 1}
    assert bench.probed["next_expected"] == 21


def test_gap_on_one_feed_filled_by_the_other_then_no_gap():
    rng = random.Random(4)
    payloads = data_packets(rng, 1, 6)
    # B lags by less than a packet, then by several packets (within gap_timeout).
    for skew_b in (2, 100):
        bench = run_arbiter(feed_schedule(payloads, feed=0, lost={2}), feed_schedule(payloads, feed=1, skew=skew_b))
        assert events(bench) == expected(*payloads)
        assert counters(bench) == {"accepted_packets": 6, "duplicates": 5}
        assert bench.seen["gaps"] == []


def test_overlapping_packet_then_accepted_with_seen_messages_skipped():
    rng = random.Random(5)
    first = mold_packet(1, [random_message(rng, "D", locate=1) for _ in range(3)])
    overlapping = mold_packet(2, [random_message(rng, "D", locate=2) for _ in range(4)])
    bench = run_arbiter(feed_schedule([first], feed=0), [None] * 40 + feed_schedule([overlapping], feed=1))
    assert events(bench) == expected(first, (overlapping, 2))
    assert len(bench.seen["events"]) == 3 + 2
    assert bench.probed["next_expected"] == 6


def test_other_session_then_dropped_whether_learned_or_set_by_host():
    rng = random.Random(6)
    ours, theirs = data_packets(rng, 1, 2), data_packets(rng, 1, 2, session=OTHER_SESSION)
    learned = run_arbiter(feed_schedule([ours[0], theirs[0], theirs[1], ours[1]], feed=0))
    assert events(learned) == expected(ours[0], ours[1])
    assert counters(learned) == {"accepted_packets": 2, "bad_session": 2}
    fixed = run_arbiter(feed_schedule([theirs[0], ours[0], theirs[1], ours[1]], feed=0),
                        settings=[("session", int.from_bytes(SESSION, "big")), ("session_valid", 1)])
    assert events(fixed) == expected(ours[0], ours[1])
    assert counters(fixed) == {"accepted_packets": 2, "bad_session": 2}


def test_heartbeats_and_end_of_session_then_nothing_forwarded_and_heartbeat_gap_reported():
    rng = random.Random(7)
    payloads = data_packets(rng, 1, 3)
    # Messages 1..4, 5..8, 9..12; each heartbeat names the next sequence number to be sent.
    stream_a = [payloads[0], heartbeat(5), heartbeat(5), payloads[1], heartbeat(9), payloads[2],
                heartbeat(13), end_of_session(13)]
    bench = run_arbiter(feed_schedule(stream_a, feed=0, gap=2))
    assert events(bench) == expected(*payloads)
    assert bench.seen["gaps"] == []
    assert counters(bench) == {"accepted_packets": 3, "heartbeats": 4, "end_of_session": 1}
    assert splitter_counters(bench) == {}
    assert bench.probed["session_ended"]
    lost = run_arbiter(feed_schedule([payloads[0], heartbeat(9), payloads[2]], feed=0, gap=2), gap_timeout=0)
    assert [(gap["first"], gap["count"]) for gap in lost.seen["gaps"]] == [(5, 4)]
    assert events(lost) == expected(payloads[0], payloads[2])
    assert counters(lost) == {"accepted_packets": 2, "heartbeats": 1, "gaps": 1}


def test_bad_fcs_on_accepted_copy_then_other_copy_accepted_not_dropped():
    rng = random.Random(8)
    payloads = data_packets(rng, 1, 4, messages=6)
    for skew_b in (0, 3, 30):
        bench = run_arbiter(feed_schedule(payloads, feed=0, errors={1}), feed_schedule(payloads, feed=1, skew=skew_b))
        # The bad copy has been delivered (cut-through) before its FCS was known; then B's good copy follows.
        assert events(bench) == expected(payloads[0], payloads[1], payloads[1], payloads[2], payloads[3])
        assert counters(bench) == {"accepted_packets": 5, "duplicates": 3, "bad_fcs_packets": 1}
        assert bench.probed["next_expected"] == 25


def test_bad_fcs_on_a_gap_packet_then_no_gap_reported_and_state_rolled_back():
    rng = random.Random(9)
    payloads = data_packets(rng, 1, 3)
    bench = run_arbiter(feed_schedule([payloads[0], payloads[2]], feed=0, gap=4, errors={1}), gap_timeout=0)
    assert events(bench) == expected(payloads[0], payloads[2])
    assert bench.seen["gaps"] == []
    assert bench.probed["next_expected"] == 5
    assert counters(bench) == {"accepted_packets": 2, "bad_fcs_packets": 1}


def test_runt_and_header_only_data_packets_then_next_packet_accepted():
    rng = random.Random(10)
    payloads = data_packets(rng, 1, 2)
    runts = [payloads[0][:8], payloads[0][:16], payloads[0][:19]]
    bench = run_arbiter(feed_schedule(runts + [payloads[0], payloads[1]], feed=0, gap=1))
    assert events(bench) == expected(*payloads)
    assert counters(bench) == {"accepted_packets": 2, "runt_packets": 3}


def test_both_feeds_full_rate_with_different_data_then_overflow_counted_and_nothing_silently_lost():
    rng = random.Random(11)
    # A carries the even packets, B the odd ones: both must be accepted, twice what one feed's splitter takes
    # while the other's packets wait in their buffer.
    payloads = data_packets(rng, 1, 24, messages=8)
    bench = run_arbiter(feed_schedule(payloads[0::2], feed=0), feed_schedule(payloads[1::2], feed=1, skew=1),
                        body_depth=128, max_payload_bytes=400, gap_timeout=16, tail=400)
    # Every message has its own order reference: map each event back to its sequence number.
    sequence_of = {}
    for payload in payloads:
        first = int.from_bytes(payload[10:18], "big")
        for offset, event in enumerate(expected(payload)):
            sequence_of[event["order_ref"]] = first + offset
    delivered = [sequence_of[event["order_ref"]] for event in bench.seen["events"]]
    missing = [number for gap in bench.seen["gaps"] for number in range(gap["first"], gap["first"] + gap["count"])]
    assert bench.probed["overflow"] > 0
    # Every sequence number up to next_expected is delivered once or reported missing once, in order.
    assert sorted(delivered + missing) == list(range(1, bench.probed["next_expected"]))
    assert delivered == sorted(delivered)
    assert bench.probed["accepted_packets"] + bench.probed["overflow"] == 24
    assert len(delivered) == 8 * bench.probed["accepted_packets"]


def test_packet_longer_than_buffer_limit_then_cut_counted_rolled_back_and_gap_reported():
    rng = random.Random(12)
    first = mold_packet(1, [random_message(rng, "D", locate=1)])
    too_long = mold_packet(2, [random_message(rng, "D", locate=2) for _ in range(30)])
    follow = mold_packet(32, [random_message(rng, "D", locate=3)])
    bench = run_arbiter(feed_schedule([first, too_long, follow], feed=0, gap=2),
                        body_depth=128, max_payload_bytes=400, gap_timeout=0)
    # The long packet is cut after 400 bytes: its complete messages were delivered, then it is rolled back.
    assert events(bench) == expected(first, too_long[:400], follow)
    assert [(gap["first"], gap["count"]) for gap in bench.seen["gaps"]] == [(2, 30)]
    assert counters(bench) == {"accepted_packets": 3, "overflow": 1, "gaps": 1}
    assert splitter_counters(bench) == {"truncated_messages": 1, "count_errors": 1}


def test_feed_dies_inside_an_accepted_packet_then_given_up_and_other_copy_accepted():
    rng = random.Random(13)
    payloads = data_packets(rng, 1, 3, messages=6)
    dying = feed_schedule(payloads[:2], feed=0)
    dying = dying[:len(dying) - 10]
    bench = run_arbiter(dying, feed_schedule(payloads, feed=1, skew=5), tail=150)
    sent = 8 * (len(payload_beats(payloads[1])) - 10)
    assert events(bench) == expected(payloads[0], payloads[1][:sent], payloads[1], payloads[2])
    assert counters(bench) == {"accepted_packets": 4, "duplicates": 1, "cut_packets": 1}


def test_new_packet_starts_inside_an_accepted_packet_then_old_one_given_up_and_other_copy_accepted():
    rng = random.Random(14)
    payloads = data_packets(rng, 1, 3, messages=6)
    beats = [payload_beats(payload, feed=0) for payload in payloads]
    interrupted, _cycles = schedule_packets([beats[0], beats[1][:-4], beats[2]])
    bench = run_arbiter(interrupted, feed_schedule(payloads, feed=1, skew=5))
    sent = 8 * (len(beats[1]) - 4)
    assert events(bench) == expected(payloads[0], payloads[1][:sent], payloads[1], payloads[2])
    assert counters(bench) == {"accepted_packets": 4, "duplicates": 2, "cut_packets": 1}
