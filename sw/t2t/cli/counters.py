"""``t2t counters`` (read once from the card) and ``t2t monitor`` (a live view from a server's telemetry: best bid
and offer of each slot, the latest orders and rejects, latency and the main counters, redrawn in place)."""

import collections
import fractions
import json
import sys

from .. import trading
from ..server.keys import KeyFileError, load_keypair, load_public_key
from ..server.telemetry import counter_paths, subscribe
from .errors import CliError
from .logs import ORDER_COLUMNS, REJECT_COLUMNS, format_row
from .market import cycles_text, ns_text
from .regs import open_card_for

__all__ = ["register"]

EXIT_USAGE, EXIT_NO_CARD = 2, 3
CLEAR_SCREEN = "\x1b[H\x1b[2J"


def _by_block(counters):
    blocks = {}
    for path, value in counters.items():
        block, _, name = path.partition(".")
        blocks.setdefault(block, []).append((name, value))
    return blocks


def _render(counters, header):
    lines = [header]
    for block, entries in _by_block(counters).items():
        shown = ", ".join(f"{name} {value}" for name, value in entries)
        lines.append(f"  {block:<10} {shown}")
    return "\n".join(lines)


def _counters(args):
    with open_card_for(args) as card:
        counters = {path: card.read(path) for path in counter_paths(card.regmap)}
        cycles = card.read("id.cycles")
    if args.json:
        print(json.dumps({"cycles": cycles, "counters": counters}))
    else:
        print(_render(counters, f"card {args.card}, cycle {cycles}"))
    return 0


#: The counters the live view shows by default: (label, registers summed).
_KEY_COUNTERS = (
    ("events", ("itch.events",)), ("bbo", ("book.bbo_updates",)), ("signals", ("strategy.signals",)),
    ("disarmed", ("strategy.disarmed",)), ("accepted", ("risk.accepted",)), ("sent", ("orders.sent",)),
    ("gaps", ("moldudp64.gaps",)),
)


def _px(ticks, shares):
    return f"{trading.format_price(ticks)} x {shares}" if ticks else "-"


def render_view(message, orders, rejects, header, all_counters=False):
    """The live view of one ``counters`` message and the latest orders and rejects (entries as logged)."""
    counters = message["counters"]
    lines = [header,
             f"strategy {'ARMED' if message.get('armed') else 'disarmed'}    kill switch "
             f"{'KILLED' if message.get('killed') else 'off'}", ""]
    bbo = message.get("bbo") or []
    if bbo:
        lines.append(f"{'slot':>4}  {'symbol':<8} {'bid':>20}  {'ask':>20}")
        for row in bbo:
            lines.append(f"{row['slot']:>4}  {row['symbol']:<8} {_px(row['bid'], row['bid_shares']):>20}  "
                         f"{_px(row['ask'], row['ask_shares']):>20}")
    else:
        lines.append("no symbol slot in use")
    latency = message.get("latency") or {}
    if latency.get("count"):
        mean = fractions.Fraction(latency["mean_x100"], 100)
        lines.append(f"\nlatency  {latency['count']} orders: min {latency['min']}, median {latency['median']}, "
                     f"mean {cycles_text(mean)}, max {latency['max']} cycles (median {ns_text(latency['median'])} ns)")
    else:
        lines.append("\nlatency  no order measured yet")
    rejected = sum(value for path, value in counters.items() if path.startswith("risk.rejected_"))
    shown = [f"{label} {sum(counters.get(path, 0) for path in paths)}" for label, paths in _KEY_COUNTERS]
    lines.append("counters " + ", ".join(shown[:5] + [f"rejected {rejected}"] + shown[5:]))
    for title, entries, columns in (("orders", orders, ORDER_COLUMNS), ("rejects", rejects, REJECT_COLUMNS)):
        lines.append(f"\nlast {title}" + ("" if entries else ": none"))
        if entries:
            lines.append("  " + format_row(columns, [header for header, _, _ in columns]))
            lines += ["  " + format_row(columns, [show(entry) for _, _, show in columns]) for entry in entries]
    if all_counters:
        lines.append("")
        lines.append(_render(counters, "all counters"))
    return "\n".join(lines)


def _recent(args, log):
    """The last orders or rejects the card server keeps, to start the view with (telemetry only brings new ones);
    none when the card is not a card server or does not answer."""
    if not args.card.startswith("tcp://") or args.json:
        return []
    try:
        with open_card_for(args) as card:
            return card.transport.request("log", log=log, last=args.rows)["entries"]
    except Exception:  # the live view does not depend on it
        return []


def _monitor(args):
    if not args.key or not args.server_pub:
        raise CliError("monitor needs --key and --server-pub (or $T2T_KEY and $T2T_SERVER_PUB)",
                       exit_code=EXIT_USAGE)
    try:
        keypair = load_keypair(args.key)
        server_public = load_public_key(args.server_pub)
    except KeyFileError as error:
        raise CliError(str(error), exit_code=EXIT_USAGE) from None
    shown = 0
    orders = collections.deque(_recent(args, "orders"), maxlen=args.rows)
    rejects = collections.deque(_recent(args, "rejects"), maxlen=args.rows)
    try:
        for topic, message in subscribe(args.telemetry, keypair, server_public):
            topic = topic.decode("ascii", "replace")
            if args.json:
                print(json.dumps({"topic": topic, **message}), flush=True)
            elif topic in ("orders", "rejects"):
                (orders if topic == "orders" else rejects).extend(message["entries"])
            elif topic == "counters":
                sys.stdout.write(CLEAR_SCREEN + render_view(
                    message, list(orders), list(rejects),
                    f"telemetry {args.telemetry}: snapshot {message['seq']}, cycle {message['cycles']}  "
                    f"(Ctrl-C to quit)", args.all_counters) + "\n")
                sys.stdout.flush()
            if topic == "counters":
                shown += 1
                if args.count and shown >= args.count:
                    break
    except TimeoutError as error:
        raise CliError(str(error), exit_code=EXIT_NO_CARD) from None
    except KeyboardInterrupt:
        pass
    return 0


def register(subparsers):
    counters = subparsers.add_parser("counters", help="every counter of the card, by block")
    counters.set_defaults(handler=_counters)
    monitor = subparsers.add_parser(
        "monitor", help="a live view of a served card: BBO, orders, rejects, latency, counters (t2t serve --telemetry)",
        description="Subscribe to a card server's telemetry and redraw, at every snapshot, the best bid and offer "
                    "of each slot, the latest orders and rejects, the latency figures and the main counters. Sends "
                    "the card nothing. With --json, one JSON object per message (with its topic).")
    monitor.add_argument("--telemetry", required=True, metavar="ENDPOINT",
                         help="the server's telemetry endpoint, e.g. tcp://127.0.0.1:5556")
    monitor.add_argument("--count", type=int, default=0, help="stop after this many snapshots (default: never)")
    monitor.add_argument("--rows", type=int, default=10, metavar="N",
                         help="latest orders and rejects shown (default 10)")
    monitor.add_argument("--all-counters", action="store_true", help="also every counter of the card, by block")
    monitor.set_defaults(handler=_monitor)
