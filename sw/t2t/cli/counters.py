"""``t2t counters`` (read once from the card) and ``t2t monitor`` (a live view from a server's telemetry)."""

import json
import sys

from ..server.keys import KeyFileError, load_keypair, load_public_key
from ..server.telemetry import counter_paths, subscribe
from .errors import CliError
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
    try:
        for _, message in subscribe(args.telemetry, keypair, server_public):
            if args.json:
                print(json.dumps(message), flush=True)
            else:
                sys.stdout.write(CLEAR_SCREEN + _render(
                    message["counters"], f"telemetry {args.telemetry}: snapshot {message['seq']}, "
                                         f"cycle {message['cycles']}  (Ctrl-C to quit)") + "\n")
                sys.stdout.flush()
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
        "monitor", help="a live view of the counters a card server publishes (t2t serve --telemetry)")
    monitor.add_argument("--telemetry", required=True, metavar="ENDPOINT",
                         help="the server's telemetry endpoint, e.g. tcp://127.0.0.1:5556")
    monitor.add_argument("--count", type=int, default=0, help="stop after this many snapshots (default: never)")
    monitor.set_defaults(handler=_monitor)
