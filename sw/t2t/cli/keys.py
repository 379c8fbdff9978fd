"""``t2t keys new NAME``: make a CURVE key pair for the card server or one of its clients."""

import os
import re

from ..server.keys import write_keypair
from .errors import CliError

__all__ = ["register"]

EXIT_USAGE = 2
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _new(args):
    if not _NAME.match(args.name):
        raise CliError(f"{args.name!r} is not a key name (letters, digits, '_', '.', '-')", exit_code=EXIT_USAGE)
    if not os.path.isdir(args.dir):
        raise CliError(f"{args.dir}: no such directory", exit_code=EXIT_USAGE)
    try:
        key_path, pub_path = write_keypair(args.dir, args.name)
    except FileExistsError as error:
        raise CliError(str(error), exit_code=EXIT_USAGE) from None
    print(f"wrote {key_path} (secret, mode 0600) and {pub_path} (public: give it to the other side)")
    return 0


def register(subparsers):
    """Add ``keys`` and its sub-commands to the ``t2t`` parser."""
    keys = subparsers.add_parser("keys", help="make CURVE key pairs for `t2t serve` and its clients")
    commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    new = commands.add_parser("new", help="write NAME.key (secret, mode 0600) and NAME.pub")
    new.add_argument("name", metavar="NAME")
    new.add_argument("--dir", default=".", help="directory to write them in (default: the current one)")
    new.set_defaults(handler=_new)
