"""Value at risk of the current positions by historical simulation over the replay's own returns (numpy).

:class:`ReturnHistory` samples each symbol's mid price on a grid of ITCH time: a bucket of ``bucket_ns`` that saw
at least one price closes with the last price of every symbol (carried forward from earlier buckets). The returns
are those between consecutive closed buckets. Each historical return vector is applied to today's exposures
(market value of each position, in dollars): ``pnl_t = sum_i exposure_i x return_t,i``. The VaR at confidence
``c`` is the loss at the ``1 - c`` quantile of those scenario P&Ls (the lower sample, so not an interpolation
between two scenarios), over a horizon of one bucket; the expected shortfall is the mean loss of the scenarios at
or below it. Floats are fine here: these are statistics, nothing trades on them.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["ReturnHistory", "VarResult", "historical_var"]


@dataclass(frozen=True)
class VarResult:
    """VaR and expected shortfall in dollars (positive numbers are losses), over ``horizon_ns`` of ITCH time, from
    ``scenarios`` historical returns. Zero when there is no position or fewer than two prices."""
    confidence: float
    horizon_ns: int
    var: float
    expected_shortfall: float
    scenarios: int

    def text(self):
        seconds = self.horizon_ns / 1e9
        return (f"VaR {self.confidence:.0%} over {seconds:g} s: ${self.var:,.2f} "
                f"(expected shortfall ${self.expected_shortfall:,.2f}; {self.scenarios} scenarios)")


def historical_var(exposures, returns, confidence=0.99, horizon_ns=0):
    """VaR of positions with ``exposures`` (dollars, one per column of ``returns``) over the historical
    ``returns`` (rows are scenarios). Returns a :class:`VarResult`."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence is in (0, 1), not {confidence}")
    exposures = np.asarray(exposures, dtype=float).ravel()
    returns = np.asarray(returns, dtype=float)
    if not exposures.any() or not returns.size:
        return VarResult(confidence, horizon_ns, 0.0, 0.0, int(returns.shape[0]) if returns.ndim else 0)
    returns = returns.reshape(-1, exposures.size)
    pnl = np.nan_to_num(returns) @ exposures
    cutoff = float(np.quantile(pnl, 1 - confidence, method="lower"))
    tail = pnl[pnl <= cutoff]
    return VarResult(confidence, horizon_ns, max(0.0, -cutoff), max(0.0, -float(tail.mean())), int(pnl.size))


class ReturnHistory:
    """Prices of the replay on a grid of ``bucket_ns`` of ITCH time (see the module doc)."""

    def __init__(self, bucket_ns=10_000_000):
        if bucket_ns <= 0:
            raise ValueError(f"bucket_ns must be positive: {bucket_ns}")
        self.bucket_ns = bucket_ns
        self.symbols = []
        self._column = {}
        self._last = []
        self._rows = []
        self._bucket = None

    def record(self, timestamp_ns, symbol, price):
        """A price (ticks; a float mid is fine) of ``symbol`` at ``timestamp_ns``; non-positive prices are
        ignored."""
        if price <= 0:
            return
        bucket = timestamp_ns // self.bucket_ns
        if self._bucket is not None and bucket > self._bucket:
            self._rows.append(list(self._last))
        self._bucket = bucket
        column = self._column.get(symbol)
        if column is None:
            column = self._column[symbol] = len(self.symbols)
            self.symbols.append(symbol)
            self._last.append(float("nan"))
        self._last[column] = float(price)

    def prices(self, symbols=None):
        """Closed buckets' prices (and the open one's), one column per symbol (NaN before its first price)."""
        symbols = self.symbols if symbols is None else list(symbols)
        rows = self._rows + ([list(self._last)] if self._bucket is not None else [])
        table = np.full((len(rows), len(symbols)), np.nan)
        for row_index, row in enumerate(rows):
            for column_index, symbol in enumerate(symbols):
                column = self._column.get(symbol)
                if column is not None and column < len(row):
                    table[row_index, column_index] = row[column]
        return table

    def returns(self, symbols=None):
        """Simple returns between consecutive buckets; 0 where a price is missing."""
        prices = self.prices(symbols)
        if prices.shape[0] < 2:
            return np.zeros((0, prices.shape[1]))
        with np.errstate(invalid="ignore", divide="ignore"):
            returns = prices[1:] / prices[:-1] - 1.0
        return np.nan_to_num(returns, nan=0.0, posinf=0.0, neginf=0.0)
