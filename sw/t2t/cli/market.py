"""``t2t latency`` (the card's tick-to-trade figures and histogram) and ``t2t book SYMBOL`` (a depth snapshot)."""

import argparse
import decimal
import fractions
import json

from .. import trading
from .errors import CliError
from .session import EXIT_USAGE, open_session, price, table

__all__ = ["register", "DEFAULT_CLOCK_MHZ", "ns_text", "latency_lines"]

DEFAULT_CLOCK_MHZ = fractions.Fraction(15625, 100)
BAR_WIDTH = 40


def _clock(text):
    try:
        value = fractions.Fraction(decimal.Decimal(text))
    except (decimal.InvalidOperation, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a frequency in MHz") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the clock must be above 0 MHz")
    return value


def ns_text(cycles, clock_mhz=DEFAULT_CLOCK_MHZ):
    """``cycles`` (an int or a Fraction) as nanoseconds with one decimal."""
    tenths = round(fractions.Fraction(cycles) * 10_000 / clock_mhz)
    return f"{tenths // 10}.{tenths % 10}"


def cycles_text(value):
    value = fractions.Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    hundredths = round(value * 100)
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def latency_summary(figures):
    """``{name: cycles}`` of count, min, median, mean (a Fraction), max; None where there is no order yet."""
    if not figures.count:
        return {"count": 0, "min": None, "median": None, "mean": None, "max": None}
    return {"count": figures.count, "min": figures.min, "median": figures.median(),
            "mean": fractions.Fraction(figures.mean_x100, 100), "max": figures.max}


def latency_lines(figures, clock_mhz=DEFAULT_CLOCK_MHZ, histogram=True):
    """The human view of :class:`t2t.trading.LatencyFigures`: the figures, then a text bar chart."""
    summary = latency_summary(figures)
    if not figures.count:
        return ["no order measured yet"]
    last_bin = len(figures.histogram) - 1
    lines = [f"orders measured  {figures.count}  (clock {cycles_text(clock_mhz)} MHz: "
             f"1 cycle = {ns_text(1, clock_mhz)} ns)"]
    for name in ("min", "median", "mean", "max"):
        value = summary[name]
        at_least = name == "median" and value == last_bin
        lines.append(f"{name:<7} {('>=' if at_least else '') + cycles_text(value):>8} cycles  "
                     f"{('>=' if at_least else '') + ns_text(value, clock_mhz):>9} ns")
    if histogram:
        used = [cycles for cycles, count in enumerate(figures.histogram) if count]
        peak = max(figures.histogram)
        lines.append("histogram (cycles: orders)")
        previous = None
        for cycles in used:
            if previous is not None and cycles > previous + 1:
                lines.append("   ... |")  # bins with no order
            count = figures.histogram[cycles]
            bar = "#" * max(1, round(count * BAR_WIDTH / peak))
            label = f">={cycles}" if cycles == last_bin else str(cycles)
            lines.append(f"  {label:>4} | {bar:<{BAR_WIDTH}} {count}")
            previous = cycles
    return lines


def _latency(args):
    with open_session(args) as session:
        figures = trading.latency(session.card)
    if args.json:
        summary = latency_summary(figures)
        mean = summary["mean"]
        print(json.dumps({"count": figures.count, "min": figures.min, "median": summary["median"],
                          "mean_x100": figures.mean_x100, "max": figures.max,
                          "median_at_least": summary["median"] == len(figures.histogram) - 1,
                          "mean_ns": None if mean is None else ns_text(mean, args.clock_mhz),
                          "histogram": list(figures.histogram)}))
        return 0
    print("\n".join(latency_lines(figures, args.clock_mhz)))
    return 0


def _book(args):
    with open_session(args) as session:
        slot_map = trading.read_slots(session.card)
        if args.symbol not in slot_map.symbols:
            raise CliError(f"{args.symbol} has no symbol slot on the card (`t2t symbols show`)", exit_code=EXIT_USAGE)
        slot = slot_map.slot_of(args.symbol)
        bids, asks = trading.depth(session.card, slot, args.levels)
    locate = next(loc for number, _, loc in slot_map.entries if number == slot)
    if args.json:
        print(json.dumps({"symbol": args.symbol, "slot": slot, "locate": locate,
                          "bids": [vars(level) for level in bids], "asks": [vars(level) for level in asks]}))
        return 0
    print(f"{args.symbol} (slot {slot}, locate {locate}): {len(bids)} bid level(s), {len(asks)} ask level(s)")
    rows = [["ask", price(level.price), level.shares, level.orders] for level in reversed(asks)]
    if bids and asks:
        rows.append(["", f"spread {price(asks[0].price - bids[0].price)}", "", ""])
    rows += [["bid", price(level.price), level.shares, level.orders] for level in bids]
    if rows:
        print(table(["side", "price", "shares", "orders"], rows, right=("price", "shares", "orders")))
    else:
        print("the book is empty")
    return 0


def register(subparsers):
    latency = subparsers.add_parser(
        "latency", help="tick-to-trade latency: count, min, median, mean, max and a histogram",
        description="Latency from the RX beat carrying a trigger's last byte to its order's first TX beat, "
                    "measured by the card for every order, in cycles and in ns.")
    latency.add_argument("--clock-mhz", type=_clock, default=DEFAULT_CLOCK_MHZ, metavar="MHZ",
                         help="the card's clock, for ns (default 156.25: 10GbE's 64-bit datapath)")
    latency.set_defaults(handler=_latency)
    book = subparsers.add_parser("book", help="a depth snapshot of one symbol's book, from the card")
    book.add_argument("symbol", metavar="SYMBOL")
    book.add_argument("--levels", type=int, choices=range(1, 33), default=8, metavar="N",
                      help="levels per side (default 8)")
    book.set_defaults(handler=_book)
