"""Reference order book: every ITCH 5.0 order message applied to full-depth price levels, in pure Python.

It is the model the gateware :class:`~t2t_gateware.book.BookBuilder` is checked against, and it is itself checked
against ``itch-book`` (an independent C++ book) on generated sessions. Prices are Price(4) integers and quantities
share counts; nothing here is a float.

Book semantics (Nasdaq TotalView-ITCH 5.0): A/F add; E and C execute (a C carries the print's price, but the book
reduces the order at its own price); X cancels part of an order; D deletes it; U replaces it: the original leaves
the book and the new reference enters with the original's side and stock, at the new price and shares. An order
whose shares reach zero leaves the book. A reference that is not on the book (a session joined mid-day) is counted
in :attr:`ReferenceBook.unknown_refs` and the message is ignored; an execution or cancel of more shares than the
order holds removes the order; an add whose reference is live replaces that order.
"""

from typing import NamedTuple

from ..feed.binaryfile import iter_messages

__all__ = ["BboChange", "Level", "ReferenceBook", "bbo_changes_of_binaryfile"]

_BUY, _SELL = 0, 1


class BboChange(NamedTuple):
    """The best bid and offer of one stock after a message that changed it; an empty side is ``0, 0, 0``."""
    timestamp_ns: int
    locate: int
    bid_px: int
    bid_qty: int
    bid_orders: int
    ask_px: int
    ask_qty: int
    ask_orders: int


class Level(NamedTuple):
    """One price level: Price(4) price, total shares and number of orders resting there."""
    price: int
    shares: int
    orders: int


class _Side:
    """Price levels of one side of one stock: ``price -> [shares, orders]`` and the best price, cached."""

    __slots__ = ("is_bid", "levels", "best")

    def __init__(self, is_bid):
        self.is_bid = is_bid
        self.levels = {}
        self.best = None

    def add(self, price, shares):
        level = self.levels.get(price)
        if level is None:
            self.levels[price] = [shares, 1]
            if self.best is None or (price > self.best if self.is_bid else price < self.best):
                self.best = price
        else:
            level[0] += shares
            level[1] += 1

    def reduce(self, price, shares, removes_order):
        level = self.levels[price]
        level[0] -= shares
        level[1] -= removes_order
        if level[1] == 0:
            del self.levels[price]
            if price == self.best:
                # Only when the best level empties; a scan of the remaining levels surfaces the next best.
                self.best = (max(self.levels) if self.is_bid else min(self.levels)) if self.levels else None

    def top(self):
        if self.best is None:
            return 0, 0, 0
        shares, orders = self.levels[self.best]
        return self.best, shares, orders

    def depth(self, count):
        prices = sorted(self.levels, reverse=self.is_bid)[:count]
        return [Level(price, *self.levels[price]) for price in prices]


class _Stock:
    __slots__ = ("sides",)

    def __init__(self):
        self.sides = (_Side(is_bid=True), _Side(is_bid=False))

    def bbo(self):
        return self.sides[_BUY].top() + self.sides[_SELL].top()


