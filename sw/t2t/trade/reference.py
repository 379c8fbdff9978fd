"""Reference models of the gateware's strategies (threshold, pair) and pre-trade risk gate, in integers.

The models take events with the cycle number of their handshake on the gateware's input (an update on ``i_bbo``
or ``i_bbo_tap``, an order on ``i_order``), in cycle order; host actions (rule commits, re-arms, position writes,
kill) happen between events. Cooldowns, the order bucket and the windows count cycles. They are the reference
the gateware is checked against, and what the host uses to explain a decision; they need nothing beyond the
standard library.
"""

import enum
from dataclasses import dataclass, field

__all__ = ["StrategyRule", "ThresholdStrategyModel", "PairRule", "PairStrategyModel", "RejectReason", "RiskLimits",
           "RiskGateModel", "STRATEGY_COUNTERS", "PAIR_COUNTERS", "RISK_COUNTERS", "RATIO_FRACTION_BITS",
           "BUCKET_DELAY", "TOKEN_DELAY"]

_U16, _U32, _U64 = (1 << 16) - 1, (1 << 32) - 1, (1 << 64) - 1
BUY, SELL = 0, 1

#: Cycles from the gateware risk gate taking an order to checking its order bucket (with every other check).
BUCKET_DELAY = 0

#: Cycles from the gateware risk gate taking an order to the cycle at whose end an accepted order's token is
#: taken, for an order whose notional the gate checks at once (one that waits for the divider is decided later).
TOKEN_DELAY = 2

STRATEGY_COUNTERS = ("signals", "suppressed_cooldown", "suppressed_degraded", "suppressed_halted",
                     "suppressed_crossed", "suppressed_conflict")


def _check_range(owner, name, value, top):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
        raise ValueError(f"{owner}.{name} = {value!r}: an integer in 0..{top}")


@dataclass(frozen=True)
class StrategyRule:
    """One slot's threshold rule (the gateware's ``StrategyRule``). Prices are Price(4) ticks; a threshold of 0
    disables its side. ``offset`` is in ticks, ``cooldown`` in cycles."""
    enable: bool = False
    buy_threshold: int = 0
    sell_threshold: int = 0
    shares: int = 0
    offset: int = 0
    time_in_force: int = 0
    cooldown: int = 0
    one_shot: bool = False

    def __post_init__(self):
        for name, top in (("buy_threshold", _U32), ("sell_threshold", _U32), ("shares", _U32), ("offset", _U16),
                          ("time_in_force", _U32), ("cooldown", _U32)):
            _check_range("StrategyRule", name, getattr(self, name), top)

    def fields(self):
        """The rule as the gateware's ``StrategyRule`` field values."""
        return {"enable": int(self.enable), "one_shot": int(self.one_shot), "buy_threshold": self.buy_threshold,
                "sell_threshold": self.sell_threshold, "shares": self.shares, "offset": self.offset,
                "time_in_force": self.time_in_force, "cooldown": self.cooldown}


class ThresholdStrategyModel:
    """The gateware :class:`ThresholdStrategy`: at most one order per BBO update, by the slot's committed rule.

    ``on_bbo(cycle, bbo, halted)`` takes the update's fields (``slot``, ``locate``, ``bid_price``, ``ask_price``,
    ``degraded``, ``timestamp``, ``stamp``) and returns the order as a dict of ``OrderRequest`` fields, or None
    (``more_legs`` 0: single orders).
    """

    def __init__(self, symbols):
        self.symbols = symbols
        self.active = [StrategyRule() for _ in range(symbols)]
        self.staged = {}
        self.ready_at = {(slot, side): 0 for slot in range(symbols) for side in (BUY, SELL)}
        self.fired = set()
        self.counters = dict.fromkeys(STRATEGY_COUNTERS, 0)

    def stage(self, slot, rule):
        self.staged[slot] = rule

    def commit(self):
        for slot, rule in self.staged.items():
            self.active[slot] = rule
        self.staged = {}

    def rearm(self, slots):
        self.fired -= {(slot, side) for slot in slots for side in (BUY, SELL)}

    def _armed(self, cycle, slot, side, rule):
        return cycle >= self.ready_at[slot, side] and not (rule.one_shot and (slot, side) in self.fired)

    def on_bbo(self, cycle, bbo, halted=False):
        slot = bbo["slot"]
        if slot >= self.symbols:
            return None
        rule = self.active[slot]
        if not rule.enable:
            return None
        bid, ask = bbo["bid_price"], bbo["ask_price"]
        if bbo["degraded"]:
            return self._count("suppressed_degraded")
        if halted:
            return self._count("suppressed_halted")
        if bid and ask and bid >= ask:
            return self._count("suppressed_crossed")
        buy_hit = ask != 0 and ask <= rule.buy_threshold
        sell_hit = rule.sell_threshold != 0 and bid != 0 and bid >= rule.sell_threshold
        if buy_hit and sell_hit:
            return self._count("suppressed_conflict")
        if not (buy_hit or sell_hit):
            return None
        side = BUY if buy_hit else SELL
        if not self._armed(cycle, slot, side, rule):
            return self._count("suppressed_cooldown")
        self._count("signals")
        self.ready_at[slot, side] = (cycle + rule.cooldown) & _U64
        if rule.one_shot:
            self.fired.add((slot, side))
        price = (ask + rule.offset) & _U32 if side == BUY else max(bid - rule.offset, 1)
        return {"slot": slot, "locate": bbo["locate"], "side": side, "shares": rule.shares, "price": price,
                "time_in_force": rule.time_in_force, "timestamp": bbo["timestamp"], "stamp": bbo["stamp"],
                "more_legs": 0}

    def _count(self, name):
        self.counters[name] += 1


