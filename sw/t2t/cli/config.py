"""``t2t thresholds check|load|set|show`` and ``t2t risk check|load|show``: the trader's rules and the risk limits.

A file is validated whole against the card's slot table before anything reaches the card (a problem is named
``FILE:LINE: FIELD: what``, exit code 2); a load then goes out atomically: every rule staged and applied by one
``rules_commit``, every limit by one commit of the ``risk`` group (and, through a card server, all of it in one
request, so no other client's write comes in between). ``--dry-run`` shows the difference with what the card holds
now and changes nothing.

Risk limits are read back from the card. Rules and per-slot position limits cannot be (the card has no read-back
for them): the host knows them by following every write, in the card server, or for a local card in a state file
(see :mod:`t2t.server.shadow`); a rule the host does not know is shown as "unknown".
"""

import argparse
import dataclasses
import json

from .. import trading
from ..config import ConfigError, load_risk, load_thresholds
from ..config.schema import format_price, parse_price
from ..config.trading import TIME_IN_FORCE
from .errors import CliError
from .session import EXIT_USAGE, config_error, open_session, table, warn

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


# ---- thresholds
def describe(registers):
    """A rule in a few words, as the thresholds file says it."""
    if registers is None:
        return "unknown"
    return describe_rule_dict(trading.describe_rule(registers))


def describe_rule_dict(rule):
    """:func:`describe` of a rule already given as :func:`t2t.trading.describe_rule` gives it."""
    if not rule["enabled"]:
        return "disabled"
    parts = []
    if rule["buy_below"]:
        parts.append(f"buy_below {rule['buy_below']}")
    if rule["sell_above"]:
        parts.append(f"sell_above {rule['sell_above']}")
    parts.append(f"{rule['shares']} shares")
    if rule["offset_ticks"]:
        parts.append(f"offset {rule['offset_ticks']} ticks")
    parts.append(rule["time_in_force"])
    if rule["one_shot"]:
        parts.append("one-shot")
    elif rule["cooldown_cycles"]:
        parts.append(f"cooldown {rule['cooldown_cycles']} cycles")
    return ", ".join(parts)


def rule_change(before, after):
    """How a slot's rule changes: ``(kind, text)`` with kind unchanged, new, changed or unknown."""
    if before is None:
        return "unknown", f"{describe(after)}  (the rule in force is not known to this host)"
    if trading.rules_equal(before, after):
        return "unchanged", describe(after)
    old, new = trading.describe_rule(before), trading.describe_rule(after)
    if not old["enabled"] or not new["enabled"]:
        return "changed", f"{describe(before)} -> {describe(after)}"
    fields = [f"{name} {old[name] if old[name] is not None else '-'} -> {new[name] if new[name] is not None else '-'}"
              for name in old if old[name] != new[name]]
    return "changed", ", ".join(fields)


def _changes(slot_map, current, new):
    changes = []
    for slot, symbol, _ in slot_map.entries:
        if slot not in new:
            continue
        kind, text = rule_change(current.get(slot), new[slot])
        changes.append({"slot": slot, "symbol": symbol, "change": kind, "text": text,
                        "before": trading.describe_rule(current.get(slot)), "after": trading.describe_rule(new[slot])})
    return changes


def _print_changes(changes, applied, json_output):
    if json_output:
        print(json.dumps({"applied": applied, "changes": [
            {key: value for key, value in change.items() if key != "text"} for change in changes]}))
        return
    print(table(["slot", "symbol", "change", "rule"],
                [[c["slot"], c["symbol"], c["change"], c["text"]] for c in changes], right=("slot",)))
    changed = sum(c["change"] != "unchanged" for c in changes)
    if applied:
        print(f"applied: {len(changes)} rule(s) in one commit ({changed} changed)")
    else:
        print(f"dry run: {changed} of {len(changes)} rule(s) would change; nothing was sent to the card")


def _thresholds_load(args):
    with open_session(args) as session:
        slot_map = trading.read_slots(session.card)
        if not slot_map.entries:
            raise CliError("the card follows no stock yet: `t2t symbols load` first", exit_code=EXIT_USAGE)
        try:
            config = load_thresholds(args.file, set(slot_map.symbols))
        except ConfigError as error:
            raise config_error(error) from None
        new = trading.thresholds_rules(config, slot_map)
        changes = _changes(slot_map, session.known()["rules"], new)
        if not args.dry_run:
            trading.set_rules(session.card, new, trading.pair_registers(config.pair, slot_map))
        if session.note and not args.json:
            warn(session.note)
    _print_changes(changes, not args.dry_run, args.json)
    if config.pair is not None and not args.json:
        pair = config.pair
        print(f"pair: {pair.leg_a}/{pair.leg_b} ratio {pair.ratio_q16}/65536, band {format_price(pair.lower)}.."
              f"{format_price(pair.upper)}, legs {pair.shares_a}/{pair.shares_b} shares"
              f"{'' if pair.enabled else ' (disabled)'}" + ("" if args.dry_run else " (staged in the same commit)"))
    return 0


