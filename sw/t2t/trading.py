"""The trader's operations on a card, by register name: symbol slots, threshold rules, risk limits, arm and kill,
the order and reject logs, latency figures and depth snapshots.

Everything here goes through :class:`t2t.card.Card`, so it works the same on a PCIe card, the virtual card and a
card server. Settings land atomically: rules are staged per slot and applied by one ``rules_commit``; risk limits
by one commit of the ``risk`` group; a file is validated whole (:mod:`t2t.config`) before any of this runs.

On a card server (``tcp://``) each operation's writes go out as one request (:func:`apply_writes`), which the
server carries out without letting another client's request in between: two traders' staged rules never mix.
What needs a select-then-read (the slot table, a depth level) is asked of the server as one request too
(``slots``, ``depth``), and the pop-on-read logs (orders, rejects, gaps) are the server's alone to drain: clients
read its copy (``log``).
"""

import dataclasses
import functools
from dataclasses import dataclass

from .config.schema import format_price
from .config.trading import TIME_IN_FORCE, RiskConfig, ThresholdsConfig

__all__ = [
    "SlotMap", "OrderLogRow", "RejectRow", "LatencyFigures", "Level", "TradingError",
    "slot_capacity", "load_symbols", "read_slots", "load_thresholds", "read_thresholds", "load_risk", "read_risk", "arm", "kill",
    "rearm", "drain_orders", "drain_rejects", "latency", "depth", "symbol_text", "token_text",
    "ORDER_CSV_COLUMNS", "REJECT_CSV_COLUMNS", "GapRow", "drain_gaps", "RULE_FIELDS", "rule_registers",
    "disabled_rule", "rule_writes", "describe_rule", "rules_equal", "set_rules", "apply_writes", "read_many",
    "is_remote", "replace_symbols", "risk_registers", "risk_writes", "disarm", "is_armed", "is_killed",
    "format_price", "POP_ON_READ", "row_dict",
]

#: Columns of ``t2t replay --orders-out`` (and ``t2t orders tail --csv``); other tools depend on them.
ORDER_CSV_COLUMNS = ("token", "timestamp_ns", "locate", "symbol", "side", "shares", "price", "latency_cycles")
#: Columns of ``t2t replay --rejects-out`` and ``t2t rejects tail --csv``.
REJECT_CSV_COLUMNS = ("symbol", "locate", "side", "shares", "price", "reason")
#: Registers whose read takes the oldest entry off a queue on the card.
POP_ON_READ = ("orders.log", "risk.reject", "moldudp64.gap")
#: The strategy's staging registers of one rule, in the order :func:`rule_writes` writes them.
RULE_FIELDS = ("rule_flags", "rule_buy_threshold", "rule_sell_threshold", "rule_shares", "rule_offset",
               "rule_time_in_force", "rule_cooldown")


class TradingError(ValueError):
    """A request the card cannot carry out as asked (too many symbols, a symbol without a slot, ...)."""


@dataclass(frozen=True)
class SlotMap:
    """Which stock each symbol slot follows: ``entries`` is a tuple of ``(slot, symbol, locate)``."""
    entries: tuple

    @classmethod
    def assign(cls, symbols, locates, capacity):
        """Slots 0, 1, ... for ``symbols`` in order, with their locate from ``locates`` (symbol -> locate)."""
        symbols = list(dict.fromkeys(symbols))
        if len(symbols) > capacity:
            raise TradingError(f"{len(symbols)} symbols but the card has {capacity} slots: "
                               f"{', '.join(symbols[capacity:])} left out")
        missing = [s for s in symbols if s not in locates]
        if missing:
            raise TradingError(f"no stock locate for {', '.join(missing)} (not in the symbol directory)")
        return cls(tuple((slot, symbol, locates[symbol]) for slot, symbol in enumerate(symbols)))

    def slot_of(self, symbol):
        for slot, name, _ in self.entries:
            if name == symbol:
                return slot
        raise TradingError(f"{symbol} has no symbol slot on the card (load it with `t2t symbols load`)")

    def symbol_of_slot(self, slot):
        for number, name, _ in self.entries:
            if number == slot:
                return name
        return ""

    @functools.cached_property
    def _symbol_by_locate(self):
        return {locate: name for _, name, locate in self.entries}

    def symbol_of_locate(self, locate):
        """The symbol a slot follows at ``locate`` ("" if none); called per BBO row and order, so a dict."""
        return self._symbol_by_locate.get(locate, "")

    @property
    def symbols(self):
        return [name for _, name, _ in self.entries]


