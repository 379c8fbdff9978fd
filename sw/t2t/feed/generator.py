"""Seeded generator of synthetic ITCH 5.0 trading sessions with a consistent order lifecycle.

A session is the system-event skeleton of a Nasdaq day (start of messages, stock directory, trading actions, start
of system and market hours ... end of market and system hours, end of messages) around a stream of order events on
a few symbols. The generator keeps the book it describes, so that every message is valid against everything before
it:

* an order reference is used only while its order is live, and every new reference is fresh;
* shares are positive on adds and replaces; executions and cancels never exceed what is left, and an order whose
  shares reach zero leaves the book (a full execution removes it without a delete, as on Nasdaq);
* prices are Price(4) integers on the penny grid, positive, and a symbol's book is never crossed (a bid below
  every ask) because new prices are clamped against the opposite side's best;
* executions (E, C) hit the oldest order at the best price of one side, as price-time priority would;
* one symbol is halted (H state H) and later resumed (state T); it has no executions or trades meanwhile;
* timestamps never decrease and start at 09:30:00;
* the book reaches a steady state, as a real one does over a day: once ``resting_per_symbol`` orders per symbol
  rest, an add is drawn as a delete instead, so a long session does not pile up orders without bound.

The mix is close to that of a real day: about 40 % adds (A and a few F), 34 % deletes, and executions, partial
cancels, replaces, non-displayed trades (P) and rare cross trades (Q) for the rest. The same seed and arguments
always give the same session.
"""

import random

from .binaryfile import write_binaryfile
from .itch import (
    PRICE4_SCALE, AddOrder, AddOrderMpid, CrossTrade, OrderCancel, OrderDelete, OrderExecuted,
    OrderExecutedWithPrice, OrderReplace, StockDirectory, StockTradingAction, SystemEvent, Trade, encode,
)

__all__ = [
    "DEFAULT_SYMBOLS", "MARKET_OPEN_NS", "PENNY", "generate_session", "generate_session_bytes",
    "write_session", "minimum_messages",
]

DEFAULT_SYMBOLS = ("AAPL", "MSFT", "AMZN", "NVDA", "TSLA", "GOOGL", "META", "INTC")
#: 09:30:00 in nanoseconds since midnight.
MARKET_OPEN_NS = (9 * 3600 + 30 * 60) * 1_000_000_000
#: One cent in Price(4) units: the tick of the price grid.
PENNY = PRICE4_SCALE // 100

_OPENING_EVENTS = ("S", "Q")       # start of system hours, start of market hours (after the directory)
_CLOSING_EVENTS = ("M", "E", "C")  # end of market hours, end of system hours, end of messages
_MPIDS = ("GSCO", "MSCO", "UBSS", "CDRG", "VIRT")
# Cumulative percentages of the order-event mix, checked in this order.
_ADD_A, _ADD_F, _DELETE, _EXECUTE, _EXECUTE_PRICED, _CANCEL, _REPLACE, _TRADE = 36, 40, 74, 82, 83, 90, 98, 99.9
_HALT_REASON = "T1"                # news pending


def minimum_messages(symbol_count):
    """Fewest messages a session over ``symbol_count`` symbols can have (its system-event skeleton)."""
    return 1 + 2 * symbol_count + len(_OPENING_EVENTS) + len(_CLOSING_EVENTS)


def generate_session(seed=1, symbols=DEFAULT_SYMBOLS, messages=100_000, *, start_ns=MARKET_OPEN_NS,
                     mean_gap_ns=50_000, resting_per_symbol=250):
    """Yield the messages of a synthetic session (ITCH message objects, see :mod:`t2t.feed.itch`).

    Parameters
    ----------
    seed : int
        Seed of the session's own random generator; equal arguments give equal sessions.
    symbols : sequence of str
        Stock symbols (1 to 8 characters, distinct); symbol ``k`` (from 0) gets stock locate ``k + 1``.
    messages : int
        Exact number of messages to yield, skeleton included (at least :func:`minimum_messages`).
    start_ns : int
        Timestamp of the first message, nanoseconds since midnight.
    mean_gap_ns : int
        Mean time between consecutive messages.
    resting_per_symbol : int
        Mean resting orders per symbol the book settles at (the cap is this times the number of symbols); with
        the default mix about 150,000 messages into a session over eight symbols.

    Raises
    ------
    ValueError
        Bad symbols, or ``messages`` too small for the skeleton.
    """
    return iter(_SessionGenerator(seed, symbols, messages, start_ns, mean_gap_ns, resting_per_symbol))


