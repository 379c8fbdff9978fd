"""Exchange simulator: answers the card's OUCH 4.2 orders by matching them against the book of an ITCH replay.

The caller drives it in feed order: every ITCH message of the replay goes to :meth:`ExchangeSimulator.on_itch`,
and every SoupBinTCP packet the card sends (its TX stream, unsequenced-data packets carrying Enter Order and
Cancel Order messages) goes to :meth:`ExchangeSimulator.submit`, tagged with the ITCH time at which it left the
card (``sent_ns``). The order reaches the exchange ``latency_ns`` later (wire plus exchange), and is matched
against the book reconstructed from the replay as it stands then: after every message whose timestamp is at or
before the arrival time, before any later one. An order can instead be tagged with a feed position
(``after_messages=n``: matched once exactly ``n`` ITCH messages have been applied). :meth:`flush` processes the
orders still pending (at the end of a replay). Replies are OUCH 4.2 outbound messages in SoupBinTCP sequenced-data
packets, collected in order as :class:`Reply` records (:meth:`drain`), numbered with their SoupBinTCP sequence
number (1 for the first message of the session) and stamped with the exchange time of the event.

Matching
--------
An order that passes the checks is Accepted (order state 'L', an exchange order reference numbered from
``first_order_reference``), then takes liquidity from the replay's book level by level, best price first, up to
its limit price: one Executed per level touched, at the level's price, liquidity flag 'R' (removed), with a match
number of its own (numbered from ``first_match_number``, far above the feed's own match numbers). What is left of
an IOC order (time in force 0) is Canceled with reason 'I' (immediate or cancel). What is left of any other order
(DAY: time in force 99998, 99999, or a number of seconds) rests on the simulator's side book, see below.

Liquidity taken from the replay
-------------------------------
The feed's book is never changed by a fill: the replay would break. Instead the shares an order took are
remembered per price level (``taken``): a level offers its displayed shares minus the shares taken from it, so a
second order cannot take the same liquidity again. The taken shares of a level are used up by the feed's own
reductions of that level (executions, cancels, deletes, replaces reported by later ITCH messages): the simulator
assumes the orders that really traded with ours are the first ones the feed removes, so a reduction of ``d`` shares
lowers the level's taken shares by ``d`` (never below zero), and the taken shares never exceed what the level still
shows. When the feed empties the level, its taken shares are forgotten. Adds to a level do not change its taken
shares.

Resting orders (the simplified queue)
-------------------------------------
A resting order joins the back of the queue of its price level: the shares ahead of it are the level's displayed
shares (as the replay's book shows them at arrival, less any taken there). Then, as the feed reports:

* an execution (ITCH E or C) at its level first uses up the shares ahead; executed shares beyond those would have
  traded with our order, which fills by that many (at its own price, liquidity flag 'A', added);
* a cancel, delete or replace at its level can only shorten the queue: the shares ahead become at most what the
  level still shows (the simulator does not know whether the order that left was ahead of ours or behind);
* an order entering the other side at a price that crosses ours (a new ask at or below our bid) would have traded
  with ours: our order fills against that liquidity at our price (flag 'A'), and the shares it took are remembered
  as taken from the feed's level, as for an aggressive order.

Our own orders never trade with each other (an aggressive order does not see our resting ones), and a resting
order does not fill while its stock is halted. A Cancel Order (OUCH X) reduces or cancels a resting order
(Canceled reason 'U', user requested); for a token that is not resting it is ignored, as Nasdaq does. Replace
Order (OUCH U) is not supported: it is answered with nothing and counted in ``counts['ignored']``.

Rejects (Rejected, with the OUCH 4.2 reason code; checks in this order)
---------------------------------------------------------------------------
* ``'O'`` (other): the order token was used before today (see ``duplicate_tokens``);
* ``'S'`` (invalid stock): the stock is not in the stock directory (ITCH R messages, or ``symbols``);
* ``'C'`` (closed): after the end of market hours (ITCH system event M) and before the next start (Q);
* ``'H'`` (halted): the stock's trading state (ITCH H) is not T, or an operational halt (ITCH h) is on;
* ``'Z'`` (shares outside the safety threshold): zero shares, or more than ``max_shares``;
* ``'X'`` (invalid price): zero, above $200,000.0000 (the largest Price(4)), or, with ``penny_increments``, a
  price of $1.00 or more that is not a whole number of cents (Reg NMS sub-penny rule).

``reason_text(code)`` spells each code out. Nasdaq itself silently ignores an Enter Order whose token is a
duplicate; ``duplicate_tokens="ignore"`` does that too, the default ``"reject"`` answers it with a Rejected 'O' so
that the host sees it (the original order is not touched).
"""