@dataclass(frozen=True)
class OrderLogRow:
    token: str
    timestamp_ns: int
    locate: int
    symbol: str
    side: str
    shares: int
    price: int
    latency_cycles: int
    slot: int

    def csv_row(self):
        return [getattr(self, column) for column in ORDER_CSV_COLUMNS]


@dataclass(frozen=True)
class RejectRow:
    slot: int
    locate: int
    symbol: str
    side: str
    shares: int
    price: int
    reason: str

    def csv_row(self):
        return [getattr(self, column) for column in REJECT_CSV_COLUMNS]


@dataclass(frozen=True)
class GapRow:
    """A MoldUDP64 sequence gap the card found: ``count`` messages missing from ``first`` on."""
    first: int
    count: int


def row_dict(row):
    """A log row (:class:`OrderLogRow`, :class:`RejectRow`, :class:`GapRow`) as a plain dict."""
    return dataclasses.asdict(row)


@dataclass(frozen=True)
class LatencyFigures:
    count: int
    min: int | None
    max: int | None
    mean_x100: int | None   # mean in hundredths of a cycle (integer)
    histogram: tuple        # orders per latency in cycles; the last bin counts that many or more

    def median(self):
        """The median latency in cycles from the histogram (the lower middle for an even count)."""
        if not self.count:
            return None
        target, seen = (self.count + 1) // 2, 0
        for cycles, orders in enumerate(self.histogram):
            seen += orders
            if seen >= target:
                return cycles
        return len(self.histogram) - 1


@dataclass(frozen=True)
class Level:
    price: int
    shares: int
    orders: int


def is_remote(card):
    """True for a card behind a card server (its transport takes whole requests)."""
    return hasattr(card.transport, "request")


def _target(card, path):
    """How one write names its register on the wire: by word address when it is one word (compact), else by name."""
    reg = card.regmap[path]
    return reg.address if reg.words == 1 else reg.path


def apply_writes(card, writes):
    """Write ``[(path, value), ...]`` in order. On a card server they go as one request: carried out whole and
    in order, with no other client's request in between (a refused write refuses them all)."""
    writes = list(writes)
    if not writes:
        return
    if is_remote(card):
        for path, value in writes:
            reg = card.regmap[path]
            if not 0 <= value < 1 << reg.width:
                raise TradingError(f"{value} does not fit {path} ({reg.width} bits)")
        card.transport.request("write", writes=[[_target(card, path), value] for path, value in writes])
        return
    for path, value in writes:
        card.write(path, value)


def read_many(card, paths):
    """``{path: value}`` of several registers; on a card server in one request, so they are read together."""
    paths = list(paths)
    if is_remote(card):
        values = card.transport.request("read", registers=paths)["values"]
        return dict(zip(paths, values))
    return {path: card.read(path) for path in paths}


def symbol_text(symbol, size=8):
    """A symbol as the card holds it: space padded, first character in the least significant byte."""
    raw = symbol.encode("ascii").ljust(size, b" ")
    if len(raw) != size:
        raise TradingError(f"symbol {symbol!r} is longer than {size} characters")
    return int.from_bytes(raw, "little")


def token_text(prefix_register, token_number):
    """The order token: the 6-character prefix and the 8 BCD digits as their decimal spelling."""
    return prefix_register.to_bytes(6, "little").decode("ascii") + f"{token_number:08x}"


def slot_capacity(card):
    """How many symbol slots the card has."""
    return card.read("book.slots")


