"""``t2t status`` and ``t2t regs dump|get|set``: the card's registers by name."""

import json

from ..card import open_card
from ..trading import POP_ON_READ
from ..transport import TransportError
from .errors import CliError

__all__ = ["register", "open_card_for", "parse_int", "format_value"]

EXIT_NO_CARD = 3


def open_card_for(args):
    """Open ``args.card``, turning every failure into a clear CLI error (exit code 3)."""
    try:
        return open_card(args.card)
    except TransportError as error:
        raise CliError(str(error), exit_code=EXIT_NO_CARD) from None


def parse_int(text):
    try:
        return int(text, 0)
    except ValueError:
        raise CliError(f"{text!r} is not a number (decimal, or 0x.. hex)", exit_code=2) from None


def format_value(reg, value):
    """``value`` in hex with as many digits as ``reg`` (a register of the map) is wide."""
    digits = (reg.width + 3) // 4
    return f"{value:#0{digits + 2}x}"


def _human_row(card, reg, value):
    fields = card.decode(reg.path, value)
    decoded = " ".join(f"{k}={v}" for k, v in fields.items())
    return f"{reg.address:#06x}  {reg.path:<24} {format_value(reg, value):>22}  {value:>20}  {decoded}"


def _dump(args):
    """Every readable register but the read-once queues (reading one takes an entry off the card: `t2t orders
    tail`, `t2t rejects tail`); through a card server, in one request."""
    with open_card_for(args) as card:
        try:
            if hasattr(card.transport, "request"):
                values = card.transport.request("dump")["values"]
            else:
                values = {reg.path: card.read(reg.path) for reg in card.regmap
                          if reg.access != "strobe" and reg.path not in POP_ON_READ}
        except TransportError as error:
            raise CliError(str(error)) from None
        values = {path: value for path, value in values.items() if path not in POP_ON_READ}
        if args.json:
            print(json.dumps(values))
            return 0
        for path, value in values.items():
            print(_human_row(card, card.regmap[path], value))
        print(f"not read: {', '.join(POP_ON_READ)} (read-once queues: `t2t orders tail`, `t2t rejects tail`)")
    return 0


def _lookup(card, path):
    try:
        return card.regmap[path]
    except KeyError as error:
        raise CliError(f"{error.args[0]} (see `t2t regs dump` for the names)", exit_code=2) from None


def _get(args):
    with open_card_for(args) as card:
        values = {}
        for path in args.names:
            _lookup(card, path)
            try:
                values[path] = card.read(path)
            except TransportError as error:
                raise CliError(str(error)) from None
        if args.json:
            print(json.dumps(values))
        else:
            for path, value in values.items():
                print(_human_row(card, card.regmap[path], value))
    return 0


def _set(args):
    with open_card_for(args) as card:
        reg = _lookup(card, args.name)
        value = parse_int(args.value)
        try:
            card.write(reg.path, value)
        except TransportError as error:
            raise CliError(str(error)) from None
        if reg.commit and args.commit:
            card.commit(reg.commit)
        if args.json:
            print(json.dumps({reg.path: value}))
        else:
            note = ""
            if reg.commit:
                note = f" (committed group {reg.commit})" if args.commit else \
                    f" (staged: applies when group {reg.commit} is committed)"
            print(f"{reg.path} = {format_value(reg, value)}{note}")
    return 0


def _status(args):
    with open_card_for(args) as card:
        status = {
            "card": card.transport.url,
            "map_version": card.read("id.version"),
            "map_hash": f"{card.read('id.map_hash'):#010x}",
            "cycles": card.read("id.cycles"),
            "status": card.decode("control.status", card.read("control.status")),
        }
        if args.json:
            print(json.dumps(status))
        else:
            print(f"card        {status['card']}")
            print(f"register map version {status['map_version']}, hash {status['map_hash']} (matches this host)")
            print(f"cycles      {status['cycles']}")
            print("status      " + " ".join(f"{k}={v}" for k, v in status["status"].items()))
    return 0


def register(subparsers):
    status = subparsers.add_parser("status", help="identify the card and show its state")
    status.set_defaults(handler=_status)

    regs = subparsers.add_parser("regs", help="read and write registers by name")
    regs_commands = regs.add_subparsers(dest="regs_command", metavar="ACTION", required=True)
    dump = regs_commands.add_parser("dump", help="print every register with its value (but the read-once logs)")
    dump.set_defaults(handler=_dump)
    get = regs_commands.add_parser("get", help="print registers by name, e.g. id.cycles")
    get.add_argument("names", nargs="+", metavar="NAME")
    get.set_defaults(handler=_get)
    set_ = regs_commands.add_parser("set", help="write a register by name, e.g. id.scratch 0x1234")
    set_.add_argument("name", metavar="NAME")
    set_.add_argument("value", metavar="VALUE")
    set_.add_argument("--commit", action="store_true",
                      help="also commit the register's group, so the card acts on it at once")
    set_.set_defaults(handler=_set)
