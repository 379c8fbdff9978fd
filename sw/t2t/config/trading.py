"""The two files a trader edits: ``thresholds.yaml`` (what to trade) and ``risk.yaml`` (the pre-trade limits).

thresholds.yaml::

    symbols:
      AAPL:
        buy_below: 189.50        # buy when the best ask is at or below (dollars, Price(4))
        sell_above: 191.00       # sell when the best bid is at or above
        shares: 100
        offset_ticks: 1          # limit price = touched price + offset (buy) or - offset (sell), in Price(4) ticks
        time_in_force: ioc       # ioc (default), day (market hours) or system
        cooldown_cycles: 1000    # silence after a signal, per side; or one_shot: true
        enabled: true
    pair:                        # optional: one pair rule (statistical arbitrage on two symbols)
      leg_a: AAPL
      leg_b: MSFT
      ratio: 0.5                 # shares of B per share of A: the card holds it as Q16.16 (nearest 1/65536)
      upper: 1.25                # A rich (bid(A) - ratio x ask(B) > upper, dollars): sell A, buy B
      lower: -1.25               # A cheap (ask(A) - ratio x bid(B) < lower): buy A, sell B
      shares_a: 100
      shares_b: 50
      time_in_force: ioc
      cooldown_cycles: 15625
      enabled: true

risk.yaml::

    max_shares_per_order: 500
    max_notional_per_order: 100000.00   # dollars
    collar_ticks: 500                   # orders within 5 cents (500 ticks) of the touch
    max_orders: {burst: 10, refill_cycles: 156250}   # token bucket
    duplicate_window_cycles: 15625
    kill_after: {rejects: 20, window_cycles: 156250000}
    positions: {AAPL: 1000, default: 500}            # per-symbol position limit, shares
    restricted: [TSLA]

symbols.yaml (the symbol directory: which stock locate each symbol has in today's feed; slots follow file order)::

    AAPL: 1
    MSFT: 2

Every symbol must be known (listed in the symbols file the host loaded from R messages or a directory file).
"""

import decimal
import re
from dataclasses import dataclass

from ..trade.reference import RATIO_FRACTION_BITS
from .schema import Problem, Reader, compose_file, format_price

__all__ = ["SymbolThresholds", "PairConfig", "ThresholdsConfig", "RiskConfig", "SymbolDirectory", "load_thresholds", "load_risk",
           "load_directory", "TIME_IN_FORCE", "MAX_LOCATE"]

#: OUCH 4.2 time-in-force values.
TIME_IN_FORCE = {"ioc": 0, "day": 99998, "system": 99999}
_SYMBOL = r"^[A-Z][A-Z0-9 .]{0,7}$"
#: ITCH stock locates are 16-bit; 0 is never a stock.
MAX_LOCATE = 0xFFFF
_THRESHOLD_FIELDS = {"buy_below", "sell_above", "shares", "offset_ticks", "time_in_force", "cooldown_cycles",
                     "one_shot", "enabled"}
_PAIR_FIELDS = {"leg_a", "leg_b", "ratio", "upper", "lower", "shares_a", "shares_b", "time_in_force",
                "cooldown_cycles", "enabled"}
_RATIO = re.compile(r"^\d+(\.\d+)?$")
_SIGNED_PRICE = re.compile(r"^-?\d+(\.\d{1,4})?$")
_RISK_FIELDS = {"max_shares_per_order", "max_notional_per_order", "collar_ticks", "max_orders",
                "duplicate_window_cycles", "kill_after", "positions", "restricted"}


@dataclass(frozen=True)
class SymbolThresholds:
    symbol: str
    buy_below: int | None    # Price(4) ticks; None: no buying
    sell_above: int | None   # Price(4) ticks; None: no selling
    shares: int
    offset_ticks: int
    time_in_force: int
    cooldown_cycles: int
    one_shot: bool
    enabled: bool


@dataclass(frozen=True)
class PairConfig:
    leg_a: str
    leg_b: str
    ratio_q16: int           # shares of B per share of A, unsigned Q16.16
    upper: int               # Price(4) ticks, signed
    lower: int               # Price(4) ticks, signed
    shares_a: int
    shares_b: int
    time_in_force: int
    cooldown_cycles: int
    enabled: bool