def _symbol_writes(card, slot, symbol, locate, valid=True):
    slot_field = card.regmap["book.slot"].field("slot")
    valid_field = card.regmap["book.slot"].field("valid")
    subscribed = card.regmap["itch.subscribe"].field("subscribed").offset
    return [("book.symbol", symbol_text(symbol)),
            ("book.slot", locate | slot << slot_field.offset | int(valid) << valid_field.offset),
            ("itch.subscribe", locate | int(valid) << subscribed)]


def load_symbols(card, slot_map):
    """Map every slot of ``slot_map`` on the card (book, encoder symbol, halts) and subscribe its locate."""
    writes = []
    for slot, symbol, locate in slot_map.entries:
        writes += _symbol_writes(card, slot, symbol, locate)
    apply_writes(card, writes)


def replace_symbols(card, slot_map, previous):
    """Make ``slot_map`` the card's whole slot table, ``previous`` (a :class:`SlotMap`, e.g. :func:`read_slots`)
    being the table it holds now: map the new slots, free the slots left over, unsubscribe locates no longer
    followed, and disable (in one ``rules_commit``) the rule of every slot whose stock changes, so that no rule
    written for one stock trades another. Returns the slots whose stock changed."""
    new = {slot: (symbol, locate) for slot, symbol, locate in slot_map.entries}
    old = {slot: (symbol, locate) for slot, symbol, locate in previous.entries}
    writes = []
    for slot, symbol, locate in slot_map.entries:
        writes += _symbol_writes(card, slot, symbol, locate)
    new_locates = {locate for _, locate in new.values()}
    subscribed = card.regmap["itch.subscribe"].field("subscribed").offset
    for slot, (symbol, locate) in sorted(old.items()):
        if slot not in new:
            slot_field = card.regmap["book.slot"].field("slot")
            writes.append(("book.slot", locate | slot << slot_field.offset))
        if locate not in new_locates:
            writes.append(("itch.subscribe", locate & ~(1 << subscribed)))
    changed = sorted(slot for slot in set(new) | set(old) if new.get(slot) != old.get(slot))
    if changed:
        for slot in changed:
            writes += rule_writes(slot, disabled_rule())
        writes.append(("strategy.rules_commit", 1))
    apply_writes(card, writes)
    return changed


def read_slots(card):
    """The slot table the card holds now, as a :class:`SlotMap` (slots that follow a stock only)."""
    if is_remote(card):
        reply = card.transport.request("slots")
        return SlotMap(tuple((slot, symbol, locate) for slot, symbol, locate in reply["slots"]))
    entries = []
    selected = card.read("book.slot_view")
    for slot in range(slot_capacity(card)):
        card.write("book.slot_view", slot)
        view = card.decode("book.slot_view_locate", card.read("book.slot_view_locate"))
        if view["valid"]:
            symbol = card.read("book.slot_view_symbol").to_bytes(8, "little").decode("ascii", "replace").rstrip()
            entries.append((slot, symbol, view["locate"]))
    card.write("book.slot_view", selected)  # a look leaves the view as it found it
    return SlotMap(tuple(entries))


def rule_registers(rule):
    """Register values (``{RULE_FIELDS name: value}``) of one symbol's rule (a
    :class:`~t2t.config.trading.SymbolThresholds`)."""
    return {
        "rule_flags": int(rule.enabled) | int(rule.one_shot) << 1,
        "rule_buy_threshold": rule.buy_below or 0,
        "rule_sell_threshold": rule.sell_above or 0,
        "rule_shares": rule.shares,
        "rule_offset": rule.offset_ticks,
        "rule_time_in_force": rule.time_in_force,
        "rule_cooldown": rule.cooldown_cycles,
    }


_rule_registers = rule_registers


def disabled_rule():
    """The register values of a rule that never fires (every field 0)."""
    return dict.fromkeys(RULE_FIELDS, 0)


def rule_writes(slot, registers):
    """The writes that stage rule ``registers`` for ``slot`` (applied at the next ``rules_commit``)."""
    return [("strategy.rule_slot", slot), *((f"strategy.{name}", registers[name]) for name in RULE_FIELDS),
            ("strategy.rule_write", 1)]


