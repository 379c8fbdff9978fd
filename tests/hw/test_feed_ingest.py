"""FeedIngest end to end: A/B payloads in, filtered events out, at line rate, with bad input and back-pressure."""

import random

from t2t_gateware.feed.ingest import COUNTERS, FeedIngest
from t2t_gateware.feed.itch import MESSAGE_TYPES
from t2t_gateware.feed.moldudp64 import SequenceGap
from t2t_gateware.streams import ItchEvent, PayloadBeat

from itchbytes import (Bench, block, events_of_payloads, mold_packet, payload_beats, random_message,
                       schedule_packets)

# Cycles from the payload beat carrying a message's last byte to its event on o_event, when the ingest is idle.
LATENCY = 2
LOCATES = (1, 2, 3, 7, 300, 65535)


def schedule(payloads, *, feed, skew=0, gap=0):
    beats, _cycles = schedule_packets([payload_beats(payload, feed=feed) for payload in payloads], gap=gap)
    return [None] * skew + beats


def run_ingest(feed_a, feed_b=(), *, subscribed=LOCATES, unsubscribed=(), ready=None, tail=60, **options):
    """Subscribe, then unsubscribe, the given locates; then run the traffic."""
    dut = FeedIngest(**options)
    bench = Bench(dut)
    for locate in subscribed:
        bench.setup((dut.sub_addr, locate), (dut.sub_data, 1), (dut.sub_we, 1))
    for locate in unsubscribed:
        bench.setup((dut.sub_addr, locate), (dut.sub_data, 0), (dut.sub_we, 1))
    bench.drive(dut.i_feed_a, PayloadBeat, list(feed_a))
    bench.drive(dut.i_feed_b, PayloadBeat, list(feed_b))
    bench.watch("events", dut.o_event, ItchEvent, ready=ready or (lambda cycle: True))
    bench.watch("gaps", dut.o_gap, SequenceGap, ready=lambda cycle: True)
    for name in COUNTERS + ("next_expected",):
        bench.probe(name, getattr(dut, name))
    for index, letter in enumerate(MESSAGE_TYPES):
        bench.probe(letter, dut.message_counts[index])
    return bench.run(tail=tail)


def events_without_stamp(bench):
    return [{name: value for name, value in event.items() if name not in ("stamp", "cycle")}
            for event in bench.seen["events"]]


def expected_events(payloads, subscribed=LOCATES):
    events, type_counts, counters = events_of_payloads([(payload, 0) for payload in payloads])
    return [event for event in events if event["locate"] in subscribed or event["kind"] == 8], type_counts, counters


def nonzero(bench):
    return {name: bench.probed[name] for name in COUNTERS if bench.probed[name]}


def test_identical_feeds_of_delete_packets_at_full_duty_then_every_event_once_at_line_rate():
    rng = random.Random(1)
    per_packet = (1400 - 20) // 21
    payloads = [mold_packet(1 + n * per_packet, [random_message(rng, "D", locate=rng.choice(LOCATES))
                                                 for _ in range(per_packet)]) for n in range(5)]
    feed_a = schedule(payloads, feed=0)
    bench = run_ingest(feed_a, schedule(payloads, feed=1, skew=3))
    expected, type_counts, _counters = expected_events(payloads)
    assert events_without_stamp(bench) == expected
    assert bench.probed["D"] == type_counts["D"] == 5 * per_packet
    assert nonzero(bench) == {"accepted_packets": 5, "duplicates": 5}
    rate = len(expected) / len(feed_a)
    latencies = [event["cycle"] - event["stamp"] for event in bench.seen["events"]]
    print(f"\ningest: {len(expected)} D events from {len(feed_a)} payload beats per feed at 100% duty on A and B: "
          f"{rate:.3f} events/cycle, latency {min(latencies)}..{max(latencies)} cycles")
    assert set(latencies) == {LATENCY}
    assert rate > 0.37


def test_unsubscribed_stocks_then_held_back_and_system_events_pass_always():
    rng = random.Random(2)
    messages = [random_message(rng, rng.choice("AFEXDUCPQH"), locate=rng.choice((1, 2, 9, 10, 300, 301)))
                for _ in range(40)] + [random_message(rng, "S")]
    payloads = [mold_packet(1, messages[:20]), mold_packet(21, messages[20:])]
    bench = run_ingest(schedule(payloads, feed=0, gap=2), subscribed=(2, 300, 9), unsubscribed=(9,))
    expected, _type_counts, _counters = expected_events(payloads, subscribed=(2, 300))
    assert events_without_stamp(bench) == expected
    assert any(event["kind"] == 8 for event in expected)
    assert bench.probed["unsubscribed_events"] == len(messages) - len(expected)


def test_output_held_back_then_event_fifo_fills_and_overflow_counted_in_order():
    rng = random.Random(3)
    payloads = [mold_packet(1, [random_message(rng, "D", locate=1) for _ in range(40)])]
    bench = run_ingest(schedule(payloads, feed=0), ready=lambda cycle: cycle > 150, event_depth=16)
    expected, _type_counts, _counters = expected_events(payloads)
    # All 40 events are decoded before the consumer wakes up: the first 16 wait in the FIFO, the rest are lost.
    assert events_without_stamp(bench) == expected[:16]
    assert bench.seen["events"][0]["cycle"] == 151
    assert bench.probed["event_overflow"] == 40 - 16


def test_bad_input_on_both_feeds_then_counted_and_next_good_packet_decodes():
    rng = random.Random(4)

    def good(sequence):
        return mold_packet(sequence, [random_message(rng, letter, locate=1) for letter in "AEDSU"])

    delete = random_message(rng, "D", locate=1)
    payloads = [
        good(1),
        mold_packet(6, count=3, blocks=block(delete) + block(delete, 0) + block(delete)),
        good(9),
        mold_packet(14, count=2, blocks=block(delete) + block(b"Z" + rng.randbytes(20))),
        good(16),
        mold_packet(21, [delete, delete, delete])[:-4],
        good(24),
        mold_packet(29, [delete, delete], count=4),
        good(33),
    ]
    bench = run_ingest(schedule(payloads, feed=0), schedule(payloads, feed=1, skew=11), tail=80)
    expected, type_counts, counters = expected_events(payloads)
    assert events_without_stamp(bench) == expected
    assert {letter: bench.probed[letter] for letter in type_counts} == type_counts
    assert {name: bench.probed[name] for name in counters} == counters
    assert counters == {"truncated_messages": 1, "length_errors": 1, "unknown_types": 1, "count_errors": 2}
    assert bench.probed["duplicates"] == len(payloads)
    assert bench.probed["next_expected"] == 38
