"""Cycle figures of single gateware blocks, measured in the Amaranth simulator with the testbenches of tests/hw
(the same harnesses the tests assert on, so the bench and the tests cannot drift apart).

- Ingest (two UdpReceivers + FeedIngest): packets full of D messages (the shortest decoded type) back to back at
  100 % duty on both feeds; messages per cycle and the cycles from the MAC beat carrying each message's last byte
  to its event.
- Book (BookBuilder, default sizes): a generated session at full rate; events per cycle and the cycles from an
  event's handshake to its BBO update.
- Risk gate (RiskGate): orders within every limit; cycles from the order's handshake to the gate's output.
"""

import pathlib
import random
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "hw"))


def ingest_figures(packets=6):
    from test_feed_latency import Feed, check_latency, delete_packets, run

    rng = random.Random(2026)
    locates = (1, 2, 3, 300)
    payloads = delete_packets(rng, packets, (1400 - 20) // 21, locates)
    feed_a, feed_b = Feed(0), Feed(3)
    for payload in payloads:
        feed_a.send(payload)
        feed_b.send(payload)
    assert all(feed_a.schedule) and all(feed_b.schedule[3:]), "both feeds at 100 % duty"
    # check_latency asserts every event against the messages sent (nothing lost, repeated or reordered).
    latencies = check_latency(payloads, feed_a, feed_b, set(locates))
    events, _counters = run(feed_a, feed_b, set(locates))
    # The line is busy from the first MAC beat to the last: messages delivered over the cycles the wire took.
    wire_cycles = len(feed_a.schedule)
    return {
        "ingest_msgs_per_cycle_line_rate": round(len(events) / wire_cycles, 4),
        "ingest_latency_cycles": max(latencies),
        "ingest_latency_cycles_min": min(latencies),
        "ingest_line_rate_messages": len(events),
    }


def book_figures(messages=5000):
    from t2t.feed.generator import generate_session
    from t2t_gateware.streams import EventKind
    from test_book_builder import BookBench, reference_updates, updates_only

    session = list(generate_session(seed=3, messages=messages))
    slots = {slot: slot + 1 for slot in range(8)}
    bench = BookBench(slots=slots).run(session)
    expected, _book = reference_updates(session, slots)
    assert updates_only(bench) == expected, "the book's updates differ from the reference book's"
    accepted = {event["stamp"]: (cycle, event["kind"]) for event, cycle in zip(bench.events, bench.accepted)}
    latencies, replace_latencies = set(), set()
    for update, cycle in bench.updates:
        accept_cycle, kind = accepted[update["stamp"]]
        (replace_latencies if kind == EventKind.REPLACE else latencies).add(cycle - accept_cycle)
    span = bench.accepted[-1] - bench.accepted[0] + 2
    return {
        "book_events_per_cycle": round(len(bench.events) / span, 4),
        "book_latency_cycles": max(latencies),
        "book_replace_latency_cycles": max(replace_latencies),
        "book_bench_updates": len(expected),
    }


def risk_gate_figures(orders=200):
    from test_risk_gate import check_against_model, order

    rng = random.Random(5)
    schedule = []
    for _ in range(orders):
        schedule += [{"orders": [order(slot=rng.randrange(4), side=rng.randrange(2), shares=rng.randrange(1, 40))]}] + [{}] * 3
    result = check_against_model(schedule)
    assert not result["rejects"] and len(result["accepted"]) == orders
    handshakes = [event[1] for event in result["events"] if event[0] == "order"]
    added = {cycle - handshake for (cycle, _fields), handshake in zip(result["accepted"], handshakes)}
    return {"risk_gate_added_cycles": max(added), "risk_gate_bench_orders": orders}


def gateware_figures():
    figures = {}
    figures.update(ingest_figures())
    figures.update(book_figures())
    figures.update(risk_gate_figures())
    return figures


if __name__ == "__main__":
    for name, value in gateware_figures().items():
        print(f"{name:36} {value}")