def rules_equal(a, b):
    """Two rules (register values) act the same: equal, or both disabled."""
    if a is None or b is None:
        return a is b
    if not a["rule_flags"] & 1 and not b["rule_flags"] & 1:
        return True
    return all(a[name] == b[name] for name in RULE_FIELDS)


_TIF_NAMES = {value: name for name, value in TIME_IN_FORCE.items()}


def describe_rule(registers):
    """A rule's register values as the thresholds file says them (prices as dollars text, exact)."""
    if registers is None:
        return None
    flags = registers["rule_flags"]
    tif = registers["rule_time_in_force"]
    return {
        "enabled": bool(flags & 1),
        "buy_below": format_price(registers["rule_buy_threshold"]) if registers["rule_buy_threshold"] else None,
        "sell_above": format_price(registers["rule_sell_threshold"]) if registers["rule_sell_threshold"] else None,
        "shares": registers["rule_shares"],
        "offset_ticks": registers["rule_offset"],
        "time_in_force": _TIF_NAMES.get(tif, str(tif)),
        "cooldown_cycles": registers["rule_cooldown"],
        "one_shot": bool(flags & 2),
    }


#: The pair rule's registers (block ``pair``), in the order :func:`pair_writes` writes them.
PAIR_FIELDS = ("flags", "ratio", "upper", "lower", "shares_a", "shares_b", "time_in_force", "cooldown")


def pair_registers(pair, slot_map):
    """Register values (``{PAIR_FIELDS name: value}``) of a :class:`~t2t.config.trading.PairConfig`, or of a
    pair rule that never fires when ``pair`` is None. Signed bands go as 32-bit two's complement."""
    if pair is None:
        return dict.fromkeys(PAIR_FIELDS, 0)
    slot_a, slot_b = slot_map.slot_of(pair.leg_a), slot_map.slot_of(pair.leg_b)
    return {
        "flags": int(pair.enabled) | slot_a << 8 | slot_b << 16,
        "ratio": pair.ratio_q16,
        "upper": pair.upper & 0xFFFFFFFF,
        "lower": pair.lower & 0xFFFFFFFF,
        "shares_a": pair.shares_a,
        "shares_b": pair.shares_b,
        "time_in_force": pair.time_in_force,
        "cooldown": pair.cooldown_cycles,
    }


def pair_writes(registers):
    """The writes that stage the pair rule ``registers`` (applied at the next ``strategy.rules_commit``)."""
    return [*((f"pair.{name}", registers[name]) for name in PAIR_FIELDS), ("pair.rule_write", 1)]


def set_rules(card, rules, pair=None):
    """Stage ``rules`` (``{slot: register values}``) and, if given, the pair rule's registers, and apply them all
    in one cycle (one ``rules_commit``); the other slots keep their rules (and the pair its rule)."""
    writes = []
    for slot, registers in sorted(rules.items()):
        writes += rule_writes(slot, registers)
    if pair is not None:
        writes += pair_writes(pair)
    writes.append(("strategy.rules_commit", 1))
    apply_writes(card, writes)


def load_thresholds(card, config: ThresholdsConfig, slot_map):
    """Stage every symbol's rule and the pair rule, then apply them all in one cycle (``rules_commit``). Slots of
    the map without a rule in ``config`` get a disabled rule, and the pair rule is disabled when ``config`` has
    none, so nothing left from an earlier load keeps trading. A symbol of ``config`` (a pair leg included)
    without a slot refuses the whole load before anything is written."""
    unknown = set(config.traded_symbols) - set(slot_map.symbols)
    if unknown:
        raise TradingError(f"no slot for {', '.join(sorted(unknown))}: nothing was applied")
    set_rules(card, thresholds_rules(config, slot_map), pair_registers(config.pair, slot_map))