def generate_session_bytes(seed=1, symbols=DEFAULT_SYMBOLS, messages=100_000, **options):
    """As :func:`generate_session`, yielding each message encoded to its wire bytes."""
    return map(encode, generate_session(seed, symbols, messages, **options))


def write_session(target, seed=1, symbols=DEFAULT_SYMBOLS, messages=100_000, *, compress=None, **options):
    """Write a generated session to a BinaryFILE (gzip when ``target`` ends in ``.gz``); return the message count.

    See :func:`generate_session` for the session arguments and
    :class:`t2t.feed.binaryfile.BinaryFileWriter` for ``target`` and ``compress``.
    """
    return write_binaryfile(target, generate_session_bytes(seed, symbols, messages, **options), compress=compress)


class _Order:
    __slots__ = ("ref", "symbol", "side", "price", "shares", "live_index")

    def __init__(self, ref, symbol, side, price, shares):
        self.ref = ref
        self.symbol = symbol
        self.side = side
        self.price = price
        self.shares = shares
        self.live_index = -1


class _BookSide:
    """Resting orders of one side of one symbol, FIFO per price level, with the best price cached."""

    __slots__ = ("is_bid", "levels", "best")

    def __init__(self, is_bid):
        self.is_bid = is_bid
        self.levels = {}
        self.best = None

    def add(self, order):
        level = self.levels.get(order.price)
        if level is None:
            self.levels[order.price] = [order]
            if self.best is None or (order.price > self.best if self.is_bid else order.price < self.best):
                self.best = order.price
        else:
            level.append(order)

    def remove(self, order):
        level = self.levels[order.price]
        level.remove(order)
        if not level:
            del self.levels[order.price]
            if order.price == self.best:
                # Rare (only when the best level empties), so a scan of the levels is cheap overall.
                self.best = (max(self.levels) if self.is_bid else min(self.levels)) if self.levels else None

    def oldest_at_best(self):
        return self.levels[self.best][0]


class _Symbol:
    __slots__ = ("stock", "locate", "mid", "bids", "asks", "halted")

    def __init__(self, stock, locate, mid):
        self.stock = stock
        self.locate = locate
        self.mid = mid
        self.bids = _BookSide(is_bid=True)
        self.asks = _BookSide(is_bid=False)
        self.halted = False

    def side(self, side):
        return self.bids if side == "B" else self.asks

    def limit_price(self, side, price):
        """``price`` moved, if needed, so that it does not cross the opposite side; ``None`` if no positive
        price can rest on ``side``."""
        if side == "B":
            if self.asks.best is not None:
                price = min(price, self.asks.best - PENNY)
            return price if price >= PENNY else None
        if self.bids.best is not None:
            price = max(price, self.bids.best + PENNY)
        return max(price, PENNY)


