"""Post-trade risk on the host: orders, positions, P&L, limits, kill switch, journal and recovery.

:class:`PositionTracker` follows every order (sent by the card or the host) through its execution reports
(OUCH 4.2 Accepted, Executed, Canceled, Rejected) with the state machine of :mod:`.orders`, keeps a
:class:`~.position.Position` per symbol, marks it to the BBO it is given, and checks the limits after every fill and
every mark. All money is integer Price(4) ticks x shares; dollars appear only when presented.

Refusals. A report for an unknown token, one the order's state does not allow (a second Accepted, a fill after a
cancel...), a fill of more shares than are open, a fill whose match number was already counted, or a report whose
SoupBinTCP sequence number was already applied is refused: logged (logger ``t2t.positions``), kept in
:attr:`PositionTracker.refused`, and not counted. Fills are idempotent by match number on their own; pass the
sequence numbers to make every report idempotent (a repeated partial Canceled has nothing else to tell it apart).
Sequence numbers are a high-water mark: register an order (:meth:`PositionTracker.order_sent`, from the card's
order log or TX stream) before its reports are applied, since a report refused as unknown is not taken later
once a higher sequence number has been applied (``adopt_unknown_accepted`` takes an unknown Accepted as the order
it describes).

Limits (:class:`PositionLimits`): daily loss (realized + unrealized P&L below minus the limit), gross exposure
(sum of the absolute market values of the positions above the limit) and position per symbol (absolute net
shares above the limit). The first breach, found by the fill or mark that causes it, calls the kill switch in that
same call and switches the tracker to REDUCING: :meth:`PositionTracker.allows` then passes only orders that reduce
a position without flipping it, and :meth:`PositionTracker.flatten_orders` gives the orders that flatten
everything. The tracker stays REDUCING until :meth:`PositionTracker.rearm` (a person's decision) finds no limit
breached.

Journal and recovery. Every order sent, every report applied and every mode change is appended to the journal
(:mod:`.journal`) before it is applied. A tracker built on an existing journal replays it: the same orders, fills,
positions and P&L, the same match numbers and sequence numbers already seen (so a fill the exchange replays after a
reconnect is refused, not counted twice), and the same mode. It then pushes every recovered position to the card
(``on_position``), and calls the kill switch again if it recovered in REDUCING. Marks are not journaled: the
unrealized P&L counts from the first marks after the restart.

The tracker is single-threaded: call it from one thread (the one that polls the card and the exchange session).
"""

import dataclasses
import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..trade import ouch
from .journal import Journal, JournalError, message_from_record, message_record, read_journal
from .orders import IllegalTransition, OrderEvent, OrderRecord, next_state, side_sign
from .position import Position, dollars, ticks
from .var import ReturnHistory, historical_var

__all__ = ["PositionTracker", "PositionLimits", "TrackerMode", "Breach", "Fill", "PositionSample", "PnlSample",
           "Refusal", "Outcome"]

_log = logging.getLogger("t2t.positions")


class TrackerMode(enum.StrEnum):
    NORMAL = "NORMAL"
    REDUCING = "REDUCING"


@dataclass(frozen=True)
class PositionLimits:
    """Limits in integers: ``daily_loss`` and ``max_gross_exposure`` in ticks x shares, ``max_position`` in shares
    (every symbol; ``symbol_max_position`` overrides it per symbol). 0 disables a limit. :meth:`in_dollars` builds
    them from dollars."""
    daily_loss: int = 0
    max_gross_exposure: int = 0
    max_position: int = 0
    symbol_max_position: Mapping = field(default_factory=dict)

    def __post_init__(self):
        for name in ("daily_loss", "max_gross_exposure", "max_position"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"PositionLimits.{name} = {value!r}: a non-negative integer")

    @classmethod
    def in_dollars(cls, daily_loss=0, max_gross_exposure=0, max_position=0, symbol_max_position=None):
        """Limits from dollar amounts (converted to ticks x shares); positions stay in shares."""
        return cls(ticks(daily_loss), ticks(max_gross_exposure), max_position, dict(symbol_max_position or {}))

    def position_limit(self, symbol):
        return self.symbol_max_position.get(symbol, self.max_position)