def thresholds_rules(config: ThresholdsConfig, slot_map):
    """``{slot: register values}`` a thresholds file gives every slot of ``slot_map``."""
    rules = {}
    for slot, symbol, _ in slot_map.entries:
        rule = config.symbols.get(symbol)
        rules[slot] = rule_registers(rule) if rule else disabled_rule()
    return rules


def risk_registers(config: RiskConfig, slot_map):
    """``{risk register name: value}`` of the limits of ``config`` (the ``risk`` commit group)."""
    restricted = 0
    for symbol in config.restricted:
        restricted |= 1 << slot_map.slot_of(symbol)
    return {
        "max_shares": config.max_shares_per_order,
        "max_notional": config.max_notional_ticks,
        "collar_ticks": config.collar_ticks,
        "bucket_capacity": config.bucket_capacity,
        "refill_cycles": config.refill_cycles,
        "duplicate_window": config.duplicate_window_cycles,
        "max_rejects": config.max_rejects,
        "reject_window": config.reject_window_cycles,
        "restricted": restricted,
    }


_risk_registers = risk_registers


def position_limits(config: RiskConfig, slot_map):
    """``{slot: position limit}`` for every slot of ``slot_map``."""
    return {slot: config.position_limits.get(symbol, config.default_position_limit)
            for slot, symbol, _ in slot_map.entries}


def risk_writes(card, config: RiskConfig, slot_map, positions=None):
    """The writes of :func:`load_risk`."""
    writes = [(f"risk.{name}", value) for name, value in risk_registers(config, slot_map).items()]
    writes.append((card.regmap.commit_register, 1 << card.regmap.commit_groups["risk"].offset))
    positions = positions or {}
    limits = position_limits(config, slot_map)
    for slot, symbol, _ in slot_map.entries:
        writes += [("risk.position_slot", slot), ("risk.position", positions.get(symbol, 0) & 0xFFFFFFFF),
                   ("risk.position_limit", limits[slot]), ("risk.position_write", 1)]
    return writes


def load_risk(card, config: RiskConfig, slot_map, positions=None):
    """Stage every limit, apply them in one cycle (commit group ``risk``), then set each slot's position limit
    (and position, from ``positions``: symbol -> net shares, default 0)."""
    apply_writes(card, risk_writes(card, config, slot_map, positions))


RISK_LIMIT_NAMES = ("max_shares", "max_notional", "collar_ticks", "bucket_capacity", "refill_cycles",
                    "duplicate_window", "max_rejects", "reject_window", "restricted")


def read_risk(card):
    """The risk limits the card holds now (staged copies, as committed by the last load), by register name."""
    values = read_many(card, [f"risk.{name}" for name in RISK_LIMIT_NAMES])
    return {name: values[f"risk.{name}"] for name in RISK_LIMIT_NAMES}


def read_thresholds(card):
    """Rules cannot be read back per slot (they live in the strategy's rule memory): the staging registers show
    the last rule written."""
    names = ("rule_slot", *RULE_FIELDS)
    values = read_many(card, [f"strategy.{name}" for name in names])
    return {name: values[f"strategy.{name}"] for name in names}


def arm(card, armed=True):
    """Let the strategy's orders through to the risk gate (or, with ``armed=False``, stop them there)."""
    card.write("strategy.control", int(armed))


def disarm(card):
    """Stop the strategy's orders before the risk gate (they are counted in ``strategy.disarmed``)."""
    arm(card, False)


def is_armed(card):
    return bool(card.read("strategy.control") & 1)


def is_killed(card):
    return bool(card.read_field("risk.status", "killed"))


def kill(card):
    """Trip the risk gate's kill switch: every order is refused until :func:`rearm`."""
    card.write("risk.control", 1 << card.regmap["risk.control"].field("kill").offset)


def rearm(card):
    """Release the kill switch (the host's or the automatic one)."""
    card.write("risk.control", 1 << card.regmap["risk.control"].field("rearm").offset)