def _price_option(option, text):
    if text.lower() in ("none", "off", "0"):
        return 0
    try:
        return parse_price(text)
    except ValueError as error:
        raise CliError(f"{option}: {error}", exit_code=EXIT_USAGE) from None


def _updated_rule(args, current):
    """The register values ``thresholds set`` makes of ``current`` (or of nothing, when it is unknown)."""
    given = {name for name in ("buy_below", "sell_above", "shares", "offset_ticks", "time_in_force",
                               "cooldown_cycles", "one_shot", "enabled") if getattr(args, name) is not None}
    if not given:
        raise CliError("nothing to change: give --buy-below, --sell-above, --shares, ... (see --help)",
                       exit_code=EXIT_USAGE)
    if current is None:
        if args.shares is None or (args.buy_below is None and args.sell_above is None):
            raise CliError(f"the rule in force for {args.symbol} is not known to this host (see `t2t thresholds "
                           f"show`): give the whole rule, --shares and --buy-below and/or --sell-above",
                           exit_code=EXIT_USAGE)
        current = trading.disabled_rule()
    rule = dict(current)
    if args.buy_below is not None:
        rule["rule_buy_threshold"] = _price_option("--buy-below", args.buy_below)
    if args.sell_above is not None:
        rule["rule_sell_threshold"] = _price_option("--sell-above", args.sell_above)
    if args.shares is not None:
        rule["rule_shares"] = args.shares
    if args.offset_ticks is not None:
        rule["rule_offset"] = args.offset_ticks
    if args.time_in_force is not None:
        rule["rule_time_in_force"] = TIME_IN_FORCE[args.time_in_force]
    if args.cooldown_cycles is not None:
        rule["rule_cooldown"] = args.cooldown_cycles
    flags = rule["rule_flags"]
    if args.one_shot is not None:
        flags = flags & ~2 | int(args.one_shot) << 1
    if args.enabled is not None:
        flags = flags & ~1 | int(args.enabled)
    elif {"buy_below", "sell_above"} & given:
        flags |= 1  # setting a threshold means trading it
    rule["rule_flags"] = flags
    buy, sell = rule["rule_buy_threshold"], rule["rule_sell_threshold"]
    if flags & 1:
        if not buy and not sell:
            raise CliError(f"{args.symbol}: an enabled rule needs --buy-below, --sell-above or both",
                           exit_code=EXIT_USAGE)
        if not rule["rule_shares"]:
            raise CliError(f"{args.symbol}: an enabled rule needs --shares (at least 1)", exit_code=EXIT_USAGE)
    if buy and sell and buy >= sell:
        raise CliError(f"{args.symbol}: buy_below ({format_price(buy)}) must be below sell_above "
                       f"({format_price(sell)}), or one signal buys and sells at once", exit_code=EXIT_USAGE)
    return rule


def _thresholds_set(args):
    with open_session(args) as session:
        slot_map = trading.read_slots(session.card)
        if args.symbol not in slot_map.symbols:
            raise CliError(f"{args.symbol} has no symbol slot on the card (`t2t symbols show`; load it with "
                           f"`t2t symbols load`)", exit_code=EXIT_USAGE)
        slot = slot_map.slot_of(args.symbol)
        current = session.known()["rules"].get(slot)
        rule = _updated_rule(args, current)
        changes = _changes(slot_map, {slot: current}, {slot: rule})
        if not args.dry_run:
            trading.set_rules(session.card, {slot: rule})
    _print_changes(changes, not args.dry_run, args.json)
    return 0


def _thresholds_show(args):
    with open_session(args) as session:
        slot_map = trading.read_slots(session.card)
        known = session.known()
        note = session.note
    rules = known["rules"]
    if args.json:
        print(json.dumps({"armed": known["armed"], "rules": [
            {"slot": slot, "symbol": symbol, "rule": trading.describe_rule(rules.get(slot))}
            for slot, symbol, _ in slot_map.entries]}))
        return 0
    if note:
        warn(note)
    if not slot_map.entries:
        print("the card follows no stock yet: `t2t symbols load` first")
        return 0
    print(table(["slot", "symbol", "rule"], [[slot, symbol, describe(rules.get(slot))]
                                             for slot, symbol, _ in slot_map.entries], right=("slot",)))
    print(f"strategy {'ARMED' if known['armed'] else 'disarmed'}")
    if any(rules.get(slot) is None for slot, _, _ in slot_map.entries):
        print("unknown: the card cannot show its rules and this host has not seen them written since the card "
              "was last reset (load the thresholds file again to know them)")
    return 0