@dataclass(frozen=True)
class Breach:
    """A limit found breached: ``kind`` ``daily_loss``, ``gross_exposure`` or ``position``; ``value`` and
    ``limit`` in the limit's unit (ticks x shares, or shares)."""
    kind: str
    symbol: str
    value: int
    limit: int
    timestamp_ns: int

    @property
    def text(self):
        if self.kind == "position":
            return f"position {self.symbol} {self.value} shares above the limit of {self.limit}"
        what = "loss" if self.kind == "daily_loss" else "gross exposure"
        return f"{what} ${dollars(self.value):,.2f} above the limit of ${dollars(self.limit):,.2f}"


@dataclass(frozen=True)
class Fill:
    """One fill as applied: ``side`` the order's OUCH side, ``price`` ticks; ``net_shares`` and ``realized``
    (ticks x shares) are the symbol's position after it."""
    timestamp_ns: int
    token: str
    symbol: str
    side: str
    shares: int
    price: int
    match_number: int
    liquidity_flag: str
    net_shares: int
    realized: int
    sequence: int | None = None


@dataclass(frozen=True)
class PositionSample:
    """A symbol's position after a fill: ``cost`` and P&L in ticks x shares."""
    timestamp_ns: int
    symbol: str
    net_shares: int
    cost: int
    realized: int
    unrealized: int

    @property
    def average_price(self):
        """Average price in ticks (a float, for presentation), None when flat."""
        return self.cost / abs(self.net_shares) if self.net_shares else None


@dataclass(frozen=True)
class PnlSample:
    """P&L and exposure of the whole book at a time, in ticks x shares."""
    timestamp_ns: int
    realized: int
    unrealized: int
    gross_exposure: int
    net_exposure: int

    @property
    def total(self):
        return self.realized + self.unrealized


