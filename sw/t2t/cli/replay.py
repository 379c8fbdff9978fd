"""``t2t replay``: an ITCH capture through the cycle-accurate gateware (the virtual card), with the host's real
configuration path, writing what the card did as CSV.

    t2t replay day.itch.gz --all --bbo-out bbo.csv
    t2t replay day.itch --config configs/strategy.yaml --orders-out orders.csv
"""

import csv
import json
import pathlib

from ..config.schema import ConfigError
from ..config.strategy import load_strategy
from ..trading import ORDER_CSV_COLUMNS, TradingError
from .errors import CliError

__all__ = ["register"]

REJECT_CSV_COLUMNS = ("symbol", "locate", "side", "shares", "price", "reason")


def register(subparsers):
    replay = subparsers.add_parser(
        "replay", help="replay an ITCH file through the virtual card (BBO, orders, latency)",
        description="Replay a BinaryFILE (.itch or .itch.gz) or a pcap of MoldUDP64 frames through the "
                    "cycle-accurate gateware. Symbol slots come from the file's stock directory (R messages); with "
                    "--config the strategy's thresholds and risk limits are loaded through the card's registers and "
                    "the strategy is armed, exactly as on a card. Needs the simulation extra "
                    "(pip install 'tick2trade[sim]').")
    replay.add_argument("input", metavar="FILE", help="BinaryFILE (.itch, .itch.gz) or pcap")
    which = replay.add_mutually_exclusive_group()
    which.add_argument("--symbols", help="comma-separated symbols to follow (slots in this order)")
    which.add_argument("--all", action="store_true",
                       help="follow every symbol of the directory, up to the card's slots (says which were left out)")
    replay.add_argument("--config", metavar="STRATEGY.yaml",
                        help="strategy file (thresholds and risk limits; see configs/strategy.yaml)")
    replay.add_argument("--bbo-out", metavar="CSV", help="write one row per BBO change: "
                        "timestamp_ns,locate,symbol,bid_px,bid_qty,ask_px,ask_qty (Price(4); empty side 0,0)")
    replay.add_argument("--orders-out", metavar="CSV", help="write one row per order sent: " + ",".join(ORDER_CSV_COLUMNS))
    replay.add_argument("--rejects-out", metavar="CSV", help="write one row per order the risk gate refused")
    replay.add_argument("--report", metavar="DIR",
                        help="close the loop with the exchange simulator and write orders, fills, positions, P&L "
                             "(CSV and PNG) and a summary to DIR")
    replay.add_argument("--ab", action="store_true", help="send every packet on feed A and feed B (arbitration)")
    replay.add_argument("--json", action="store_true", help="print the summary as JSON")
    replay.set_defaults(handler=replay_command)


def _write_csv(path, columns, rows):
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        writer.writerows(rows)


def replay_command(args):
    try:
        from t2t_sim.replay import BBO_CSV_COLUMNS, Replay
    except ImportError as error:
        raise CliError(f"t2t replay needs the virtual card: pip install 'tick2trade[sim]' ({error})", exit_code=1)
    strategy = None
    if args.config:
        try:
            strategy = load_strategy(args.config)
        except ConfigError as error:
            raise CliError(str(error), exit_code=2)
    symbols = None
    if args.symbols:
        symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    elif not args.all:
        symbols = strategy.thresholds.traded_symbols if strategy else None
    if strategy and symbols is not None:
        symbols = list(dict.fromkeys(strategy.thresholds.traded_symbols + symbols))
    if not pathlib.Path(args.input).exists():
        raise CliError(f"{args.input}: no such file", exit_code=2)
    loop = None
    if args.report:
        if not strategy:
            raise CliError("--report needs --config (the strategy whose orders the exchange simulator fills)",
                           exit_code=2)
        from t2t_sim.closed_loop import closed_loop_for
        loop = closed_loop_for(strategy)
    runner = Replay(symbols=symbols, thresholds=strategy.thresholds if strategy else None,
                    risk=strategy.risk if strategy else None, ab=args.ab, loop=loop)
    try:
        result = runner.run(args.input)
    except TradingError as error:
        raise CliError(str(error), exit_code=2)
    if args.bbo_out:
        _write_csv(args.bbo_out, BBO_CSV_COLUMNS, result.bbo)
    if args.orders_out:
        _write_csv(args.orders_out, ORDER_CSV_COLUMNS, [order.csv_row() for order in result.orders])
    if args.rejects_out:
        _write_csv(args.rejects_out, REJECT_CSV_COLUMNS,
                   [[r.symbol, r.locate, r.side, r.shares, r.price, r.reason] for r in result.rejects])
    report_summary = None
    if loop is not None:
        from t2t_sim.closed_loop import write_loop_report
        files, report_summary = write_loop_report(loop, args.report)
        report_summary += "\nwritten: " + ", ".join(str(path) for path in files.values())
    summary = {
        "messages": result.messages, "frames": result.frames, "cycles": result.cycles,
        "seconds": round(result.seconds, 3), "messages_per_second": round(result.messages_per_second),
        "symbols": result.slot_map.symbols, "left_out": result.left_out, "bbo_changes": len(result.bbo),
        "orders": len(result.orders), "rejects": len(result.rejects),
        "rejects_by_reason": _by_reason(result.rejects), "counters": result.counters,
        "latency_cycles": _latency(result.latency),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"replayed {result.messages} messages in {result.frames} frames: {result.cycles} cycles, "
              f"{result.seconds:.2f} s ({result.messages_per_second:,.0f} messages/s)")
        print(f"followed: {', '.join(result.slot_map.symbols) or '(none)'}")
        if result.left_out:
            print(f"left out (no slot): {', '.join(result.left_out)}")
        print(f"BBO changes: {len(result.bbo)}   orders sent: {len(result.orders)}   rejects: {len(result.rejects)}")
        for reason, count in summary["rejects_by_reason"].items():
            print(f"  rejected {reason}: {count}")
        latency = summary["latency_cycles"]
        if latency:
            print(f"tick-to-trade: min {latency['min']} / median {latency['median']} / max {latency['max']} cycles")
        if report_summary:
            print(report_summary)
    return 0


def _by_reason(rejects):
    counts = {}
    for reject in rejects:
        counts[reject.reason] = counts.get(reject.reason, 0) + 1
    return counts


def _latency(figures):
    if not figures or not figures.count:
        return None
    return {"count": figures.count, "min": figures.min, "median": figures.median(), "max": figures.max,
            "histogram": list(figures.histogram)}