# ---- risk
_RISK_LABELS = {
    "max_shares": "max_shares_per_order", "max_notional": "max_notional_per_order", "collar_ticks": "collar_ticks",
    "bucket_capacity": "max_orders.burst", "refill_cycles": "max_orders.refill_cycles",
    "duplicate_window": "duplicate_window_cycles", "max_rejects": "kill_after.rejects",
    "reject_window": "kill_after.window_cycles", "restricted": "restricted",
}


def _restricted_symbols(bits, slot_map):
    return [slot_map.symbol_of_slot(slot) or f"slot {slot}" for slot in range(32) if bits >> slot & 1]


def _risk_value(name, value, slot_map):
    if name == "max_notional":
        return format_price(value)
    if name == "restricted":
        return ", ".join(_restricted_symbols(value, slot_map)) or "none"
    return str(value)


def _position_text(position):
    return "unknown" if position is None else f"{position[1]} (position {position[0]})"


def _risk_load(args):
    with open_session(args) as session:
        card = session.card
        slot_map = trading.read_slots(card)
        if not slot_map.entries:
            raise CliError("the card follows no stock yet: `t2t symbols load` first", exit_code=EXIT_USAGE)
        try:
            config = load_risk(args.file, set(slot_map.symbols))
        except ConfigError as error:
            raise config_error(error) from None
        current = trading.read_risk(card)
        new = trading.risk_registers(config, slot_map)
        known = session.known()["positions"]
        limits = trading.position_limits(config, slot_map)
        changes = []
        for name, label in _RISK_LABELS.items():
            before, after = _risk_value(name, current[name], slot_map), _risk_value(name, new[name], slot_map)
            changes.append({"field": label, "before": before, "after": after, "changed": before != after})
        for slot, symbol, _ in slot_map.entries:
            before = known.get(slot)
            before_text = "unknown" if before is None else str(before[1])
            changes.append({"field": f"positions.{symbol}", "before": before_text, "after": str(limits[slot]),
                            "changed": before_text != str(limits[slot])})
        unknown = [symbol for slot, symbol, _ in slot_map.entries if known.get(slot) is None]
        if not args.dry_run:
            positions = {symbol: known[slot][0] for slot, symbol, _ in slot_map.entries if known.get(slot)}
            trading.load_risk(card, config, slot_map, positions)
    if args.json:
        print(json.dumps({"applied": not args.dry_run, "changes": changes}))
        return 0
    print(table(["limit", "now", "", "from file"],
                [[c["field"], c["before"], "->" if c["changed"] else "==", c["after"]] for c in changes]))
    changed = sum(c["changed"] for c in changes)
    if args.dry_run:
        print(f"dry run: {changed} limit(s) would change; nothing was sent to the card")
    else:
        print(f"applied: limits in one commit of the risk group ({changed} changed), then the position limits")
        if unknown:
            warn(f"positions of {', '.join(unknown)} were not known to this host: set to 0")
    return 0


def _risk_show(args):
    with open_session(args) as session:
        card = session.card
        slot_map = trading.read_slots(card)
        limits = trading.read_risk(card)
        known = session.known()
        reject_names = [reg.path for reg in card.regmap if reg.block == "risk" and reg.name.startswith("rejected_")]
        counters = trading.read_many(card, ["risk.accepted", *reject_names, "risk.reject_log_dropped"])
    positions = {symbol: known["positions"].get(slot) for slot, symbol, _ in slot_map.entries}
    if args.json:
        print(json.dumps({"killed": known["killed"], "armed": known["armed"],
                          "limits": {_RISK_LABELS[name]: value for name, value in limits.items()},
                          "restricted": [symbol for symbol in _restricted_symbols(limits["restricted"], slot_map)],
                          "positions": {symbol: None if value is None else {"position": value[0], "limit": value[1]}
                                        for symbol, value in positions.items()},
                          "counters": counters}))
        return 0
    print("kill switch  " + ("KILLED: every order is refused until `t2t rearm` (risk role)" if known["killed"]
                             else "off: orders pass the risk gate's checks"))
    print("strategy     " + ("ARMED" if known["armed"] else "disarmed"))
    print(table(["limit", "value"], [[label, _risk_value(name, limits[name], slot_map)]
                                     for name, label in _RISK_LABELS.items()]))
    if positions:
        print(table(["symbol", "position limit"], [[symbol, _position_text(value)]
                                                   for symbol, value in positions.items()]))
    rejected = {path.split(".rejected_")[1]: value for path, value in counters.items() if ".rejected_" in path}
    print(f"accepted {counters['risk.accepted']}; rejected " +
          (", ".join(f"{name} {value}" for name, value in rejected.items() if value) or "none") +
          (f"; {counters['risk.reject_log_dropped']} rejects not logged" if counters["risk.reject_log_dropped"] else ""))
    return 0


