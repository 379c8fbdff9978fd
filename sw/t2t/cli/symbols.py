"""``t2t symbols load|show``: which stocks the card follows, one per symbol slot.

    t2t symbols load configs/symbols.yaml              # {SYMBOL: locate, ...}, slots in file order
    t2t symbols load --from-itch day.itch.gz --only AAPL,MSFT
    t2t symbols show
"""

import json

from .. import trading
from ..config import ConfigError, Problem
from ..config.trading import load_directory
from ..feed.directory import read_directory
from .errors import CliError
from .session import EXIT_FAILED, EXIT_USAGE, config_error, open_session, table

__all__ = ["register"]


def _directory(args):
    """``(source, {symbol: locate}, {symbol: line} or None)`` from the file the command names."""
    if args.from_itch:
        try:
            locates = read_directory(args.from_itch)
        except FileNotFoundError:
            raise CliError(f"{args.from_itch}: no such file", exit_code=EXIT_USAGE) from None
        except (OSError, ValueError) as error:
            raise CliError(f"{args.from_itch}: not an ITCH BinaryFILE or pcap ({error})",
                           exit_code=EXIT_USAGE) from None
        if not locates:
            raise CliError(f"{args.from_itch}: no stock directory (R) message before the first order message",
                           exit_code=EXIT_USAGE)
        return args.from_itch, locates, None
    try:
        directory = load_directory(args.file)
    except ConfigError as error:
        raise config_error(error) from None
    return args.file, directory.locates, directory.lines


def _chosen(args, source, locates):
    if not args.only:
        return list(locates)
    wanted = list(dict.fromkeys(symbol.strip() for symbol in args.only.split(",") if symbol.strip()))
    missing = [symbol for symbol in wanted if symbol not in locates]
    if missing:
        raise CliError(f"{source}: no stock locate for {', '.join(missing)} (not in its directory)",
                       exit_code=EXIT_USAGE)
    return wanted


def _too_many(source, symbols, lines, capacity):
    left_out = symbols[capacity:]
    if lines:
        return config_error(ConfigError([Problem(source, lines[symbol], symbol,
                                                 f"no slot left: the card has {capacity} slots")
                                         for symbol in left_out]))
    return CliError(f"{source}: {len(symbols)} symbols but the card has {capacity} slots: {', '.join(left_out)} "
                    f"left out; nothing was loaded (choose up to {capacity} with --only)", exit_code=EXIT_USAGE)


def _slot_rows(slot_map):
    return [[slot, symbol, locate] for slot, symbol, locate in slot_map.entries]


def _load(args):
    source, locates, lines = _directory(args)
    symbols = _chosen(args, source, locates)
    with open_session(args) as session:
        card = session.card
        capacity = trading.slot_capacity(card)
        if len(symbols) > capacity:
            raise _too_many(source, symbols, lines, capacity)
        slot_map = trading.SlotMap.assign(symbols, locates, capacity)
        previous = trading.read_slots(card)
        changed = sorted(slot for slot in range(capacity)
                         if {s: (n, l) for s, n, l in slot_map.entries}.get(slot)
                         != {s: (n, l) for s, n, l in previous.entries}.get(slot))
        if not args.dry_run:
            if changed and trading.is_armed(card):
                raise CliError("the strategy is armed: `t2t disarm` before changing the symbol slots (a slot's "
                               "rule would trade the stock that takes its place)", exit_code=EXIT_FAILED)
            trading.replace_symbols(card, slot_map, previous)
    if args.json:
        print(json.dumps({"slots": _slot_rows(slot_map), "previous": _slot_rows(previous), "changed": changed,
                          "capacity": capacity, "dry_run": args.dry_run}))
        return 0
    print(table(["slot", "symbol", "locate"], _slot_rows(slot_map), right=("slot", "locate")))
    verb = "would load" if args.dry_run else "loaded"
    print(f"{verb} {len(symbols)} symbol(s) of {source} into {capacity} slots")
    if not changed:
        print("the card already follows these stocks in these slots: nothing changes")
    elif args.dry_run:
        print(f"slots {_slots_text(changed)} would change stock; nothing was sent to the card (--dry-run)")
    else:
        print(f"slots {_slots_text(changed)} changed stock: their rules are disabled until `t2t thresholds load`; "
              f"risk limits are per slot too: `t2t risk load` again")
    return 0


def _slots_text(slots):
    return ", ".join(str(slot) for slot in slots)


def _show(args):
    with open_session(args) as session:
        card = session.card
        slot_map = trading.read_slots(card)
        capacity = trading.slot_capacity(card)
        flags = trading.read_many(card, ["book.degraded", "strategy.halted"])
    rows = []
    for slot, symbol, locate in slot_map.entries:
        state = [name for name, register in (("degraded", "book.degraded"), ("halted", "strategy.halted"))
                 if flags[register] >> slot & 1]
        rows.append([slot, symbol, locate, ",".join(state) or "ok"])
    if args.json:
        print(json.dumps({"capacity": capacity, "slots": [
            {"slot": slot, "symbol": symbol, "locate": locate, "degraded": bool(flags["book.degraded"] >> slot & 1),
             "halted": bool(flags["strategy.halted"] >> slot & 1)} for slot, symbol, locate in slot_map.entries]}))
        return 0
    if not rows:
        print(f"no symbol slot in use (the card has {capacity}); load some with `t2t symbols load`")
        return 0
    print(table(["slot", "symbol", "locate", "book"], rows, right=("slot", "locate")))
    print(f"{len(rows)} of {capacity} slots in use")
    return 0


def register(subparsers):
    symbols = subparsers.add_parser(
        "symbols", help="which stocks the card follows (its symbol slots)",
        description="The card follows up to `book.slots` stocks (8), one per symbol slot: the book, the "
                    "threshold rule, the risk limits and the order's symbol all go by slot.")
    actions = symbols.add_subparsers(dest="symbols_command", metavar="ACTION", required=True)
    load = actions.add_parser(
        "load", help="map the card's slots to the stocks of a symbol directory, in order",
        description="Make the card follow the stocks of a directory, slot 0 first: a YAML file "
                    "{SYMBOL: locate, ...} (today's ITCH stock locates), or the stock directory (R) messages at the "
                    "start of an ITCH file. Slots left over are freed and their locates unsubscribed. A slot whose "
                    "stock changes has its rule disabled (load thresholds again); refused while the strategy is "
                    "armed. More symbols than slots is refused whole, naming those left out.")
    source = load.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", metavar="FILE.yaml", help="symbol directory: {SYMBOL: locate, ...}")
    source.add_argument("--from-itch", metavar="FILE.itch", help="learn the locates from an ITCH BinaryFILE "
                        "(.itch, .itch.gz) or pcap: its R messages before the first order message")
    load.add_argument("--only", metavar="A,B,...", help="load only these symbols of the directory, in this order")
    load.add_argument("--dry-run", action="store_true", help="show the slots it would set; change nothing")
    load.set_defaults(handler=_load)
    show = actions.add_parser("show", help="the card's slot table as it holds it now (read back from the card)")
    show.set_defaults(handler=_show)