def drain_orders(card, slot_map=None, limit=None):
    """Take every entry off the card's order log (oldest first): a list of :class:`OrderLogRow`."""
    prefix = card.read("orders.token_prefix")
    rows = []
    while limit is None or len(rows) < limit:
        value = card.read("orders.log")
        if not value & 1:
            break
        words = [(value >> (32 * i)) & 0xFFFFFFFF for i in range(7)]
        slot, locate = (words[0] >> 8) & 0xFF, words[0] >> 16
        symbol = slot_map.symbol_of_locate(locate) if slot_map else ""
        rows.append(OrderLogRow(
            token=token_text(prefix, words[1]), timestamp_ns=words[4] | (words[5] & 0xFFFF) << 32,
            locate=locate, symbol=symbol, side="S" if words[0] >> 1 & 1 else "B", shares=words[2],
            price=words[3], latency_cycles=words[6] & 0xFFFF, slot=slot))
    return rows


REJECT_REASONS = ("none", "killed", "restricted", "max_shares", "max_notional", "no_reference", "price_collar",
                  "position_limit", "rate_limit", "duplicate")


def drain_rejects(card, slot_map=None):
    """Take every entry off the risk gate's reject log (oldest first): a list of :class:`RejectRow`."""
    rows = []
    while True:
        value = card.read("risk.reject")
        reason = value & 0xF
        if not reason:
            break
        locate = (value >> 16) & 0xFFFF
        rows.append(RejectRow(
            slot=(value >> 8) & 0xFF, locate=locate,
            symbol=slot_map.symbol_of_locate(locate) if slot_map else "",
            side="S" if value >> 4 & 1 else "B", shares=(value >> 32) & 0xFFFFFFFF, price=value >> 64,
            reason=REJECT_REASONS[reason] if reason < len(REJECT_REASONS) else f"reason {reason}"))
    return rows


def drain_gaps(card):
    """Take every entry off the MoldUDP64 gap queue (oldest first): a list of :class:`GapRow`."""
    rows = []
    while True:
        value = card.read("moldudp64.gap")
        count = value & 0xFFFFFFFF
        if not count:
            break
        rows.append(GapRow(first=value >> 32, count=count))
    return rows


def _latency_bins(regmap):
    bins = []
    while f"latency.bin_{len(bins):02d}" in regmap.registers:
        bins.append(f"latency.bin_{len(bins):02d}")
    return bins


def latency(card):
    """The card's tick-to-trade latency figures and histogram (cycles), read together."""
    bins = _latency_bins(card.regmap)
    values = read_many(card, ["latency.count", "latency.min", "latency.max", "latency.sum", *bins])
    count = values["latency.count"]
    histogram = tuple(values[name] for name in bins)
    if not count:
        return LatencyFigures(0, None, None, None, histogram)
    return LatencyFigures(count, values["latency.min"], values["latency.max"],
                          values["latency.sum"] * 100 // count, histogram)


def depth(card, slot, levels=8):
    """Top ``levels`` of each side of a slot's book: ``(bids, asks)`` lists of :class:`Level`, best first, empty
    levels left out."""
    if is_remote(card):
        reply = card.transport.request("depth", slot=slot, levels=levels)
        return ([Level(*level) for level in reply["bids"]], [Level(*level) for level in reply["asks"]])
    side_field = card.regmap["book.depth_select"].field("side")
    level_field = card.regmap["book.depth_select"].field("level")
    selected = card.read("book.depth_select")
    sides = []
    for side in (0, 1):
        found = []
        for level in range(levels):
            card.write("book.depth_select", slot | side << side_field.offset | level << level_field.offset)
            price = card.read("book.depth_price")
            if not price:
                break
            # The book keeps a few levels per side and does not say how many, nor (through the registers) which
            # of them are live: a level past the last one wraps round or shows a stale entry. A live level has
            # orders and is worse than the one before it; stop at the first that is not.
            if found and (price >= found[-1].price if side == 0 else price <= found[-1].price):
                break
            orders = card.read("book.depth_orders")
            if not orders:
                break
            found.append(Level(price, card.read("book.depth_shares"), orders))
        sides.append(found)
    card.write("book.depth_select", selected)  # a look leaves the view as it found it
    return sides[0], sides[1]