def _add_set_options(parser):
    parser.add_argument("symbol", metavar="SYMBOL")
    parser.add_argument("--buy-below", metavar="PRICE", dest="buy_below",
                        help="buy when the best ask is at or below PRICE (dollars, e.g. 189.50; 'none': never buy)")
    parser.add_argument("--sell-above", metavar="PRICE", dest="sell_above",
                        help="sell when the best bid is at or above PRICE ('none': never sell)")
    parser.add_argument("--shares", type=_count(1), metavar="N", help="order size in shares")
    parser.add_argument("--offset-ticks", type=_count(0, 0xFFFF), metavar="N", dest="offset_ticks",
                        help="limit price = touched price + N ticks (buy) or - N (sell); 100 ticks = 1 cent")
    parser.add_argument("--time-in-force", choices=sorted(TIME_IN_FORCE), dest="time_in_force")
    parser.add_argument("--cooldown-cycles", type=_count(0), metavar="N", dest="cooldown_cycles",
                        help="cycles a side stays silent after a signal (156250 = 1 ms)")
    parser.add_argument("--one-shot", action=argparse.BooleanOptionalAction, dest="one_shot",
                        help="after a signal, stay silent until re-armed (instead of the cooldown)")
    enable = parser.add_mutually_exclusive_group()
    enable.add_argument("--enable", action="store_const", const=True, dest="enabled",
                        help="let the rule fire (implied by setting a threshold)")
    enable.add_argument("--disable", action="store_const", const=False, dest="enabled",
                        help="keep the rule but never fire it")
    parser.add_argument("--dry-run", action="store_true", help="show the change; send nothing")


def _count(minimum, maximum=2**32 - 1):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is outside {minimum}..{maximum}")
        return value
    return parse


def register(subparsers):
    thresholds = subparsers.add_parser(
        "thresholds", help="per-symbol threshold rules: check, load, set one, show",
        description="Threshold rules, one per symbol slot: buy when the best ask falls to buy_below, sell when the "
                    "best bid rises to sell_above (dollars, exact to $0.0001). Files are YAML "
                    "(see configs/thresholds.yaml).")
    actions = thresholds.add_subparsers(dest="thresholds_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a file: every problem with its line, nothing sent")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--symbols", metavar="A,B,...", help="the known symbols (default: do not check)")
    check.set_defaults(handler=_check(load_thresholds))
    load = actions.add_parser(
        "load", help="validate a file against the card's symbols, then apply every rule in one commit",
        description="Validate FILE whole (a symbol the card does not follow is refused, with file, line and "
                    "field), then stage every slot's rule and apply them all in one cycle. Slots without a rule in "
                    "the file get a disabled one.")
    load.add_argument("file", metavar="FILE")
    load.add_argument("--dry-run", action="store_true",
                      help="show what would change against the rules in force; send nothing")
    load.set_defaults(handler=_thresholds_load)
    set_ = actions.add_parser(
        "set", help="change one symbol's rule (the others keep theirs), applied by one commit",
        description="Change some fields of one symbol's rule; the rest stay as they are in force. If the host "
                    "does not know the rule in force, give the whole rule.")
    _add_set_options(set_)
    set_.set_defaults(handler=_thresholds_set)
    show = actions.add_parser("show", help="the rule of each slot, as far as the host knows it")
    show.set_defaults(handler=_thresholds_show)

    risk = subparsers.add_parser(
        "risk", help="pre-trade risk limits: check, load, show",
        description="The risk gate's limits (YAML, see configs/risk.yaml). Loading them, kill and rearm are the "
                    "risk role's on a card server.")
    actions = risk.add_subparsers(dest="risk_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a file: every problem with its line, nothing sent")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--symbols", metavar="A,B,...", help="the known symbols (default: do not check)")
    check.set_defaults(handler=_check(load_risk))
    load = actions.add_parser(
        "load", help="validate a file against the card's symbols, then apply the limits in one commit",
        description="Validate FILE whole, then stage every limit and apply them in one commit of the risk group; "
                    "then set each slot's position limit (its position kept as the host knows it).")
    load.add_argument("file", metavar="FILE")
    load.add_argument("--dry-run", action="store_true",
                      help="show what would change against the limits the card holds; send nothing")
    load.set_defaults(handler=_risk_load)
    show = actions.add_parser("show", help="the limits in force, the kill switch, positions and reject counts")
    show.set_defaults(handler=_risk_show)