@dataclass(frozen=True)
class ThresholdsConfig:
    symbols: dict  # symbol -> SymbolThresholds
    pair: PairConfig | None = None

    @property
    def traded_symbols(self):
        """Every symbol the file trades: the threshold rules' and the pair's legs, each once, in file order."""
        legs = (self.pair.leg_a, self.pair.leg_b) if self.pair else ()
        return list(dict.fromkeys([*self.symbols, *legs]))


@dataclass(frozen=True)
class RiskConfig:
    max_shares_per_order: int
    max_notional_ticks: int         # Price(4) ticks x shares
    collar_ticks: int
    bucket_capacity: int
    refill_cycles: int
    duplicate_window_cycles: int
    max_rejects: int
    reject_window_cycles: int
    position_limits: dict           # symbol -> shares
    default_position_limit: int
    restricted: frozenset


@dataclass(frozen=True)
class SymbolDirectory:
    locates: dict   # symbol -> stock locate, in file order
    lines: dict     # symbol -> line of the file (for messages that name it)

    @property
    def symbols(self):
        return list(self.locates)


def load_directory(path):
    """Read and validate a symbol directory file ``{SYMBOL: locate, ...}``; raise :class:`ConfigError` listing
    every problem (bad symbol, bad or repeated locate, symbol given twice)."""
    reader = Reader(path)
    entries = reader.mapping(compose_file(path), "")
    locates, lines, owner = {}, {}, {}
    for symbol, (key_node, node) in entries.items():
        if reader.text(key_node, symbol, _SYMBOL, "a stock symbol (1-8 of A-Z, 0-9, space, dot)") is None:
            continue
        locate = reader.integer(node, symbol, minimum=1, maximum=MAX_LOCATE)
        if locate is None:
            continue
        if locate in owner:
            reader.problem(node, symbol, f"locate {locate} is already {owner[locate]}'s")
            continue
        owner[locate] = symbol
        locates[symbol] = locate
        lines[symbol] = key_node.start_mark.line + 1
    if not entries and not reader.problems:
        reader.problem(None, "(file)", "no symbols")
    reader.check()
    return SymbolDirectory(locates, lines)


def _known_symbol(reader, node, field, symbol, known):
    if known is not None and symbol not in known:
        reader.problem(node, field, f"unknown symbol {symbol!r} (not in the loaded symbol directory)")
        return False
    return True


def _time_in_force(reader, entries, field):
    if "time_in_force" not in entries:
        return TIME_IN_FORCE["ioc"]
    tif = reader.text(entries["time_in_force"][1], f"{field}.time_in_force")
    if tif not in TIME_IN_FORCE:
        reader.problem(entries["time_in_force"][1], f"{field}.time_in_force",
                       f"{tif!r} is not one of {', '.join(TIME_IN_FORCE)}")
        return None
    return TIME_IN_FORCE[tif]


def _signed_price(reader, node, field):
    """Signed dollars (``-1.25``) as Price(4) ticks, exactly, within 32-bit two's complement."""
    text = reader.scalar_text(node, field)
    if text is None:
        return None
    if not _SIGNED_PRICE.match(text):
        reader.problem(node, field, f"{text!r} is not an amount in dollars like -1.25 (at most 4 decimals)")
        return None
    ticks = int(decimal.Decimal(text) * 10_000)
    if not -(1 << 31) <= ticks < (1 << 31):
        reader.problem(node, field, f"{text} is outside the card's signed 32-bit Price(4) range")
        return None
    return ticks


