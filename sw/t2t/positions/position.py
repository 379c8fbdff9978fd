"""One symbol's position, in integers: net shares, cost of the open shares, realized P&L.

Money is in Price(4) ticks x shares (10,000 per dollar); :func:`dollars` converts for presentation only.

Average cost method: ``cost`` is what the open shares cost (a long) or brought in (a short), as a non-negative
integer, so the average price is ``cost / abs(net_shares)``. A trade in the direction of the position (or from
flat) adds ``price x shares`` to the cost. A trade against it closes ``c = min(shares, abs(net_shares))`` shares,
releasing ``cost x c // abs(net_shares)`` of the cost (all of it when the position closes) and realizing the
difference with the trade's value, signed by the position; shares beyond ``c`` flip the position through zero and
open the new one at the trade's price. The floor division keeps every figure an integer; the remainder stays in
the cost of the shares still open, so realized + unrealized is exact at every step.

Unrealized P&L marks the open shares at the price they could be closed at: a long at the bid, a short at the ask
(the other side when that one is empty, the last trade price when both are).
"""

from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Position", "TICKS_PER_DOLLAR", "dollars", "ticks"]

#: Price(4): one dollar in ticks.
TICKS_PER_DOLLAR = 10_000


def dollars(ticks_x_shares):
    """Ticks x shares (or ticks) as dollars, a float for presentation."""
    return ticks_x_shares / TICKS_PER_DOLLAR


def ticks(amount_dollars):
    """Dollars (a number or a decimal string) as integer ticks, rounded to the nearest tick."""
    from decimal import ROUND_HALF_EVEN, Decimal
    return int((Decimal(str(amount_dollars)) * TICKS_PER_DOLLAR).to_integral_value(ROUND_HALF_EVEN))


@dataclass
class Position:
    symbol: str
    net_shares: int = 0
    cost: int = 0
    realized: int = 0
    bought: int = 0
    sold: int = 0
    fills: int = 0
    last_price: int = 0

    @property
    def average_price(self):
        """Average price of the open shares in ticks (an exact :class:`~fractions.Fraction`), None when flat."""
        return Fraction(self.cost, abs(self.net_shares)) if self.net_shares else None

    def apply_fill(self, sign, shares, price):
        """Apply a fill (``sign`` +1 bought, -1 sold) of ``shares`` at ``price`` ticks; return the realized P&L
        it made (ticks x shares)."""
        if shares <= 0 or price < 0:
            raise ValueError(f"a fill has positive shares and a price, not {shares} @ {price}")
        self.fills += 1
        self.last_price = price
        if sign > 0:
            self.bought += shares
        else:
            self.sold += shares
        net = self.net_shares
        if net == 0 or (net > 0) == (sign > 0):
            self.net_shares = net + sign * shares
            self.cost += price * shares
            return 0
        held = abs(net)
        closed = min(shares, held)
        released = self.cost if closed == held else self.cost * closed // held
        made = (price * closed - released) * (1 if net > 0 else -1)
        self.realized += made
        self.cost -= released
        self.net_shares = net + sign * closed
        opened = shares - closed
        if opened:
            self.net_shares += sign * opened
            self.cost = price * opened
        return made

    def mark_price(self, bid, ask):
        """The price the open shares are marked at (see the module doc); 0 when flat or nothing to mark with."""
        if self.net_shares > 0:
            return bid or ask or self.last_price
        if self.net_shares < 0:
            return ask or bid or self.last_price
        return 0

    def unrealized(self, bid, ask):
        """Unrealized P&L of the open shares marked to ``bid``/``ask`` (ticks x shares)."""
        if not self.net_shares:
            return 0
        value = self.mark_price(bid, ask) * abs(self.net_shares)
        return value - self.cost if self.net_shares > 0 else self.cost - value

    def exposure(self, bid, ask):
        """Signed market value of the open shares at the mark (ticks x shares)."""
        return self.net_shares * self.mark_price(bid, ask)
