"""The trader's operations on a card, by register name: symbol slots, threshold rules, risk limits, arm and kill,
the order and reject logs, latency figures and depth snapshots.

Everything here goes through :class:`t2t.card.Card`, so it works the same on a PCIe card, the virtual card and a
card server. Settings land atomically: rules are staged per slot and applied by one ``rules_commit``; risk limits
by one commit of the ``risk`` group; a file is validated whole (:mod:`t2t.config`) before any of this runs.
"""

from dataclasses import dataclass

from .config.trading import RiskConfig, ThresholdsConfig

__all__ = [
    "SlotMap", "OrderLogRow", "RejectRow", "LatencyFigures", "Level", "TradingError",
    "slot_capacity", "load_symbols", "read_slots", "load_thresholds", "read_thresholds", "load_risk", "read_risk", "arm", "kill",
    "rearm", "drain_orders", "drain_rejects", "latency", "depth", "symbol_text", "token_text",
    "ORDER_CSV_COLUMNS",
]

#: Columns of ``t2t replay --orders-out`` (and ``t2t orders tail --csv``); other tools depend on them.
ORDER_CSV_COLUMNS = ("token", "timestamp_ns", "locate", "symbol", "side", "shares", "price", "latency_cycles")


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

    def symbol_of_locate(self, locate):
        return {loc: name for _, name, loc in self.entries}.get(locate, "")

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


def load_symbols(card, slot_map):
    """Map every slot of ``slot_map`` on the card (book, encoder symbol, halts) and subscribe its locate."""
    slot_field = card.regmap["book.slot"].field("slot")
    valid_field = card.regmap["book.slot"].field("valid")
    subscribed = card.regmap["itch.subscribe"].field("subscribed").offset
    for slot, symbol, locate in slot_map.entries:
        card.write("book.symbol", symbol_text(symbol))
        card.write("book.slot", locate | slot << slot_field.offset | 1 << valid_field.offset)
        card.write("itch.subscribe", locate | 1 << subscribed)


def read_slots(card):
    """The slot table the card holds now, as a :class:`SlotMap` (slots that follow a stock only)."""
    entries = []
    for slot in range(slot_capacity(card)):
        card.write("book.slot_view", slot)
        view = card.decode("book.slot_view_locate", card.read("book.slot_view_locate"))
        if view["valid"]:
            symbol = card.read("book.slot_view_symbol").to_bytes(8, "little").decode("ascii", "replace").rstrip()
            entries.append((slot, symbol, view["locate"]))
    return SlotMap(tuple(entries))


def _rule_registers(rule):
    """Register values of one symbol's threshold rule (a :class:`~t2t.config.trading.SymbolThresholds`)."""
    return {
        "rule_flags": int(rule.enabled) | int(rule.one_shot) << 1,
        "rule_buy_threshold": rule.buy_below or 0,
        "rule_sell_threshold": rule.sell_above or 0,
        "rule_shares": rule.shares,
        "rule_offset": rule.offset_ticks,
        "rule_time_in_force": rule.time_in_force,
        "rule_cooldown": rule.cooldown_cycles,
    }


def load_thresholds(card, config: ThresholdsConfig, slot_map):
    """Stage every symbol's rule, then apply them all in one cycle (``rules_commit``). Slots of the map without a
    rule in ``config`` get a disabled rule, so nothing left from an earlier load keeps trading."""
    for slot, symbol, _ in slot_map.entries:
        rule = config.symbols.get(symbol)
        values = _rule_registers(rule) if rule else {"rule_flags": 0}
        card.write("strategy.rule_slot", slot)
        for name, value in values.items():
            card.write(f"strategy.{name}", value)
        card.write("strategy.rule_write", 1)
    unknown = set(config.symbols) - set(slot_map.symbols)
    if unknown:
        raise TradingError(f"no slot for {', '.join(sorted(unknown))}: nothing was applied")
    card.write("strategy.rules_commit", 1)


def _risk_registers(config: RiskConfig, slot_map):
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


def load_risk(card, config: RiskConfig, slot_map, positions=None):
    """Stage every limit, apply them in one cycle (commit group ``risk``), then set each slot's position limit
    (and position, from ``positions``: symbol -> net shares, default 0)."""
    values = _risk_registers(config, slot_map)
    for name, value in values.items():
        card.write(f"risk.{name}", value)
    card.commit("risk")
    positions = positions or {}
    for slot, symbol, _ in slot_map.entries:
        card.write("risk.position_slot", slot)
        card.write("risk.position", positions.get(symbol, 0) & 0xFFFFFFFF)
        card.write("risk.position_limit", config.position_limits.get(symbol, config.default_position_limit))
        card.write("risk.position_write", 1)


def read_risk(card):
    """The risk limits the card holds now (staged copies, as committed by the last load), by register name."""
    names = ("max_shares", "max_notional", "collar_ticks", "bucket_capacity", "refill_cycles", "duplicate_window",
             "max_rejects", "reject_window", "restricted")
    return {name: card.read(f"risk.{name}") for name in names}


def read_thresholds(card):
    """Rules cannot be read back per slot (they live in the strategy's rule memory): the staging registers show
    the last rule written."""
    names = ("rule_slot", "rule_flags", "rule_buy_threshold", "rule_sell_threshold", "rule_shares", "rule_offset",
             "rule_time_in_force", "rule_cooldown")
    return {name: card.read(f"strategy.{name}") for name in names}


def arm(card, armed=True):
    """Let the strategy's orders through to the risk gate (or, with ``armed=False``, stop them there)."""
    card.write("strategy.control", int(armed))


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


def latency(card):
    """The card's tick-to-trade latency figures and histogram (cycles)."""
    count = card.read("latency.count")
    bins = []
    index = 0
    while f"latency.bin_{index:02d}" in {reg.path for reg in card.regmap}:
        bins.append(card.read(f"latency.bin_{index:02d}"))
        index += 1
    if not count:
        return LatencyFigures(0, None, None, None, tuple(bins))
    total = card.read("latency.sum")
    return LatencyFigures(count, card.read("latency.min"), card.read("latency.max"), total * 100 // count,
                          tuple(bins))


def depth(card, slot, levels=8):
    """Top ``levels`` of each side of a slot's book: ``(bids, asks)`` lists of :class:`Level`, best first, empty
    levels left out."""
    side_field = card.regmap["book.depth_select"].field("side")
    level_field = card.regmap["book.depth_select"].field("level")
    sides = []
    for side in (0, 1):
        found = []
        for level in range(levels):
            card.write("book.depth_select", slot | side << side_field.offset | level << level_field.offset)
            price = card.read("book.depth_price")
            if not price:
                break
            found.append(Level(price, card.read("book.depth_shares"), card.read("book.depth_orders")))
        sides.append(found)
    return sides[0], sides[1]