PAIR_COUNTERS = ("signals", "suppressed_cooldown", "suppressed_untradable", "suppressed_conflict")

#: Fraction bits of :attr:`PairRule.ratio` (Q16.16).
RATIO_FRACTION_BITS = 16


@dataclass(frozen=True)
class PairRule:
    """The pair rule (the gateware's ``PairRule``): legs A and B are symbol slots; ``ratio`` is Q16.16 shares of B
    per share of A; ``upper`` and ``lower`` are signed ticks. A rich (``bid(A) - ratio x ask(B) > upper``) sells A
    at bid(A) and buys B at ask(B); A cheap (``ask(A) - ratio x bid(B) < lower``) buys A at ask(A) and sells B at
    bid(B)."""
    enable: bool = False
    slot_a: int = 0
    slot_b: int = 0
    ratio: int = 1 << RATIO_FRACTION_BITS
    upper: int = 0
    lower: int = 0
    shares_a: int = 0
    shares_b: int = 0
    time_in_force: int = 0
    cooldown: int = 0

    def __post_init__(self):
        for name, top in (("slot_a", 255), ("slot_b", 255), ("ratio", _U32), ("shares_a", _U32),
                          ("shares_b", _U32), ("time_in_force", _U32), ("cooldown", _U32)):
            _check_range("PairRule", name, getattr(self, name), top)
        for name in ("upper", "lower"):
            value = getattr(self, name)
            if not isinstance(value, int) or not -(1 << 31) <= value < (1 << 31):
                raise ValueError(f"PairRule.{name} = {value!r}: a signed 32-bit integer")

    def fields(self):
        return {name: int(value) for name, value in self.__dict__.items()}


class PairStrategyModel:
    """The gateware :class:`PairStrategy`, for updates far enough apart that each is evaluated on its own:
    ``on_bbo(cycle, bbo, halted)`` returns the two legs (A first, with ``more_legs`` 1) or nothing."""

    def __init__(self):
        self.active = PairRule()
        self.staged = None
        self.legs = [{"bid": 0, "ask": 0, "degraded": 0, "locate": 0} for _ in range(2)]
        self.ready_at = 0
        self.counters = dict.fromkeys(PAIR_COUNTERS, 0)

    def stage(self, rule):
        self.staged = rule

    def commit(self):
        if self.staged is not None:
            self.active = self.staged

    def on_bbo(self, cycle, bbo, halted=False):
        rule = self.active
        hit = False
        for index, slot in enumerate((rule.slot_a, rule.slot_b)):
            if bbo["slot"] == slot:
                self.legs[index] = {"bid": bbo["bid_price"], "ask": bbo["ask_price"], "degraded": bbo["degraded"],
                                    "locate": bbo["locate"]}
                hit = True
        if not (hit and rule.enable):
            return []
        a, b = self.legs
        scale = 1 << RATIO_FRACTION_BITS
        rich = (a["bid"] - rule.upper) * scale > rule.ratio * b["ask"]
        cheap = (a["ask"] - rule.lower) * scale < rule.ratio * b["bid"]
        if halted or not all(leg["bid"] and leg["ask"] and leg["bid"] < leg["ask"] and not leg["degraded"]
                             for leg in (a, b)):
            self.counters["suppressed_untradable"] += 1
            return []
        if rich and cheap:
            self.counters["suppressed_conflict"] += 1
            return []
        if not (rich or cheap):
            return []
        if cycle < self.ready_at:
            self.counters["suppressed_cooldown"] += 1
            return []
        self.counters["signals"] += 1
        self.ready_at = cycle + rule.cooldown
        legs = []
        for leg, slot, shares, sells, more in ((a, rule.slot_a, rule.shares_a, rich, 1),
                                               (b, rule.slot_b, rule.shares_b, cheap, 0)):
            legs.append({"slot": slot, "locate": leg["locate"], "side": SELL if sells else BUY, "shares": shares,
                         "price": leg["bid"] if sells else leg["ask"], "time_in_force": rule.time_in_force,
                         "timestamp": bbo["timestamp"], "stamp": bbo["stamp"], "more_legs": more})
        return legs