class _SessionGenerator:
    def __init__(self, seed, symbols, messages, start_ns, mean_gap_ns, resting_per_symbol=250):
        symbols = tuple(symbols)
        if resting_per_symbol < 1:
            raise ValueError(f"resting_per_symbol must be at least 1: {resting_per_symbol}")
        if not symbols:
            raise ValueError("a session needs at least one symbol")
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"symbols must be distinct: {symbols}")
        for stock in symbols:
            if not (isinstance(stock, str) and 1 <= len(stock) <= 8 and stock.isascii() and " " not in stock):
                raise ValueError(f"a symbol is 1 to 8 ASCII characters without spaces: {stock!r}")
        if len(symbols) > 0xFFFF:
            raise ValueError("at most 65535 symbols fit the stock locate code")
        if messages < minimum_messages(len(symbols)):
            raise ValueError(f"{messages} messages cannot hold the {minimum_messages(len(symbols))}-message "
                             f"skeleton of a session over {len(symbols)} symbols")
        self.rng = random.Random(seed)
        self.messages = messages
        self.now = start_ns
        self.mean_gap_ns = mean_gap_ns
        self.index = 0
        self.next_ref = 1
        self.next_match = 1
        self.live = []
        self.max_resting = resting_per_symbol * len(symbols)
        # Start prices between $10 and $500, on the penny grid.
        self.symbols = [_Symbol(stock, locate, PENNY * self.rng.randrange(1_000, 50_000))
                        for locate, stock in enumerate(symbols, start=1)]

    def _header(self, locate=0):
        """Stock locate, tracking number and timestamp of the next message."""
        timestamp = self.now
        self.now += int(self.rng.random() * 2 * self.mean_gap_ns)
        tracking = self.index & 0xFFFF
        self.index += 1
        return locate, tracking, timestamp

    def __iter__(self):
        yield SystemEvent(*self._header(), event_code="O")
        for symbol in self.symbols:
            yield StockDirectory(
                *self._header(symbol.locate), stock=symbol.stock, market_category="Q", financial_status="N",
                round_lot_size=100, round_lots_only="N", issue_classification="C", issue_subtype="Z",
                authenticity="P", short_sale_threshold="N", ipo_flag=" ", luld_reference_price_tier="1",
                etp_flag="N", etp_leverage_factor=0, inverse_indicator="N")
        for symbol in self.symbols:
            yield StockTradingAction(*self._header(symbol.locate), stock=symbol.stock, trading_state="T",
                                     reserved=" ", reason="")
        for code in _OPENING_EVENTS:
            yield SystemEvent(*self._header(), event_code=code)
        yield from self._order_flow(self.messages - minimum_messages(len(self.symbols)))
        for code in _CLOSING_EVENTS:
            yield SystemEvent(*self._header(), event_code=code)

    def _order_flow(self, count):
        rng = self.rng
        halted = self.symbols[rng.randrange(len(self.symbols))]
        # Halt a third of the way in and resume half way, when the flow is long enough to show both.
        halt_at, resume_at = (count // 3, count // 2) if count >= 10 else (-1, -1)
        for position in range(count):
            if position == halt_at:
                halted.halted = True
                yield StockTradingAction(*self._header(halted.locate), stock=halted.stock, trading_state="H",
                                         reserved=" ", reason=_HALT_REASON)
                continue
            if position == resume_at:
                halted.halted = False
                yield StockTradingAction(*self._header(halted.locate), stock=halted.stock, trading_state="T",
                                         reserved=" ", reason="")
                continue
            draw = rng.random() * 100
            message = None
            if draw < _ADD_F and len(self.live) >= self.max_resting:
                message = self._delete()
            elif draw >= _ADD_F:
                if draw < _DELETE:
                    message = self._delete()
                elif draw < _EXECUTE:
                    message = self._execute(with_price=False)
                elif draw < _EXECUTE_PRICED:
                    message = self._execute(with_price=True)
                elif draw < _CANCEL:
                    message = self._cancel()
                elif draw < _REPLACE:
                    message = self._replace()
                elif draw < _TRADE:
                    message = self._trade()
                else:
                    message = self._cross()
            # An event that found nothing to act on (empty book, halted symbol) becomes an add.
            if message is None:
                message = self._add(with_mpid=_ADD_A <= draw < _ADD_F)
            yield message

    # Order-book bookkeeping -------------------------------------------------------------------------------------

    def _rest(self, order):
        order.symbol.side(order.side).add(order)
        order.live_index = len(self.live)
        self.live.append(order)

    def _retire(self, order):
        order.symbol.side(order.side).remove(order)
        last = self.live.pop()
        if last is not order:
            self.live[order.live_index] = last
            last.live_index = order.live_index

    def _random_live_order(self):
        return self.live[int(self.rng.random() * len(self.live))] if self.live else None

    def _tradable_symbol(self):
        symbol = self.symbols[int(self.rng.random() * len(self.symbols))]
        return None if symbol.halted else symbol

    def _new_ref(self):
        ref = self.next_ref
        self.next_ref += 1
        return ref

    def _new_match(self):
        match = self.next_match
        self.next_match += 1
        return match

    def _random_shares(self):
        draw = self.rng.random()
        if draw < 0.1:
            return 1 + int(draw * 990)                        # odd lot, 1..99
        return 100 * (1 + int(self.rng.random() ** 2 * 20))  # round lots, mostly small

    # Events -----------------------------------------------------------------------------------------------------

    def _add(self, with_mpid):
        rng = self.rng
        symbol = self.symbols[int(rng.random() * len(self.symbols))]
        # The reference price random-walks one tick at a time, staying at $1 or more.
        step = rng.random()
        if step < 0.15:
            symbol.mid = max(100 * PENNY, symbol.mid - PENNY)
        elif step < 0.30:
            symbol.mid += PENNY
        depth = int(rng.random() ** 3 * 20) * PENNY
        side = "B" if rng.random() < 0.5 else "S"
        price = symbol.limit_price(side, symbol.mid - depth if side == "B" else symbol.mid + PENNY + depth)
        if price is None:
            side = "S"
            price = symbol.limit_price(side, symbol.mid + PENNY + depth)
        order = _Order(self._new_ref(), symbol, side, price, self._random_shares())
        self._rest(order)
        if with_mpid:
            return AddOrderMpid(*self._header(symbol.locate), order_ref=order.ref, side=side, shares=order.shares,
                                stock=symbol.stock, price=price, attribution=_MPIDS[order.ref % len(_MPIDS)])
        return AddOrder(*self._header(symbol.locate), order_ref=order.ref, side=side, shares=order.shares,
                        stock=symbol.stock, price=price)

    def _delete(self):
        order = self._random_live_order()
        return None if order is None else self._delete_order(order)

    def _delete_order(self, order):
        self._retire(order)
        return OrderDelete(*self._header(order.symbol.locate), order_ref=order.ref)

    def _execute(self, with_price):
        rng = self.rng
        symbol = self._tradable_symbol()
        if symbol is None:
            return None
        first, second = (symbol.bids, symbol.asks) if rng.random() < 0.5 else (symbol.asks, symbol.bids)
        book_side = first if first.best is not None else second
        if book_side.best is None:
            return None
        order = book_side.oldest_at_best()
        executed = order.shares if rng.random() < 0.5 else 1 + int(rng.random() * order.shares)
        order.shares -= executed
        if order.shares == 0:
            self._retire(order)
        header = self._header(symbol.locate)
        if with_price:
            # A price apart from the order's, so that consumers are seen to keep the order at its own level.
            price = max(PENNY, order.price + (PENNY if rng.random() < 0.5 else -PENNY))
            return OrderExecutedWithPrice(*header, order_ref=order.ref, executed_shares=executed,
                                          match_number=self._new_match(),
                                          printable="Y" if rng.random() < 0.9 else "N", price=price)
        return OrderExecuted(*header, order_ref=order.ref, executed_shares=executed, match_number=self._new_match())

    def _cancel(self):
        order = self._random_live_order()
        if order is None:
            return None
        if order.shares < 2:
            # A partial cancel must leave shares; cancelling a 1-share order is a delete.
            return self._delete_order(order)
        cancelled = 1 + int(self.rng.random() * (order.shares - 1))
        order.shares -= cancelled
        return OrderCancel(*self._header(order.symbol.locate), order_ref=order.ref, cancelled_shares=cancelled)

    def _replace(self):
        rng = self.rng
        order = self._random_live_order()
        if order is None:
            return None
        self._retire(order)
        symbol = order.symbol
        moved = order.price + PENNY * (int(rng.random() * 5) - 2)
        # The original rested without crossing, so its side has room for a positive price: never None here.
        price = symbol.limit_price(order.side, max(PENNY, moved))
        replacement = _Order(self._new_ref(), symbol, order.side, price, self._random_shares())
        self._rest(replacement)
        return OrderReplace(*self._header(symbol.locate), order_ref=order.ref, new_order_ref=replacement.ref,
                            shares=replacement.shares, price=price)

    def _trade(self):
        rng = self.rng
        symbol = self._tradable_symbol()
        if symbol is None:
            return None
        side = "B" if rng.random() < 0.5 else "S"
        # Non-displayed orders trade near the market; the reference price stands in for it. Nasdaq sends
        # order reference 0 in P messages.
        return Trade(*self._header(symbol.locate), order_ref=0, side=side, shares=self._random_shares(),
                     stock=symbol.stock, price=symbol.mid, match_number=self._new_match())

    def _cross(self):
        symbol = self._tradable_symbol()
        if symbol is None:
            return None
        return CrossTrade(*self._header(symbol.locate), shares=self._random_shares() * 10, stock=symbol.stock,
                          cross_price=symbol.mid, match_number=self._new_match(), cross_type="I")