class ReferenceBook:
    """Full-depth order books of the subscribed stocks, fed one ITCH message at a time.

    Parameters
    ----------
    locates : iterable of int or None
        Stock locates to keep a book for; ``None`` subscribes every stock. Messages about other stocks are
        ignored (and not counted).

    Attributes
    ----------
    counts : dict
        Applied messages of subscribed stocks by kind: ``adds``, ``executes``, ``cancels``, ``deletes``,
        ``replaces``.
    unknown_refs : int
        Order messages (E, C, X, D, U) of subscribed stocks whose reference was not on the book; ignored.
    duplicate_refs : int
        Adds whose reference was already on the book; the older order leaves the book first.
    """

    def __init__(self, locates=None):
        self._subscribed = None if locates is None else frozenset(locates)
        self._stocks = {}
        self._orders = {}          # order ref -> [locate, side, price, shares]
        self.counts = dict.fromkeys(("adds", "executes", "cancels", "deletes", "replaces"), 0)
        self.unknown_refs = 0
        self.duplicate_refs = 0
        self._handlers = {"A": self._add, "F": self._add, "E": self._execute, "C": self._execute,
                          "X": self._cancel, "D": self._delete, "U": self._replace}

    def subscribed(self, locate):
        return self._subscribed is None or locate in self._subscribed

    def apply(self, message):
        """Apply one message (a :mod:`t2t.feed.itch` object); return the :class:`BboChange` it caused, or ``None``.

        A change is returned only when the stock's best bid or best ask (price, shares or order count) differs
        from what it was before the message.
        """
        handler = self._handlers.get(message.type)
        if handler is None or not self.subscribed(message.locate):
            return None
        stock = self._stock(message.locate)
        before = stock.bbo()
        handler(message, stock)
        after = stock.bbo()
        if after == before:
            return None
        return BboChange(message.timestamp_ns, message.locate, *after)

    def run(self, messages):
        """Apply every message; return the list of :class:`BboChange` in feed order."""
        apply = self.apply
        return [change for change in map(apply, messages) if change is not None]

    def bbo(self, locate):
        """``(bid_px, bid_qty, bid_orders, ask_px, ask_qty, ask_orders)`` of a stock; empty sides are 0."""
        stock = self._stocks.get(locate)
        return stock.bbo() if stock is not None else (0, 0, 0, 0, 0, 0)

    def depth(self, locate, levels=10):
        """The best ``levels`` levels of each side of a stock: ``(bids, asks)``, lists of :class:`Level`,
        best first."""
        stock = self._stocks.get(locate)
        if stock is None:
            return [], []
        return stock.sides[_BUY].depth(levels), stock.sides[_SELL].depth(levels)

    @property
    def live_orders(self):
        return len(self._orders)

    def _stock(self, locate):
        stock = self._stocks.get(locate)
        if stock is None:
            stock = self._stocks[locate] = _Stock()
        return stock

    def _add(self, message, stock):
        side = _SELL if message.side == "S" else _BUY
        old = self._orders.get(message.order_ref)
        if old is not None:
            # Nasdaq never reuses a live reference; if a feed does, the newer order wins (as in itch-book).
            self.duplicate_refs += 1
            self._reduce(message.order_ref, old[3], self._stocks[old[0]])
        self._orders[message.order_ref] = [message.locate, side, message.price, message.shares]
        stock.sides[side].add(message.price, message.shares)
        self.counts["adds"] += 1

    def _live(self, ref):
        order = self._orders.get(ref)
        if order is None:
            self.unknown_refs += 1
        return order

    def _reduce(self, ref, shares, stock):
        order = self._live(ref)
        if order is None:
            return
        shares = min(shares, order[3])
        order[3] -= shares
        removes = order[3] == 0
        stock.sides[order[1]].reduce(order[2], shares, removes)
        if removes:
            del self._orders[ref]

    def _execute(self, message, stock):
        self.counts["executes"] += 1
        self._reduce(message.order_ref, message.executed_shares, stock)

    def _cancel(self, message, stock):
        self.counts["cancels"] += 1
        self._reduce(message.order_ref, message.cancelled_shares, stock)

    def _delete(self, message, stock):
        self.counts["deletes"] += 1
        order = self._live(message.order_ref)
        if order is not None:
            self._reduce(message.order_ref, order[3], stock)

    def _replace(self, message, stock):
        self.counts["replaces"] += 1
        order = self._live(message.order_ref)
        if order is None:
            return
        locate, side = order[0], order[1]
        self._reduce(message.order_ref, order[3], stock)
        self._orders[message.new_order_ref] = [locate, side, message.price, message.shares]
        stock.sides[side].add(message.price, message.shares)


def bbo_changes_of_binaryfile(path, locates=None):
    """Run a :class:`ReferenceBook` over a BinaryFILE (plain or gzip); return ``(book, changes)``."""
    book = ReferenceBook(locates)
    return book, book.run(iter_messages(path))
