"""``t2t orders tail`` and ``t2t rejects tail``: the orders the card sent and the orders its risk gate refused.

The card keeps both in read-once queues. Through a card server (``tcp://``) the server is their only reader: it
drains them and keeps the recent entries, numbered (``seq``), for every client and role. On a local card the
command drains the card itself: what it takes off is gone from the card.
"""

import csv
import json
import sys
import time

from .. import trading
from .session import open_session, warn

__all__ = ["register", "time_of_day", "ORDER_COLUMNS", "REJECT_COLUMNS", "format_row"]

DEFAULT_LINES = 20


def time_of_day(nanoseconds):
    """An ITCH timestamp (ns since midnight) as HH:MM:SS.nnnnnnnnn."""
    seconds, ns = divmod(nanoseconds, 1_000_000_000)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{ns:09d}"


#: Human columns: (header, width, how to show an entry).
ORDER_COLUMNS = (
    ("token", 14, lambda e: e["token"]),
    ("time", 18, lambda e: time_of_day(e["timestamp_ns"])),
    ("symbol", 8, lambda e: e["symbol"] or f"#{e['locate']}"),
    ("side", 4, lambda e: e["side"]),
    ("shares", 8, lambda e: e["shares"]),
    ("price", 12, lambda e: trading.format_price(e["price"])),
    ("latency", 7, lambda e: e["latency_cycles"]),
)
REJECT_COLUMNS = (
    ("symbol", 8, lambda e: e["symbol"] or f"#{e['locate']}"),
    ("side", 4, lambda e: e["side"]),
    ("shares", 8, lambda e: e["shares"]),
    ("price", 12, lambda e: trading.format_price(e["price"])),
    ("reason", 14, lambda e: e["reason"]),
)
_RIGHT = {"shares", "price", "latency", "seq"}


def format_row(columns, cells):
    return "  ".join(str(cell).rjust(width) if header in _RIGHT else str(cell).ljust(width)
                     for (header, width, _), cell in zip(columns, cells)).rstrip()


class _Printer:
    def __init__(self, args, name):
        self.args = args
        self.columns = ORDER_COLUMNS if name == "orders" else REJECT_COLUMNS
        self.csv_columns = trading.ORDER_CSV_COLUMNS if name == "orders" else trading.REJECT_CSV_COLUMNS
        self.header_done = False
        self.writer = csv.writer(sys.stdout) if args.csv else None

    def print(self, entries):
        if not entries and not self.args.csv:
            return
        if self.args.json:
            for entry in entries:
                print(json.dumps(entry))
        elif self.writer is not None:
            if not self.header_done:
                self.writer.writerow(self.csv_columns)
            self.writer.writerows([[entry[column] for column in self.csv_columns] for entry in entries])
        else:
            if not self.header_done:
                print(format_row(self.columns, [header for header, _, _ in self.columns]))
            for entry in entries:
                print(format_row(self.columns, [show(entry) for _, _, show in self.columns]))
        self.header_done = True
        sys.stdout.flush()


def _local_rows(name, card, slot_map):
    rows = trading.drain_orders(card, slot_map) if name == "orders" else trading.drain_rejects(card, slot_map)
    return [trading.row_dict(row) for row in rows]


def _tail(name):
    def handler(args):
        printer = _Printer(args, name)
        last = args.lines or None
        with open_session(args) as session:
            card = session.card
            if session.remote:
                reply = card.transport.request("log", log=name, **({"last": last} if last else {}))
                entries, since = reply["entries"], reply["next"]
            else:
                slot_map = trading.read_slots(card)
                entries = _local_rows(name, card, slot_map)
                if last and len(entries) > last:
                    warn(f"{len(entries) - last} older {name} taken off the card's log and not shown "
                         f"(-n 0 shows all)")
                    entries = entries[-last:]
            printer.print(entries)
            if not entries and not args.follow and not args.json and not args.csv:
                print(f"no {name} yet" if session.remote else f"no {name} in the card's log")
            if not args.follow:
                return 0
            stop = time.monotonic() + args.duration if args.duration else None
            try:
                while stop is None or time.monotonic() < stop:
                    time.sleep(args.interval)
                    if session.remote:
                        reply = card.transport.request("log", log=name, since=since)
                        if reply["dropped"]:
                            warn(f"{reply['dropped']} {name} were no longer kept by the server")
                        entries, since = reply["entries"], reply["next"]
                    else:
                        entries = _local_rows(name, card, slot_map)
                    if entries:
                        printer.print(entries)
            except KeyboardInterrupt:
                pass
        return 0
    return handler


def register(subparsers):
    for name, what in (("orders", "the orders the card sent (its order log)"),
                       ("rejects", "the orders the risk gate refused, with the reason (its reject log)")):
        parser = subparsers.add_parser(name, help=what)
        actions = parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)
        tail = actions.add_parser(
            "tail", help=f"the last {name}; --follow for new ones as they come",
            description=f"Print {what}, oldest first. Through a card server, from the copy the server keeps "
                        f"(any role); on a local card, drained from the card.")
        tail.add_argument("-n", "--lines", type=int, default=DEFAULT_LINES, metavar="N",
                          help=f"how many of the last ones (default {DEFAULT_LINES}; 0: all kept)")
        tail.add_argument("-f", "--follow", action="store_true", help="keep printing new ones (Ctrl-C to stop)")
        tail.add_argument("--interval", type=float, default=0.5, metavar="S",
                          help="with --follow, seconds between two looks (default 0.5)")
        tail.add_argument("--duration", type=float, metavar="S", help="with --follow, stop after S seconds")
        tail.add_argument("--csv", action="store_true",
                          help="CSV with a header: " + ",".join(trading.ORDER_CSV_COLUMNS if name == "orders"
                                                                else trading.REJECT_CSV_COLUMNS)
                          + " (prices in Price(4) ticks)")
        tail.set_defaults(handler=_tail(name))