import heapq
from dataclasses import dataclass, field
from typing import NamedTuple

from t2t.book.reference import ReferenceBook
from t2t.feed.itch import MAX_PRICE4, PRICE4_SCALE
from t2t.trade import ouch

__all__ = ["ExchangeSimulator", "Reply", "RestingOrder", "REJECT_REASONS", "CANCEL_REASONS", "reason_text",
           "IOC", "MATCH_NUMBER_BASE"]

#: Time in force of an immediate-or-cancel order.
IOC = 0
#: First match number the simulator hands out unless told otherwise: well above any feed's own match numbers.
MATCH_NUMBER_BASE = 1 << 48

#: OUCH 4.2 Rejected reason codes the simulator uses, and what they mean.
REJECT_REASONS = {
    "O": "other: duplicate order token",
    "S": "invalid stock: not in the stock directory",
    "C": "market closed",
    "H": "stock halted",
    "Z": "shares outside 1..max_shares (safety threshold)",
    "X": "invalid price (zero, above $200,000, or sub-penny at or above $1.00)",
}
#: OUCH 4.2 Canceled reason codes the simulator uses.
CANCEL_REASONS = {
    "I": "immediate or cancel: the unfilled remainder",
    "U": "user requested (Cancel Order)",
}

_BUY, _SELL = 0, 1
_ALL_LEVELS = 1 << 30
_BOOK_TYPES = frozenset("AFECXDU")
_EXECUTION_TYPES = frozenset("EC")


def reason_text(code):
    """What a Rejected or Canceled reason code of the simulator means."""
    return REJECT_REASONS.get(code) or CANCEL_REASONS.get(code) or f"unknown reason {code!r}"


class Reply(NamedTuple):
    """One outbound OUCH message: its SoupBinTCP sequence number (1-based), the exchange time of the event (ITCH
    ns since midnight), the message object and its SoupBinTCP sequenced-data packet (length field included)."""
    sequence: int
    timestamp_ns: int
    message: object
    packet: bytes


@dataclass
class RestingOrder:
    """An order of ours on the simulator's side book. ``side`` 0 buy, 1 sell; ``ahead`` the shares queued before
    it at its level."""
    token: str
    locate: int
    side: int
    price: int
    shares: int
    ahead: int
    order_reference: int


@dataclass(order=True)
class _Pending:
    due: int
    sequence: int
    order: object = field(compare=False)
    positional: bool = field(compare=False, default=False)


@dataclass
class _LocateState:
    taken: dict = field(default_factory=dict)      # (side, price) -> shares taken by our orders
    resting: list = field(default_factory=list)    # RestingOrder, in time priority


def _is_buy(side_letter):
    return side_letter == "B"