class RejectReason(enum.IntEnum):
    """The gateware's ``RejectReason``: when several checks fail, the lowest value is reported."""
    NONE = 0
    KILLED = 1
    RESTRICTED = 2
    MAX_SHARES = 3
    MAX_NOTIONAL = 4
    NO_REFERENCE = 5
    PRICE_COLLAR = 6
    POSITION_LIMIT = 7
    RATE_LIMIT = 8
    DUPLICATE = 9

    @property
    def text(self):
        return _REASON_TEXT[self]


_REASON_TEXT = {
    RejectReason.NONE: "accepted",
    RejectReason.KILLED: "kill switch engaged",
    RejectReason.RESTRICTED: "symbol restricted",
    RejectReason.MAX_SHARES: "order larger than max shares",
    RejectReason.MAX_NOTIONAL: "order notional above max notional",
    RejectReason.NO_REFERENCE: "no reference price (the side to collar against is empty)",
    RejectReason.PRICE_COLLAR: "price outside the collar around the BBO",
    RejectReason.POSITION_LIMIT: "position plus open orders would pass the symbol's limit",
    RejectReason.RATE_LIMIT: "order rate limit (no token in the bucket)",
    RejectReason.DUPLICATE: "duplicate of the last accepted order",
}

RISK_COUNTERS = ("accepted",) + tuple(f"rejected_{reason.name.lower()}" for reason in RejectReason
                                      if reason != RejectReason.NONE) + ("reject_log_dropped",)


@dataclass(frozen=True)
class RiskLimits:
    """The gateware's ``RiskLimits`` (see there for the meaning of each field and of 0)."""
    max_shares: int = 0
    max_notional: int = 0
    collar_ticks: int = 0
    bucket_capacity: int = 0
    refill_cycles: int = 0
    duplicate_window: int = 0
    max_rejects: int = 0
    reject_window: int = 0

    def __post_init__(self):
        for name, top in (("max_shares", _U32), ("max_notional", _U64), ("collar_ticks", _U32),
                          ("bucket_capacity", _U16), ("refill_cycles", _U32), ("duplicate_window", _U32),
                          ("max_rejects", _U16), ("reject_window", _U32)):
            _check_range("RiskLimits", name, getattr(self, name), top)

    def fields(self):
        return dict(self.__dict__)


@dataclass
class _Slot:
    bid: int = 0
    ask: int = 0
    buy_room: int = 0   # limit - position - pending buys
    sell_room: int = 0  # limit + position - pending sells
    restricted: bool = False


