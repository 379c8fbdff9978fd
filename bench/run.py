"""Benchmarks: print their figures and write them to bench/results.json as a flat {name: number} object.

Figures are in cycles, or rates measured in this process; names carry their unit. Names given by the issues stay
stable.
"""

import json
import pathlib
import time

import numpy as np

from t2t_sim.virtual_card import FLAG_FIRST, FLAG_LAST, VirtualCard

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"


def virtual_card_cycles_per_s(cycles=20_000_000):
    """Simulated cycles per wall-clock second of the whole top level with both RX ports busy every cycle."""
    card = VirtualCard()
    frame_beats = 8
    count = cycles // frame_beats
    data = np.arange(count * frame_beats, dtype=np.uint64)
    keep = np.full(count * frame_beats, 0xFF, np.uint8)
    flags = np.zeros(count * frame_beats, np.uint8)
    flags[::frame_beats] |= FLAG_FIRST
    flags[frame_beats - 1::frame_beats] |= FLAG_LAST
    card.push_rx(0, data, keep, flags)
    card.push_rx(1, data, keep, flags)
    started = time.perf_counter()
    ran = card.run_until_rx_drained(extra_cycles=0)
    elapsed = time.perf_counter() - started
    card.close()
    return ran / elapsed


def replay_against_peers(messages=1_000_000, seed=2027):
    """One generated session of ``messages`` through the virtual card (all 8 slots), the Python reference book and
    itch-book (C++ core), each timed on the same file in this process; the card's BBO sequence is checked row for
    row against the reference's. Returns the figures as a dict."""
    import datetime
    import tempfile

    import itch_book

    from t2t.book.reference import bbo_changes_of_binaryfile
    from t2t.feed.generator import write_session
    from t2t_sim.replay import Replay

    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "session.itch"
        write_session(path, seed=seed, messages=messages)
        replay = Replay(symbols=None).run(path)
        started = time.perf_counter()
        _, changes = bbo_changes_of_binaryfile(path)
        reference_seconds = time.perf_counter() - started
        started = time.perf_counter()
        feed = itch_book.Feed(str(path), date=datetime.date(2024, 1, 2), price_type="fixed")
        itch_rows = sum(len(batch.bbo["seq"]) for batch in feed.batches(tables=("bbo",)))
        itchbook_seconds = time.perf_counter() - started
    expected, last = [], {}
    for change in changes:
        values = (change.bid_px, change.bid_qty, change.ask_px, change.ask_qty)
        if last.get(change.locate) != values:
            last[change.locate] = values
            expected.append((change.timestamp_ns, change.locate, *values))
    card_rows = [(row[0], row[1], *row[3:]) for row in replay.bbo]
    return {
        "replay_msgs_per_s": round(replay.messages / replay.seconds),
        "reference_book_msgs_per_s": round(messages / reference_seconds),
        "itchbook_msgs_per_s": round(messages / itchbook_seconds),
        "replay_vs_itchbook_ratio": round(replay.messages / replay.seconds / (messages / itchbook_seconds), 5),
        "reference_book_vs_itchbook_ratio": round(reference_seconds and itchbook_seconds / reference_seconds, 5),
        "book_crosscheck_messages": messages,
        "book_crosscheck_bbo_rows": len(card_rows),
        "book_crosscheck_rows_in_reference_order": int(_is_subsequence(card_rows, expected)),
        "book_crosscheck_reference_rows": len(expected),
        "book_degraded_updates": len(replay.bbo_degraded),
        "itchbook_bbo_rows": itch_rows,
        "replay_cycles_per_msg": round(replay.cycles / replay.messages, 3),
    }


def _is_subsequence(rows, reference):
    remaining = iter(reference)
    return all(any(row == candidate for candidate in remaining) for row in rows)


def tick_to_trade_latency():
    """Tick-to-trade cycles over the demo replay (sample strategy, feeds A and B), from the card's order log."""
    from t2t.config.strategy import load_strategy
    from t2t_sim.replay import Replay

    strategy = load_strategy(ROOT / "configs" / "strategy.yaml")
    result = Replay(symbols=strategy.thresholds.traded_symbols, thresholds=strategy.thresholds, risk=strategy.risk,
                    ab=True).run(ROOT / "samples" / "demo_session.itch.gz")
    cycles = sorted(order.latency_cycles for order in result.orders)
    if not cycles:
        return {}
    return {"t2t_latency_cycles_min": cycles[0], "t2t_latency_cycles_median": cycles[(len(cycles) - 1) // 2],
            "t2t_latency_cycles_max": cycles[-1], "t2t_latency_orders": len(cycles)}


def host_position_figures():
    from t2t.positions.bench import breach_to_kill_ms, fills_per_s

    return {"fills_per_s": round(fills_per_s()), "breach_to_kill_ms": round(breach_to_kill_ms(), 4)}


def ooc_fmax_mhz():
    """Out-of-context Fmax of the ingest and of the book on the Versa board's LFE5UM5G-45F (seed 1): the figures
    the ingest and book issues ask for next to the whole design's (which needs the larger 85F)."""
    from t2t_gateware.book.builder import BookBuilder
    from t2t_gateware.feed.ingest import FeedIngest
    from t2t_gateware.ooc import time_block

    return {"fmax_mhz_ingest_versa_ecp5_5g": time_block(FeedIngest())["fmax_mhz"],
            "fmax_mhz_book_versa_ecp5_5g": time_block(BookBuilder())["fmax_mhz"]}


def fmax_mhz(board="ecpix5_85"):
    report = ROOT / "bitstreams" / board / "report.json"
    if not report.exists():
        return None
    return json.loads(report.read_text())["fmax_mhz"]


def make_test_seconds():
    path = ROOT / "build" / "make_test_seconds"
    return float(path.read_text()) if path.exists() else None


def main():
    from gateware_bench import gateware_figures
    from host_bench import (remote_reg_ops_per_s, telemetry_msgs_per_s, threshold_load_256_ms_remote,
                            threshold_load_256_ms_sim)

    remote_rate, local_rate = remote_reg_ops_per_s()
    results = {
        "threshold_load_256_ms_sim": round(threshold_load_256_ms_sim(), 2),
        "threshold_load_256_ms_remote": round(threshold_load_256_ms_remote(), 2),
        "virtual_card_cycles_per_s": round(virtual_card_cycles_per_s()),
        "remote_reg_ops_per_s": round(remote_rate),
        "remote_vs_in_process_reg_ops_ratio": round(remote_rate / local_rate, 4),
        "telemetry_msgs_per_s": round(telemetry_msgs_per_s()),
        "fmax_mhz_ecpix5_85": fmax_mhz(),
        "make_test_seconds": make_test_seconds(),
    }
    results.update(gateware_figures())
    results.update(tick_to_trade_latency())
    results.update(host_position_figures())
    results.update(replay_against_peers())
    results.update(ooc_fmax_mhz())
    missing = [name for name, value in results.items() if value is None]
    results = {name: value for name, value in results.items() if value is not None}
    for name, value in results.items():
        print(f"{name:32} {value}")
    for name in missing:
        hint = "run `make bitstream`" if name.startswith("fmax") else "run `make test`"
        print(f"{name:32} (not measured yet: {hint})")
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
