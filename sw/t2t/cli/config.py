"""``t2t thresholds check FILE`` and ``t2t risk check FILE``: validate a trader's file without touching a card.

Loading onto the card (``thresholds load``, ``risk load``) comes with the strategy and risk-gate registers.
"""

import dataclasses
import json

from ..config import ConfigError, load_risk, load_thresholds
from .errors import CliError

__all__ = ["register"]

EXIT_BAD_INPUT = 2


def _known(args):
    return set(args.symbols.split(",")) if args.symbols else None


def _check(loader):
    def handler(args):
        try:
            config = loader(args.file, _known(args))
        except ConfigError as error:
            raise CliError(f"{args.file}: {error}", exit_code=EXIT_BAD_INPUT) from None
        if args.json:
            print(json.dumps(dataclasses.asdict(config), default=sorted))
        else:
            print(f"{args.file}: valid")
        return 0
    return handler


def register(subparsers):
    for name, loader, what in (("thresholds", load_thresholds, "per-symbol threshold rules"),
                               ("risk", load_risk, "pre-trade risk limits")):
        parser = subparsers.add_parser(name, help=f"{what} (YAML)")
        actions = parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)
        check = actions.add_parser("check", help="validate a file: every problem with its line, nothing sent")
        check.add_argument("file", metavar="FILE")
        check.add_argument("--symbols", metavar="A,B,...", help="the known symbols (default: do not check)")
        check.set_defaults(handler=_check(loader))