@dataclass
class RiskGateModel:
    """The gateware :class:`RiskGate`. ``submit(cycle, order, decided=None)`` returns the :class:`RejectReason`
    (``NONE`` when accepted); ``rejects`` keeps every reject's record and ``counters`` the gateware's counters.

    ``cycle`` is the cycle the gateware took the order; every check uses the state of that cycle (the bucket too,
    :data:`BUCKET_DELAY` = 0). An accepted order's token is taken at the end of the cycle after its decision cycle
    ``decided`` (when its ``valid`` rose): :data:`TOKEN_DELAY` cycles after ``cycle``, or later for an order that
    waited for the gateware's divider. The bucket refills at the end of every cycle
    ``k * refill_cycles - 1`` counted from cycle 0, which is the first cycle a non-zero ``refill_cycles`` is in
    force on the card (the gateware's period count stands still while ``refill_cycles`` is 0, its reset value):
    callers pass cycles relative to it. Whether an order waits for the divider changes only
    when its token is taken, never the decision: the notional check is exact either way.
    """
    symbols: int
    limits: RiskLimits = field(default_factory=RiskLimits)

    def __post_init__(self):
        self.kill = False
        self.slots = [_Slot() for _ in range(self.symbols)]
        self.killed = False
        self.tokens = 0
        self.refills_applied = 0
        self.last = None
        self.duplicate_until = 0
        self.window_rejects = 0
        self.window_until = 0
        self.rejects = []
        self.counters = dict.fromkeys(RISK_COUNTERS, 0)

    def on_bbo(self, slot, bid_price, ask_price):
        if slot < self.symbols:
            self.slots[slot].bid, self.slots[slot].ask = bid_price, ask_price

    def set_position(self, slot, position, limit):
        self.slots[slot].buy_room = limit - position
        self.slots[slot].sell_room = limit + position

    def set_restricted(self, slots):
        for index, state in enumerate(self.slots):
            state.restricted = index in slots

    def set_kill(self, level):
        """The host's ``kill`` input: refuses orders while high, and leaves the switch tripped."""
        self.kill = bool(level)
        self.killed |= self.kill

    def rearm(self):
        self.killed = self.kill
        self.window_rejects = 0
        self.window_until = 0

    def _tokens_at(self, cycle):
        """Tokens after the refills at the end of every cycle before ``cycle``, and how many refills that is."""
        period = self.limits.refill_cycles
        if not period:
            return self.tokens, self.refills_applied
        due = cycle // period
        tokens = self.tokens
        if tokens < self.limits.bucket_capacity:
            tokens = min(self.limits.bucket_capacity, tokens + due - self.refills_applied)
        return tokens, due

    def _refill(self, cycle):
        self.tokens, self.refills_applied = self._tokens_at(cycle)

    def check(self, cycle, order):
        """The reason ``order``, taken at ``cycle``, would be refused, without changing any state."""
        limits = self.limits
        slot, side, shares, price = order["slot"], order["side"], order["shares"], order["price"]
        state = self.slots[slot] if slot < self.symbols else None
        failed = []
        if self.killed or self.kill:
            failed.append(RejectReason.KILLED)
        if state is None or state.restricted:
            failed.append(RejectReason.RESTRICTED)
        if shares > limits.max_shares:
            failed.append(RejectReason.MAX_SHARES)
        if shares * price > limits.max_notional:
            failed.append(RejectReason.MAX_NOTIONAL)
        if state is not None:
            reference = state.ask if side == BUY else state.bid
            if reference == 0:
                failed.append(RejectReason.NO_REFERENCE)
            elif (price > state.ask + limits.collar_ticks if side == BUY
                  else price + limits.collar_ticks < state.bid):
                failed.append(RejectReason.PRICE_COLLAR)
            if shares > (state.buy_room if side == BUY else state.sell_room):
                failed.append(RejectReason.POSITION_LIMIT)
        if self._tokens_at(cycle + BUCKET_DELAY)[0] == 0:
            failed.append(RejectReason.RATE_LIMIT)
        if self.last == (slot, side, price, shares) and cycle < self.duplicate_until:
            failed.append(RejectReason.DUPLICATE)
        return min(failed, default=RejectReason.NONE)

    def submit(self, cycle, order, decided=None):
        self._refill(cycle + BUCKET_DELAY)
        reason = self.check(cycle, order)
        if reason == RejectReason.NONE:
            self._refill(cycle + TOKEN_DELAY if decided is None else decided + 1)
            self._accept(cycle, order)
        else:
            self._reject(cycle, order, reason)
        return reason

    def _accept(self, cycle, order):
        self.counters["accepted"] += 1
        slot, side, shares = order["slot"], order["side"], order["shares"]
        self.last = (slot, side, order["price"], shares)
        self.duplicate_until = cycle + self.limits.duplicate_window
        if side == BUY:
            self.slots[slot].buy_room -= shares
        else:
            self.slots[slot].sell_room -= shares
        self.tokens -= 1

    def _reject(self, cycle, order, reason):
        self.counters[f"rejected_{reason.name.lower()}"] += 1
        self.rejects.append({"slot": order["slot"], "locate": order["locate"], "side": order["side"],
                             "shares": order["shares"], "price": order["price"], "reason": reason})
        if cycle >= self.window_until:
            self.window_until = cycle + self.limits.reject_window
            self.window_rejects = 1
        else:
            self.window_rejects += 1
        if self.limits.max_rejects and self.window_rejects >= self.limits.max_rejects:
            self.killed = True