class ExchangeSimulator:
    """A Nasdaq-like matching engine for our orders only, on the book of an ITCH replay (see the module doc).

    Parameters
    ----------
    latency_ns : int
        Wire plus exchange latency: an order sent at ``sent_ns`` is matched at ``sent_ns + latency_ns``.
    symbols : mapping of str to int, optional
        Stock -> locate, for replays without a stock directory (hand-built books); R messages add to it.
    first_order_reference, first_match_number : int
        First exchange order reference (in Accepted) and first match number (in Executed).
    max_shares : int
        Largest order accepted (the account's safety threshold, reject 'Z' above it).
    penny_increments : bool
        Reject prices of $1.00 or more that are not whole cents (reject 'X').
    duplicate_tokens : str
        ``"reject"`` (Rejected 'O') or ``"ignore"`` (no reply, as Nasdaq) for an Enter Order with a used token.

    Attributes
    ----------
    book : ReferenceBook
        The replay's book (never changed by our fills).
    counts : dict
        ``orders``, ``accepted``, ``rejected``, ``executions``, ``executed_shares``, ``canceled``, ``ignored``.
    rejects : dict
        Rejected orders per reason code.
    """

    def __init__(self, *, latency_ns=0, symbols=None, first_order_reference=1, first_match_number=MATCH_NUMBER_BASE,
                 max_shares=1_000_000, penny_increments=True, duplicate_tokens="reject"):
        if latency_ns < 0:
            raise ValueError(f"latency_ns must not be negative: {latency_ns}")
        if duplicate_tokens not in ("reject", "ignore"):
            raise ValueError(f"duplicate_tokens is 'reject' or 'ignore', not {duplicate_tokens!r}")
        self.latency_ns = latency_ns
        self.max_shares = max_shares
        self.penny_increments = penny_increments
        self.duplicate_tokens = duplicate_tokens
        self.book = ReferenceBook()
        self.locates = dict(symbols or {})
        self.halted = set()          # locates halted by a trading action (state other than T)
        self.operational_halts = set()
        self.closed = False
        self.now_ns = 0              # timestamp of the last ITCH message applied
        self.messages_applied = 0
        self.next_order_reference = first_order_reference
        self.next_match_number = first_match_number
        self.counts = dict.fromkeys(("orders", "accepted", "rejected", "executions", "executed_shares", "canceled",
                                     "ignored"), 0)
        self.rejects = {}
        self.replies = []
        self._sequence = 0
        self._tokens = set()
        self._resting = {}           # token -> RestingOrder
        self._states = {}            # locate -> _LocateState
        self._timed = []             # heap of _Pending by arrival time
        self._positional = []        # heap of _Pending by feed position
        self._submitted = 0

    # --- Driving --------------------------------------------------------------------------------------------

    def submit(self, data, sent_ns=None, *, arrival_ns=None, after_messages=None):
        """Queue the orders in ``data``: SoupBinTCP client packets as the card's TX stream carries them (one or
        more whole packets). Unsequenced-data packets with an Enter Order or a Cancel Order are queued; login,
        heartbeat, logout and debug packets are ignored. Give exactly one of ``sent_ns`` (ITCH time the order left
        the card; it arrives ``latency_ns`` later), ``arrival_ns`` (ITCH time it reaches the exchange) or
        ``after_messages`` (matched once that many ITCH messages have been applied). Return the number of orders
        queued.

        Raises
        ------
        SoupBinTcpFormatError, OuchFormatError
            Bytes that are not whole, well-formed packets, or a payload that is not an inbound OUCH message.
        """
        packets, rest = ouch.split_packets(data)
        if rest:
            raise ouch.SoupBinTcpFormatError(f"{len(rest)} bytes after the last whole SoupBinTCP packet")
        orders = []
        for packet in packets:
            decoded = ouch.decode_client_packet(packet)
            if isinstance(decoded, ouch.UnsequencedData):
                orders.append(ouch.decode_inbound(decoded.payload))
        for order in orders:
            self.submit_message(order, sent_ns, arrival_ns=arrival_ns, after_messages=after_messages)
        return len(orders)

    def submit_message(self, order, sent_ns=None, *, arrival_ns=None, after_messages=None):
        """Queue one inbound OUCH message object (:class:`~t2t.trade.ouch.EnterOrder`, ``CancelOrder``, ...);
        the timing arguments are those of :meth:`submit`."""
        given = [value is not None for value in (sent_ns, arrival_ns, after_messages)]
        if sum(given) != 1:
            raise ValueError("give exactly one of sent_ns, arrival_ns and after_messages")
        self._submitted += 1
        if after_messages is not None:
            heapq.heappush(self._positional, _Pending(after_messages, self._submitted, order, positional=True))
        else:
            due = arrival_ns if arrival_ns is not None else sent_ns + self.latency_ns
            heapq.heappush(self._timed, _Pending(due, self._submitted, order))

    def on_itch(self, message):
        """Apply the next ITCH message of the replay, after matching the orders that reach the exchange before
        it (arrival strictly earlier than its timestamp, or the feed position reached)."""
        self._release(message.timestamp_ns)
        kind = message.type
        if kind == "R":
            self.locates[message.stock] = message.locate
        elif kind == "H":
            (self.halted.discard if message.trading_state == "T" else self.halted.add)(message.locate)
        elif kind == "h":
            (self.operational_halts.add if message.action == "H" else self.operational_halts.discard)(message.locate)
        elif kind == "S" and message.event_code in "QM":
            self.closed = message.event_code == "M"
        state = self._states.get(message.locate) if kind in _BOOK_TYPES else None
        if state is not None and (state.taken or state.resting):
            before = self._levels(message.locate)
            self.book.apply(message)
            after = self._levels(message.locate)
            self.now_ns = message.timestamp_ns
            self._reconcile(message.locate, state, kind, before, after)
        else:
            self.book.apply(message)
            self.now_ns = message.timestamp_ns
        self.messages_applied += 1

    def run(self, messages):
        """Apply every ITCH message (see :meth:`on_itch`)."""
        for message in messages:
            self.on_itch(message)

    def flush(self, until_ns=None):
        """Match the pending orders that arrive at or before ``until_ns`` (all of them when None), against the
        book as it is now."""
        due = []
        while self._timed and (until_ns is None or self._timed[0].due <= until_ns):
            due.append(heapq.heappop(self._timed))
        if until_ns is None:
            due += [_Pending(self.now_ns, item.sequence, item.order, True) for item in self._positional]
            self._positional = []
        self._process(due)

    def drain(self):
        """The replies since the last drain, in order (a list of :class:`Reply`)."""
        replies, self.replies = self.replies, []
        return replies

    @property
    def pending(self):
        """Orders submitted and not yet matched."""
        return len(self._timed) + len(self._positional)

    @property
    def resting(self):
        """Our resting orders: token -> :class:`RestingOrder`."""
        return dict(self._resting)

    def taken(self, locate):
        """Shares our orders took from the replay's levels of a stock and the feed has not removed yet:
        ``{(side, price): shares}`` with side 'B' (bids) or 'S' (asks)."""
        state = self._states.get(locate)
        if state is None:
            return {}
        return {("B" if side == _BUY else "S", price): shares for (side, price), shares in state.taken.items()}

    def available(self, locate):
        """The replay's depth of a stock less the shares taken from it: ``(bids, asks)``, lists of
        ``(price, shares)`` best first, levels with nothing left omitted."""
        state = self._states.get(locate)
        taken = state.taken if state is not None else {}
        bids, asks = self.book.depth(locate, _ALL_LEVELS)
        return tuple([(level.price, level.shares - taken.get((side, level.price), 0)) for level in levels
                      if level.shares > taken.get((side, level.price), 0)]
                     for side, levels in ((_BUY, bids), (_SELL, asks)))

    # --- Matching -------------------------------------------------------------------------------------------

    def _release(self, next_timestamp_ns):
        due = []
        while self._positional and self._positional[0].due <= self.messages_applied:
            item = heapq.heappop(self._positional)
            due.append(_Pending(self.now_ns, item.sequence, item.order, True))
        while self._timed and self._timed[0].due < next_timestamp_ns:
            due.append(heapq.heappop(self._timed))
        if due:
            self._process(due)

    def _process(self, due):
        for item in sorted(due, key=lambda pending: (pending.due, pending.sequence)):
            timestamp = self.now_ns if item.positional else item.due
            order = item.order
            if isinstance(order, ouch.EnterOrder):
                self._enter(order, timestamp)
            elif isinstance(order, ouch.CancelOrder):
                self._cancel_request(order, timestamp)
            else:
                self.counts["ignored"] += 1

    def _reply(self, timestamp, message):
        self._sequence += 1
        packet = ouch.encode_packet(ouch.SequencedData(ouch.encode_message(message)))
        self.replies.append(Reply(self._sequence, timestamp, message, packet))

    def _check(self, order):
        """The reject reason code of an Enter Order, or None."""
        if order.token in self._tokens:
            return "O"
        locate = self.locates.get(order.stock)
        if locate is None:
            return "S"
        if self.closed:
            return "C"
        if locate in self.halted or locate in self.operational_halts:
            return "H"
        if not 0 < order.shares <= self.max_shares:
            return "Z"
        price = order.price
        if not 0 < price <= MAX_PRICE4 or (self.penny_increments and price >= PRICE4_SCALE and price % 100):
            return "X"
        return None

    def _enter(self, order, timestamp):
        self.counts["orders"] += 1
        reason = self._check(order)
        if reason == "O" and self.duplicate_tokens == "ignore":
            self.counts["ignored"] += 1
            return
        if reason is not None:
            self.counts["rejected"] += 1
            self.rejects[reason] = self.rejects.get(reason, 0) + 1
            if reason != "O":
                self._tokens.add(order.token)
            self._reply(timestamp, ouch.Rejected(timestamp=timestamp, token=order.token, reason=reason))
            return
        self._tokens.add(order.token)
        self.counts["accepted"] += 1
        reference = self.next_order_reference
        self.next_order_reference += 1
        self._reply(timestamp, ouch.Accepted(
            timestamp=timestamp, token=order.token, side=order.side, shares=order.shares, stock=order.stock,
            price=order.price, time_in_force=order.time_in_force, firm=order.firm, display=order.display,
            order_reference=reference, capacity=order.capacity, intermarket_sweep=order.intermarket_sweep,
            minimum_quantity=order.minimum_quantity, cross_type=order.cross_type, order_state="L",
            bbo_weight=" "))
        locate = self.locates[order.stock]
        side = _BUY if _is_buy(order.side) else _SELL
        remaining = self._take(locate, side, order.price, order.shares, order.token, timestamp)
        if not remaining:
            return
        if order.time_in_force == IOC:
            self._canceled(timestamp, order.token, remaining, "I")
            return
        state = self._state(locate)
        bids, asks = self._levels(locate)
        own = bids if side == _BUY else asks
        ahead = max(0, own.get(order.price, 0) - state.taken.get((side, order.price), 0))
        resting = RestingOrder(order.token, locate, side, order.price, remaining, ahead, reference)
        state.resting.append(resting)
        self._resting[order.token] = resting

    def _take(self, locate, side, limit, shares, token, timestamp, *, fill_price=None, flag="R", levels=None):
        """Take up to ``shares`` from the other side's levels within ``limit``; one Executed per level (at the
        level's price, or at ``fill_price``). Return the shares not filled."""
        state = self._state(locate)
        other = _SELL if side == _BUY else _BUY
        if levels is None:
            bids, asks = self.book.depth(locate, _ALL_LEVELS)
            levels = [(level.price, level.shares) for level in (asks if side == _BUY else bids)]
        for price, level_shares in levels:
            if (price > limit) if side == _BUY else (price < limit):
                break
            key = (other, price)
            left = level_shares - state.taken.get(key, 0)
            if left <= 0:
                continue
            fill = min(shares, left)
            state.taken[key] = state.taken.get(key, 0) + fill
            shares -= fill
            self._executed(timestamp, token, fill, price if fill_price is None else fill_price, flag)
            if not shares:
                break
        return shares

    def _executed(self, timestamp, token, shares, price, flag):
        match = self.next_match_number
        self.next_match_number += 1
        self.counts["executions"] += 1
        self.counts["executed_shares"] += shares
        self._reply(timestamp, ouch.Executed(timestamp=timestamp, token=token, shares=shares, price=price,
                                             liquidity_flag=flag, match_number=match))

    def _canceled(self, timestamp, token, shares, reason):
        self.counts["canceled"] += 1
        self._reply(timestamp, ouch.Canceled(timestamp=timestamp, token=token, decrement_shares=shares,
                                             reason=reason))

    def _cancel_request(self, request, timestamp):
        resting = self._resting.get(request.token)
        if resting is None or request.shares >= resting.shares:
            self.counts["ignored"] += 1
            return
        decrement = resting.shares - request.shares
        resting.shares = request.shares
        if not resting.shares:
            self._retire(resting)
        self._canceled(timestamp, request.token, decrement, "U")

    def _retire(self, resting):
        del self._resting[resting.token]
        self._states[resting.locate].resting.remove(resting)

    # --- Following the feed -----------------------------------------------------------------------------------

    def _state(self, locate):
        state = self._states.get(locate)
        if state is None:
            state = self._states[locate] = _LocateState()
        return state

    def _levels(self, locate):
        """``(bids, asks)`` of the replay's book as ``{price: shares}``."""
        bids, asks = self.book.depth(locate, _ALL_LEVELS)
        return {level.price: level.shares for level in bids}, {level.price: level.shares for level in asks}

    def _reconcile(self, locate, state, kind, before, after):
        for key in list(state.taken):
            side, price = key
            was, now = before[side].get(price, 0), after[side].get(price, 0)
            taken = state.taken[key]
            if now < was:
                taken -= was - now
            taken = min(taken, now)
            if taken > 0:
                state.taken[key] = taken
            else:
                del state.taken[key]
        if not state.resting or locate in self.halted or locate in self.operational_halts:
            return
        timestamp = self.now_ns
        for resting in list(state.resting):
            was, now = before[resting.side].get(resting.price, 0), after[resting.side].get(resting.price, 0)
            fill = 0
            if kind in _EXECUTION_TYPES and now < was:
                executed = was - now
                used = min(resting.ahead, executed)
                resting.ahead -= used
                fill = min(resting.shares, executed - used)
            else:
                resting.ahead = min(resting.ahead, now)
            if fill:
                self._executed(timestamp, resting.token, fill, resting.price, "A")
                resting.shares -= fill
            other = after[_SELL if resting.side == _BUY else _BUY]
            if resting.shares and other and (min(other) <= resting.price if resting.side == _BUY
                                             else max(other) >= resting.price):
                # An order on the other side at a price crossing ours would have traded with it, at our price.
                levels = sorted(other.items(), reverse=resting.side == _SELL)
                resting.shares = self._take(locate, resting.side, resting.price, resting.shares, resting.token,
                                            timestamp, fill_price=resting.price, flag="A", levels=levels)
            if not resting.shares:
                self._retire(resting)