@dataclass(frozen=True)
class Refusal:
    timestamp_ns: int
    message: object
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What became of an order or a report: ``applied``, or refused for ``reason``; true when applied."""
    applied: bool
    reason: str = ""
    order: OrderRecord | None = None
    fill: Fill | None = None

    def __bool__(self):
        return self.applied


class _Refused(Exception):
    pass


def _kill_callable(kill):
    if kill is None or callable(kill):
        return kill
    method = getattr(kill, "kill", None)
    if callable(method):
        return method
    raise TypeError(f"kill is a callable or an object with a kill() method, not {kill!r}")


class PositionTracker:
    """Positions, P&L and limits of a trading day (see the module doc).

    Parameters
    ----------
    limits : PositionLimits, optional
        The limits (none by default).
    kill : callable or object with ``kill()``, optional
        The card's kill switch, called with no argument on the first breach.
    on_position : callable, optional
        ``on_position(symbol, net_shares)`` after every fill (and for every symbol after a recovery): the card's
        risk gate counts positions.
    journal : str or path, optional
        The journal file: replayed if it exists, then appended to.
    fsync : bool
        fsync the journal after every record (survives a power loss, not only a crash of the host process).
    adopt_unknown_accepted : bool
        Take an Accepted for a token the tracker was not told about as the order it describes (for orders the card
        sent that the host has not read from the card's order log yet), rather than refuse it.
    var_bucket_ns : int
        Grid of the price history for value at risk (ITCH time); the VaR horizon.
    pnl_sample_ns : int, optional
        Least ITCH time between two P&L samples taken on marks (fills always take one); ``var_bucket_ns`` if None.
    """

    def __init__(self, limits=None, *, kill=None, on_position=None, journal=None, fsync=False,
                 adopt_unknown_accepted=False, var_bucket_ns=10_000_000, pnl_sample_ns=None):
        self.limits = limits or PositionLimits()
        self._kill = _kill_callable(kill)
        self._on_position = on_position
        self.adopt_unknown_accepted = adopt_unknown_accepted
        self.mode = TrackerMode.NORMAL
        self.orders = {}                 # token -> OrderRecord
        self.positions = {}              # symbol -> Position
        self.fills = []
        self.breaches = []
        self.refused = []
        self.position_history = []
        self.pnl_history = []
        self.returns = ReturnHistory(var_bucket_ns)
        self.pnl_sample_ns = var_bucket_ns if pnl_sample_ns is None else pnl_sample_ns
        self.last_sequence = 0
        self.now_ns = 0                  # latest timestamp seen (reports and marks)
        self.kills = 0
        self._working = {}               # token -> OrderRecord, orders not final
        self._matches = set()
        self._marks = {}                 # symbol -> (bid, ask)
        self._realized = 0
        self._last_pnl_sample = None
        self._flatten_number = 0
        self._journal = None
        if journal is not None:
            self._recover(read_journal(journal))
            self._journal = Journal(journal, fsync=fsync)
            self._after_recovery()

    # --- Orders and reports ---------------------------------------------------------------------------------

    def order_sent(self, order, timestamp_ns=0):
        """Register an order sent (an :class:`~t2t.trade.ouch.EnterOrder`): NEW until the exchange answers.
        Refused if its token is already known or its side or shares are not valid."""
        try:
            if order.token in self.orders:
                raise _Refused(f"duplicate order token {order.token!r}")
            side_sign(order.side)
            if order.shares <= 0:
                raise _Refused(f"order {order.token!r} has no shares")
        except (_Refused, ValueError) as error:
            return self._refuse(timestamp_ns, order, str(error))
        self._write({"k": "order", "t": timestamp_ns, "order": dataclasses.asdict(order)})
        return Outcome(True, order=self._register(order, timestamp_ns))

    def on_client_packet(self, data, timestamp_ns=0):
        """Register the Enter Orders in SoupBinTCP client bytes (the card's TX stream); a list of
        :class:`Outcome`."""
        packets, _rest = ouch.split_packets(data)
        outcomes = []
        for packet in packets:
            decoded = ouch.decode_client_packet(packet)
            if isinstance(decoded, ouch.UnsequencedData):
                message = ouch.decode_inbound(decoded.payload)
                if isinstance(message, ouch.EnterOrder):
                    outcomes.append(self.order_sent(message, timestamp_ns))
        return outcomes

    def on_server_packet(self, packet, sequence=None, timestamp_ns=None):
        """Apply one SoupBinTCP server packet: a sequenced-data packet's OUCH message goes to :meth:`on_message`;
        other packets (heartbeats, login) are not reports."""
        decoded = ouch.decode_server_packet(packet)
        if not isinstance(decoded, ouch.SequencedData):
            return Outcome(False, f"not a sequenced-data packet ({type(decoded).__name__})")
        return self.on_message(ouch.decode_outbound(decoded.payload), timestamp_ns, sequence)

    def on_message(self, message, timestamp_ns=None, sequence=None):
        """Apply one OUCH 4.2 outbound message (``timestamp_ns`` defaults to the message's). ``sequence`` is its
        SoupBinTCP sequence number, if known: a number at or below the last applied is a duplicate. Returns an
        :class:`Outcome`; checks the limits (and kills) within the call when it is a fill."""
        timestamp = message.timestamp if timestamp_ns is None else timestamp_ns
        self.now_ns = max(self.now_ns, timestamp)
        if not isinstance(message, (ouch.Accepted, ouch.Executed, ouch.Canceled, ouch.Rejected)):
            return Outcome(False, f"not an execution report ({type(message).__name__}): ignored")
        try:
            if sequence is not None and sequence <= self.last_sequence:
                raise _Refused(f"duplicate: sequence {sequence} is at or below {self.last_sequence}, already "
                               f"applied")
            order, event, adopted = self._validate(message)
        except _Refused as error:
            return self._refuse(timestamp, message, str(error))
        if adopted is not None:
            self._write({"k": "order", "t": timestamp, "order": dataclasses.asdict(adopted)})
            order = self._register(adopted, timestamp)
        self._write({"k": "report", "t": timestamp, "seq": sequence, "msg": message_record(message)})
        return self._apply(message, order, event, timestamp, sequence, live=True)

    def _register(self, order, timestamp):
        record = OrderRecord(order.token, order.stock, order.side, order.shares, order.price, order.time_in_force,
                             timestamp, updated_ns=timestamp)
        self.orders[order.token] = record
        self._working[order.token] = record
        return record

    def _validate(self, message):
        """``(order, event, adopted)`` for a report, or raises _Refused; changes nothing."""
        token = message.token
        order = self.orders.get(token)
        adopted = None
        if order is None:
            if isinstance(message, ouch.Accepted) and self.adopt_unknown_accepted:
                adopted = ouch.EnterOrder(
                    token=token, side=message.side, shares=message.shares, stock=message.stock, price=message.price,
                    time_in_force=message.time_in_force, firm=message.firm, display=message.display,
                    capacity=message.capacity, intermarket_sweep=message.intermarket_sweep,
                    minimum_quantity=message.minimum_quantity, cross_type=message.cross_type, customer_type=" ")
                return None, OrderEvent.ACCEPT, adopted
            raise _Refused(f"unknown order token {token!r}")
        if isinstance(message, ouch.Accepted):
            event = OrderEvent.ACCEPT
        elif isinstance(message, ouch.Rejected):
            event = OrderEvent.REJECT
        elif isinstance(message, ouch.Executed):
            if message.match_number in self._matches:
                raise _Refused(f"duplicate fill: match number {message.match_number} already counted")
            if not 0 < message.shares:
                raise _Refused(f"fill of {message.shares} shares")
            if message.shares > order.open_shares:
                raise _Refused(f"overfill: {message.shares} shares executed, {order.open_shares} open on "
                               f"{token!r} ({order.state})")
            event = OrderEvent.FILL if message.shares == order.open_shares else OrderEvent.PARTIAL_FILL
        else:
            decrement = message.decrement_shares
            if not 0 < decrement or decrement > order.open_shares:
                raise _Refused(f"cancel of {decrement} shares, {order.open_shares} open on {token!r} "
                               f"({order.state})")
            event = OrderEvent.CANCEL if decrement == order.open_shares else OrderEvent.REDUCE
        try:
            next_state(order.state, event, token)
        except IllegalTransition as error:
            raise _Refused(str(error)) from None
        return order, event, None

    def _apply(self, message, order, event, timestamp, sequence, live):
        if sequence is not None:
            self.last_sequence = sequence
        fill = None
        if event is OrderEvent.ACCEPT:
            order.order_reference = message.order_reference
        elif event is OrderEvent.REJECT:
            order.reject_reason = message.reason
        elif event in (OrderEvent.CANCEL, OrderEvent.REDUCE):
            order.canceled += message.decrement_shares
        else:
            fill = self._fill(message, order, timestamp, sequence)
        order.apply(event, timestamp)
        if order.state.final:
            self._working.pop(order.token, None)
        if fill is not None:
            figures = self._figures()
            self.pnl_history.append(PnlSample(timestamp, self._realized, *figures))
            self._last_pnl_sample = timestamp
        if fill is not None and live:
            try:
                self._check_limits(timestamp, figures)
            finally:
                if self._on_position is not None:
                    self._on_position(fill.symbol, fill.net_shares)
        return Outcome(True, order=order, fill=fill)

    def _fill(self, message, order, timestamp, sequence):
        shares, price = message.shares, message.price
        self._matches.add(message.match_number)
        order.filled += shares
        order.filled_notional += shares * price
        position = self.position(order.stock)
        self._realized += position.apply_fill(order.sign, shares, price)
        fill = Fill(timestamp, order.token, order.stock, order.side, shares, price, message.match_number,
                    message.liquidity_flag, position.net_shares, position.realized, sequence)
        self.fills.append(fill)
        bid, ask = self._marks.get(order.stock, (0, 0))
        self.position_history.append(PositionSample(timestamp, order.stock, position.net_shares, position.cost,
                                                    position.realized, position.unrealized(bid, ask)))
        return fill

    def _refuse(self, timestamp, message, reason):
        _log.warning("refused %s: %s", type(message).__name__, reason)
        self.refused.append(Refusal(timestamp, message, reason))
        return Outcome(False, reason)

    def _write(self, record):
        if self._journal is not None:
            self._journal.append(record)

    # --- Marks, P&L, limits -----------------------------------------------------------------------------------

    def position(self, symbol):
        """The :class:`Position` of ``symbol`` (flat if it never traded)."""
        position = self.positions.get(symbol)
        if position is None:
            position = self.positions[symbol] = Position(symbol)
        return position

    def mark(self, symbol, bid, ask, timestamp_ns=0):
        """Mark ``symbol`` to its BBO (Price(4) ticks; 0 for an empty side). Records the price for VaR and, when
        the symbol has a position, checks the limits (and kills within the call). Returns the breaches found."""
        self._marks[symbol] = (bid, ask)
        self.now_ns = max(self.now_ns, timestamp_ns)
        if bid and ask:
            self.returns.record(timestamp_ns, symbol, (bid + ask) / 2)
        elif bid or ask:
            self.returns.record(timestamp_ns, symbol, bid or ask)
        position = self.positions.get(symbol)
        if position is None or not position.net_shares:
            return []
        if self._last_pnl_sample is None or timestamp_ns - self._last_pnl_sample >= self.pnl_sample_ns:
            self._sample_pnl(timestamp_ns)
        return self._check_limits(timestamp_ns)

    def marks(self):
        return dict(self._marks)

    @property
    def realized(self):
        """Realized P&L of the day, ticks x shares."""
        return self._realized

    def _figures(self):
        """``(unrealized, gross exposure, net exposure)`` at the marks, in one pass over the positions."""
        unrealized = gross = net = 0
        marks = self._marks
        for symbol, position in self.positions.items():
            shares = position.net_shares
            if shares:
                bid, ask = marks.get(symbol, (0, 0))
                price = position.mark_price(bid, ask)
                value = price * shares
                unrealized += value - position.cost if shares > 0 else position.cost + value
                gross += abs(value)
                net += value
        return unrealized, gross, net

    @property
    def unrealized(self):
        """Unrealized P&L of the open positions at the marks, ticks x shares."""
        return self._figures()[0]

    @property
    def total_pnl(self):
        return self._realized + self.unrealized

    def exposures(self):
        """Signed market value of every open position at its mark: ``{symbol: ticks x shares}``."""
        return {symbol: position.exposure(*self._marks.get(symbol, (0, 0)))
                for symbol, position in self.positions.items() if position.net_shares}

    @property
    def gross_exposure(self):
        """Sum of the absolute market values of the positions, ticks x shares."""
        return self._figures()[1]

    @property
    def net_exposure(self):
        """Sum of the signed market values of the positions, ticks x shares."""
        return self._figures()[2]

    def pnl(self, timestamp_ns=0):
        """A :class:`PnlSample` of now."""
        return PnlSample(timestamp_ns, self._realized, *self._figures())

    def _sample_pnl(self, timestamp_ns):
        self.pnl_history.append(self.pnl(timestamp_ns))
        self._last_pnl_sample = timestamp_ns

    def check_limits(self, timestamp_ns=0):
        """Check every limit now (kills on a first breach); returns the breaches found."""
        return self._check_limits(timestamp_ns)

    def _check_limits(self, timestamp, figures=None):
        limits = self.limits
        found = []
        if limits.daily_loss or limits.max_gross_exposure:
            unrealized, gross, _net = figures or self._figures()
        if limits.daily_loss:
            total = self._realized + unrealized
            if -total > limits.daily_loss:
                found.append(Breach("daily_loss", "", -total, limits.daily_loss, timestamp))
        if limits.max_gross_exposure:
            if gross > limits.max_gross_exposure:
                found.append(Breach("gross_exposure", "", gross, limits.max_gross_exposure, timestamp))
        if limits.max_position or limits.symbol_max_position:
            for symbol, position in self.positions.items():
                limit = limits.position_limit(symbol)
                if limit and abs(position.net_shares) > limit:
                    found.append(Breach("position", symbol, abs(position.net_shares), limit, timestamp))
        if found and self.mode is TrackerMode.NORMAL:
            self._trip(found, timestamp)
        return found

    def _trip(self, breaches, timestamp):
        self.mode = TrackerMode.REDUCING
        self.breaches.extend(breaches)
        why = "; ".join(breach.text for breach in breaches)
        try:
            self._call_kill(why)
        finally:
            self._write({"k": "mode", "t": timestamp, "mode": str(self.mode), "why": why})

    def _call_kill(self, why):
        _log.critical("limit breached (%s): kill switch, tracker REDUCING", why)
        if self._kill is None:
            _log.error("no kill switch given: the card keeps trading")
            return
        self.kills += 1
        self._kill()

    def rearm(self, timestamp_ns=0):
        """Back to NORMAL if no limit is breached now (a person's decision, e.g. after flattening); returns whether
        it did. The card's own kill switch is re-armed on the card."""
        if self.mode is TrackerMode.NORMAL:
            return True
        if self._check_limits(timestamp_ns):
            return False
        self.mode = TrackerMode.NORMAL
        self._write({"k": "mode", "t": timestamp_ns, "mode": str(self.mode), "why": "rearmed"})
        return True

    # --- Pre-trade checks and flattening ----------------------------------------------------------------------

    def working_shares(self, symbol, sign):
        """Open shares of the working orders of ``symbol`` on one side (+1 buys, -1 sells)."""
        return sum(order.open_shares for order in self._working.values()
                   if order.stock == symbol and order.sign == sign)

    def refusal(self, order):
        """Why ``order`` (anything with ``stock``, ``side``, ``shares``, ``price``) may not be sent now, or None.

        NORMAL: it may not take the symbol's position (counting the working orders on its side) past its limit,
        nor add past the gross exposure limit at its price. REDUCING: only an order against the position, whose
        shares with the working orders on its side do not exceed the position (so it cannot flip).
        """
        try:
            sign = side_sign(order.side)
        except ValueError as error:
            return str(error)
        if order.shares <= 0:
            return "no shares"
        net = self.positions[order.stock].net_shares if order.stock in self.positions else 0
        working = self.working_shares(order.stock, sign)
        after = net + sign * (working + order.shares)
        if self.mode is TrackerMode.REDUCING:
            if net == 0 or (net > 0) == (sign > 0):
                return f"REDUCING: {order.stock} position {net}, the order would not reduce it"
            if working + order.shares > abs(net):
                return (f"REDUCING: {order.shares} shares plus {working} working would take {order.stock} "
                        f"past flat (position {net})")
            return None
        grows = abs(after) > abs(net)
        limit = self.limits.position_limit(order.stock)
        if limit and grows and abs(after) > limit:
            return f"{order.stock} position would reach {after}, the limit is {limit}"
        if self.limits.max_gross_exposure and grows:
            added = (abs(after) - abs(net)) * order.price
            if self.gross_exposure + added > self.limits.max_gross_exposure:
                return "gross exposure would pass its limit"
        return None

    def allows(self, order):
        """Whether ``order`` may be sent now (see :meth:`refusal`)."""
        return self.refusal(order) is None

    def flatten_orders(self, *, token_prefix="FLAT", firm="", max_order_shares=None, slippage_ticks=0,
                       time_in_force=0, customer_type="N", capacity="P"):
        """The orders that flatten every position, largest exposure first: a long is sold at its bid, a short
        bought at its ask (``slippage_ticks`` further, to make sure they trade), each in orders of at most
        ``max_order_shares``, less what working orders already reduce. Tokens are ``token_prefix`` and a number
        counting on from the last call. The orders are not registered: call :meth:`order_sent` for each one
        sent."""
        exposures = self.exposures()
        orders = []
        for symbol in sorted((s for s, p in self.positions.items() if p.net_shares),
                             key=lambda s: (-abs(exposures.get(s, 0)), s)):
            position = self.positions[symbol]
            net = position.net_shares
            sign = -1 if net > 0 else 1
            left = abs(net) - self.working_shares(symbol, sign)
            bid, ask = self._marks.get(symbol, (0, 0))
            if sign < 0:
                reference = bid or ask or position.last_price
                price = max(1, reference - slippage_ticks)
            else:
                reference = ask or bid or position.last_price
                price = reference + slippage_ticks
            while left > 0:
                shares = left if not max_order_shares else min(left, max_order_shares)
                self._flatten_number += 1
                digits = 14 - len(token_prefix)
                orders.append(ouch.EnterOrder(
                    token=f"{token_prefix}{self._flatten_number:0{digits}d}", side="B" if sign > 0 else "S",
                    shares=shares, stock=symbol, price=price, time_in_force=time_in_force, firm=firm, display="Y",
                    capacity=capacity, intermarket_sweep="N", minimum_quantity=0, cross_type="N",
                    customer_type=customer_type))
                left -= shares
        return orders

    # --- Value at risk and summaries ----------------------------------------------------------------------------

    def value_at_risk(self, confidence=0.99):
        """Historical-simulation VaR of the current positions over the replay's returns (:mod:`.var`)."""
        exposures = self.exposures()
        symbols = list(dict.fromkeys(self.returns.symbols + list(exposures)))
        vector = [dollars(exposures.get(symbol, 0)) for symbol in symbols]
        return historical_var(vector, self.returns.returns(symbols), confidence, self.returns.bucket_ns)

    def summary(self, confidence=0.99):
        """Figures of the day as a dict (money in dollars, floats, for presentation)."""
        var = self.value_at_risk(confidence)
        states = {}
        for order in self.orders.values():
            states[str(order.state)] = states.get(str(order.state), 0) + 1
        return {
            "mode": str(self.mode), "orders": len(self.orders), "order_states": states, "fills": len(self.fills),
            "filled_shares": sum(fill.shares for fill in self.fills), "refused": len(self.refused),
            "realized": dollars(self._realized), "unrealized": dollars(self.unrealized),
            "total_pnl": dollars(self.total_pnl), "gross_exposure": dollars(self.gross_exposure),
            "net_exposure": dollars(self.net_exposure),
            "positions": {symbol: position.net_shares for symbol, position in sorted(self.positions.items())},
            "var": var, "breaches": [breach.text for breach in self.breaches], "kills": self.kills,
        }

    # --- Recovery -------------------------------------------------------------------------------------------------

    def _recover(self, records):
        for number, record in enumerate(records, start=1):
            kind = record["k"]
            if kind == "order":
                order = ouch.EnterOrder(**record["order"])
                if order.token in self.orders:
                    raise JournalError(f"journal record {number}: order {order.token!r} registered twice")
                self._register(order, record["t"])
            elif kind == "report":
                message = message_from_record(record["msg"])
                try:
                    if record["seq"] is not None and record["seq"] <= self.last_sequence:
                        raise _Refused(f"sequence {record['seq']} repeated")
                    order, event, adopted = self._validate(message)
                except _Refused as error:
                    raise JournalError(f"journal record {number} cannot be applied again: {error}") from None
                if adopted is not None:
                    raise JournalError(f"journal record {number}: report for unregistered token {message.token!r}")
                self._apply(message, order, event, record["t"], record["seq"], live=False)
            elif kind == "mode":
                self.mode = TrackerMode(record["mode"])
            elif kind != "journal":
                raise JournalError(f"journal record {number} of unknown kind {kind!r}")

    def _after_recovery(self):
        if self._on_position is not None:
            for symbol, position in self.positions.items():
                self._on_position(symbol, position.net_shares)
        if self.mode is TrackerMode.REDUCING:
            self._call_kill("recovered in REDUCING")
        else:
            self._check_limits(self.fills[-1].timestamp_ns if self.fills else 0)

    def close(self):
        """Close the journal."""
        if self._journal is not None:
            self._journal.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