def _load_pair(reader, node, known_symbols):
    field = "pair"
    entries = reader.mapping(node, field, allowed=_PAIR_FIELDS,
                             required=("leg_a", "leg_b", "ratio", "upper", "lower", "shares_a", "shares_b"))
    value = {}
    for name in ("leg_a", "leg_b"):
        value[name] = None
        if name in entries:
            leg = reader.text(entries[name][1], f"{field}.{name}", _SYMBOL, "a stock symbol")
            if leg is not None and _known_symbol(reader, entries[name][1], f"{field}.{name}", leg, known_symbols):
                value[name] = leg
    if value["leg_a"] is not None and value["leg_a"] == value["leg_b"]:
        reader.problem(entries["leg_b"][1], f"{field}.leg_b", "the two legs must be different symbols")
    value["ratio_q16"] = None
    if "ratio" in entries:
        text = reader.scalar_text(entries["ratio"][1], f"{field}.ratio")
        if text is not None and not _RATIO.match(text):
            reader.problem(entries["ratio"][1], f"{field}.ratio", f"{text!r} is not a positive decimal like 0.5")
        elif text is not None:
            q16 = int((decimal.Decimal(text) * (1 << RATIO_FRACTION_BITS)).to_integral_value(decimal.ROUND_HALF_EVEN))
            if not 1 <= q16 < (1 << 32):
                reader.problem(entries["ratio"][1], f"{field}.ratio",
                               f"{text} is outside what Q16.16 holds (1/65536 up to 65535.99998)")
            else:
                value["ratio_q16"] = q16
    for name in ("upper", "lower"):
        value[name] = _signed_price(reader, entries[name][1], f"{field}.{name}") if name in entries else None
    if value["upper"] is not None and value["lower"] is not None and value["lower"] > value["upper"]:
        reader.problem(entries["lower"][1], f"{field}.lower",
                       f"lower ({format_price(value['lower'])}) is above upper ({format_price(value['upper'])}): "
                       f"both directions would signal at once")
    for name in ("shares_a", "shares_b"):
        value[name] = reader.integer(entries[name][1], f"{field}.{name}", minimum=1) if name in entries else None
    value["time_in_force"] = _time_in_force(reader, entries, field)
    value["cooldown_cycles"] = (reader.integer(entries["cooldown_cycles"][1], f"{field}.cooldown_cycles")
                                if "cooldown_cycles" in entries else 0)
    value["enabled"] = (reader.boolean(entries["enabled"][1], f"{field}.enabled")
                        if "enabled" in entries else True)
    return value


def load_thresholds(path, known_symbols=None):
    """Read and validate a thresholds file; raise :class:`ConfigError` listing every problem."""
    reader = Reader(path)
    root = reader.mapping(compose_file(path), "", allowed={"symbols", "pair"}, required=("symbols",))
    symbols = {}
    if "symbols" in root:
        for symbol, (key_node, node) in reader.mapping(root["symbols"][1], "symbols").items():
            field = f"symbols.{symbol}"
            if reader.text(key_node, field, _SYMBOL, "a stock symbol (1-8 of A-Z, 0-9, space, dot)") is None:
                continue
            _known_symbol(reader, key_node, field, symbol, known_symbols)
            entries = reader.mapping(node, field, allowed=_THRESHOLD_FIELDS, required=("shares",))
            value = {}
            for name in ("buy_below", "sell_above"):
                value[name] = reader.price(entries[name][1], f"{field}.{name}") if name in entries else None
            if "buy_below" not in entries and "sell_above" not in entries:
                reader.problem(node, field, "needs buy_below, sell_above or both")
            value["shares"] = (reader.integer(entries["shares"][1], f"{field}.shares", minimum=1)
                               if "shares" in entries else None)
            value["offset_ticks"] = (reader.integer(entries["offset_ticks"][1], f"{field}.offset_ticks",
                                                    maximum=0xFFFF) if "offset_ticks" in entries else 0)
            value["time_in_force"] = _time_in_force(reader, entries, field)
            value["cooldown_cycles"] = (reader.integer(entries["cooldown_cycles"][1], f"{field}.cooldown_cycles")
                                        if "cooldown_cycles" in entries else 0)
            value["one_shot"] = (reader.boolean(entries["one_shot"][1], f"{field}.one_shot")
                                 if "one_shot" in entries else False)
            value["enabled"] = (reader.boolean(entries["enabled"][1], f"{field}.enabled")
                                if "enabled" in entries else True)
            buy, sell = value["buy_below"], value["sell_above"]
            if buy is not None and sell is not None and buy >= sell:
                reader.problem(node, field, f"buy_below ({format_price(buy)}) must be below sell_above "
                                            f"({format_price(sell)}), or one signal buys and sells at once")
            symbols[symbol] = value
    pair = _load_pair(reader, root["pair"][1], known_symbols) if "pair" in root else None
    reader.check()
    return ThresholdsConfig(symbols={symbol: SymbolThresholds(symbol=symbol, **value)
                                     for symbol, value in symbols.items()},
                            pair=PairConfig(**pair) if pair is not None else None)


