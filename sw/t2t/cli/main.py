"""Entry point of the ``t2t`` command line.

Each command family lives in its own module under :mod:`t2t.cli` and exposes ``register(subparsers)``,
which adds its sub-commands and sets ``handler`` (a function of the parsed args returning an exit code).

Exit codes: 0 success, 1 the operation failed (card refused, check failed), 2 bad usage or bad input file,
3 the card could not be opened.
"""

import argparse
import os
import sys
import urllib.parse

from . import config as config_commands
from . import control as control_commands
from . import counters as counters_commands
from . import feed as feed_commands
from . import keys as keys_commands
from . import logs as logs_commands
from . import market as market_commands
from . import regs as regs_commands
from . import replay as replay_commands
from . import serve as serve_commands
from . import symbols as symbols_commands
from .errors import CliError

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_CARD = 0, 1, 2, 3

COMMAND_MODULES = (regs_commands, counters_commands, symbols_commands, config_commands, control_commands,
                   market_commands, logs_commands, feed_commands, serve_commands, keys_commands, replay_commands)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="t2t",
        description="Drive a Tick2Trade card: symbols, thresholds, risk limits, arming and the kill switch, "
                    "orders, rejects, latency and book depth; registers, feeds and counters. "
                    "Exit codes: 0 done, 1 refused or failed (by the card server's roles, the card, a check), "
                    "2 bad usage or a bad file (nothing was sent), 3 no card (unreachable, wrong map). "
                    "See docs/cli.md.",
    )
    parser.add_argument(
        "--card", default=os.environ.get("T2T_CARD", "sim"),
        help="card to use: 'sim' (in-process virtual card), 'pcie://0000:03:00.0' (PCIe BAR), "
             "'tcp://HOST:PORT' (a card shared by `t2t serve`; needs --key and --server-pub) "
             "(default: $T2T_CARD or 'sim')")
    parser.add_argument("--key", metavar="FILE.key", default=os.environ.get("T2T_KEY"),
                        help="your key pair, for a tcp:// card (default: $T2T_KEY)")
    parser.add_argument("--server-pub", metavar="FILE.pub", default=os.environ.get("T2T_SERVER_PUB"),
                        help="the card server's public key, for a tcp:// card (default: $T2T_SERVER_PUB)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--state", metavar="FILE", default=None,
                        help="what this host knows of a local card's rules and positions (the card cannot show "
                             "them); default $T2T_STATE, else t2t-state.json next to $T2T_AUDIT_LOG. Unused for "
                             "a tcp:// card: its server knows")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    if args.card.startswith("tcp://"):
        # The key files travel in the card URL, so every command opens a tcp:// card like any other.
        base, _, query = args.card.partition("?")
        options = dict(urllib.parse.parse_qsl(query))
        for name, value in (("key", args.key), ("server_pub", args.server_pub)):
            if value and name not in options:
                options[name] = value
        args.card = f"{base}?{urllib.parse.urlencode(options)}" if options else base
    try:
        return args.handler(args) or EXIT_OK
    except CliError as error:
        print(f"t2t: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