def load_risk(path, known_symbols=None):
    """Read and validate a risk-limits file; raise :class:`ConfigError` listing every problem."""
    reader = Reader(path)
    root_node = compose_file(path)
    root = reader.mapping(root_node, "", allowed=_RISK_FIELDS,
                          required=("max_shares_per_order", "max_notional_per_order", "collar_ticks",
                                    "max_orders", "kill_after", "positions"))

    def integer(name, minimum=0, maximum=2**32 - 1):
        return reader.integer(root[name][1], name, minimum, maximum) if name in root else None

    max_shares = integer("max_shares_per_order", minimum=1)
    notional = (reader.price(root["max_notional_per_order"][1], "max_notional_per_order", maximum=2**64 - 1)
                if "max_notional_per_order" in root else None)
    collar = integer("collar_ticks", minimum=1)
    duplicate_window = integer("duplicate_window_cycles") if "duplicate_window_cycles" in root else 0
    bucket = reader.mapping(root["max_orders"][1], "max_orders", allowed={"burst", "refill_cycles"},
                            required=("burst", "refill_cycles")) if "max_orders" in root else {}
    burst = reader.integer(bucket["burst"][1], "max_orders.burst", 1, 0xFFFF) if "burst" in bucket else None
    refill = (reader.integer(bucket["refill_cycles"][1], "max_orders.refill_cycles", 1)
              if "refill_cycles" in bucket else None)
    kill = reader.mapping(root["kill_after"][1], "kill_after", allowed={"rejects", "window_cycles"},
                          required=("rejects", "window_cycles")) if "kill_after" in root else {}
    rejects = reader.integer(kill["rejects"][1], "kill_after.rejects", 1, 0xFFFF) if "rejects" in kill else None
    reject_window = (reader.integer(kill["window_cycles"][1], "kill_after.window_cycles", 1)
                     if "window_cycles" in kill else None)

    limits, default_limit = {}, None
    if "positions" in root:
        for symbol, (key_node, node) in reader.mapping(root["positions"][1], "positions").items():
            shares = reader.integer(node, f"positions.{symbol}", minimum=1, maximum=2**31 - 1)
            if symbol == "default":
                default_limit = shares
            elif reader.text(key_node, f"positions.{symbol}", _SYMBOL, "a stock symbol") is not None \
                    and _known_symbol(reader, key_node, f"positions.{symbol}", symbol, known_symbols):
                limits[symbol] = shares
        if default_limit is None:
            reader.problem(root["positions"][1], "positions.default", "missing (the limit of unlisted symbols)")

    restricted = set()
    if "restricted" in root:
        node = root["restricted"][1]
        if not hasattr(node, "value") or not isinstance(node.value, list):
            reader.problem(node, "restricted", "expected a list of symbols")
        else:
            for item in node.value:
                symbol = reader.text(item, "restricted", _SYMBOL, "a stock symbol")
                if symbol is not None and _known_symbol(reader, item, "restricted", symbol, known_symbols):
                    restricted.add(symbol)

    if max_shares is not None:
        for symbol, limit in limits.items():
            if limit is not None and limit < max_shares:
                key_node = root["positions"][1]
                reader.problems.append(Problem(reader.path, key_node.start_mark.line + 1, f"positions.{symbol}",
                                               f"position limit {limit} is below max_shares_per_order "
                                               f"{max_shares}: no order could ever pass"))
    reader.check()
    return RiskConfig(
        max_shares_per_order=max_shares, max_notional_ticks=notional, collar_ticks=collar,
        bucket_capacity=burst, refill_cycles=refill, duplicate_window_cycles=duplicate_window,
        max_rejects=rejects, reject_window_cycles=reject_window, position_limits=limits,
        default_position_limit=default_limit, restricted=frozenset(restricted))

