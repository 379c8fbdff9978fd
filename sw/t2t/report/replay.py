"""The report of a replay: CSVs of orders, fills, positions and P&L, PNG plots, and a text summary.

:class:`ReplayData` holds what a replay produced (usually taken from a
:class:`~t2t.positions.PositionTracker` with :meth:`ReplayData.from_tracker`, plus the tick-to-trade latency
samples of the card's order log, in cycles). :func:`write_report` writes

* ``orders.csv``, ``fills.csv``, ``positions.csv``, ``pnl.csv``: prices and money as exact decimal dollars
  converted from the integer ticks (``189.5000``), times as ns since midnight and as a time of day;
* ``pnl.png`` (P&L over time), ``positions.png`` (net shares per symbol over time), ``latency.png`` (histogram of
  the tick-to-trade latency in cycles), drawn with matplotlib's Agg canvas (no pyplot, no display, no global
  backend change). matplotlib is the optional extra ``tick2trade[report]``, imported only when plots are drawn;
  without it :class:`ReportDependencyError` says how to install it. ``plots=False`` writes the CSVs only.

:func:`summary_text` returns the short summary (orders, fills, P&L, VaR, positions, latency, limits).
"""

import csv
import pathlib
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from ..positions.position import TICKS_PER_DOLLAR

__all__ = ["ReplayData", "ReportDependencyError", "write_report", "write_csvs", "write_plots", "summary_text",
           "CARD_CLOCK_HZ", "CSV_FILES", "PLOT_FILES"]

#: The card's pipeline clock (10GbE, 64-bit beats).
CARD_CLOCK_HZ = 156.25e6
CSV_FILES = ("orders.csv", "fills.csv", "positions.csv", "pnl.csv")
PLOT_FILES = ("pnl.png", "positions.png", "latency.png")


class ReportDependencyError(ImportError):
    """matplotlib, needed for the plots, is not installed."""


@dataclass
class ReplayData:
    """What a replay produced: :class:`~t2t.positions.OrderRecord` orders, :class:`~t2t.positions.Fill` fills,
    :class:`~t2t.positions.PositionSample` and :class:`~t2t.positions.PnlSample` histories, latency samples in
    cycles of ``clock_hz``, the VaR and the tracker's mode, breaches (text) and refused reports (count)."""
    orders: list = field(default_factory=list)
    fills: list = field(default_factory=list)
    positions: list = field(default_factory=list)
    pnl: list = field(default_factory=list)
    latency_cycles: list = field(default_factory=list)
    var: object = None
    clock_hz: float = CARD_CLOCK_HZ
    mode: str = ""
    breaches: list = field(default_factory=list)
    refused: int = 0

    @classmethod
    def from_tracker(cls, tracker, latency_cycles=(), *, clock_hz=CARD_CLOCK_HZ, confidence=0.99):
        """Everything a :class:`~t2t.positions.PositionTracker` recorded, with the latency samples; the P&L
        history ends with the tracker's P&L at its latest marks."""
        pnl = list(tracker.pnl_history)
        now = tracker.pnl(max(tracker.now_ns, pnl[-1].timestamp_ns if pnl else 0))
        if tracker.fills and (not pnl or pnl[-1] != now):
            pnl.append(now)
        return cls(list(tracker.orders.values()), list(tracker.fills), list(tracker.position_history), pnl,
                   list(latency_cycles), tracker.value_at_risk(confidence), clock_hz, str(tracker.mode),
                   [breach.text for breach in tracker.breaches], len(tracker.refused))


# --- Presentation of integers ----------------------------------------------------------------------------------


def _money(ticks_x_shares):
    """Exact dollars of an integer amount of ticks (x shares): 4 decimals, no float."""
    sign = "-" if ticks_x_shares < 0 else ""
    whole, part = divmod(abs(ticks_x_shares), TICKS_PER_DOLLAR)
    return f"{sign}{whole}.{part:04d}"


def _ratio_price(cost, shares):
    """An average price (``cost`` ticks x shares over ``shares``) in dollars, to 6 decimals."""
    if not shares:
        return ""
    return str((Decimal(cost) / Decimal(abs(shares)) / TICKS_PER_DOLLAR).quantize(Decimal("0.000001")))


def _time_of_day(timestamp_ns):
    seconds, ns = divmod(int(timestamp_ns), 1_000_000_000)
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{ns:09d}"


def _dollars(ticks_x_shares):
    return ticks_x_shares / TICKS_PER_DOLLAR


# --- CSV --------------------------------------------------------------------------------------------------------


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_csvs(data, directory):
    """Write the four CSVs into ``directory`` (created if needed); return ``{file name: path}``."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    written["orders.csv"] = _write_csv(
        directory / "orders.csv",
        ("sent_ns", "sent_time", "token", "symbol", "side", "shares", "price", "time_in_force", "state", "filled",
         "canceled", "average_fill_price", "order_reference", "reject_reason"),
        ((order.sent_ns, _time_of_day(order.sent_ns), order.token, order.stock, order.side, order.shares,
          _money(order.price), order.time_in_force, str(order.state), order.filled, order.canceled,
          _ratio_price(order.filled_notional, order.filled),
          "" if order.order_reference is None else order.order_reference, order.reject_reason)
         for order in data.orders))
    written["fills.csv"] = _write_csv(
        directory / "fills.csv",
        ("timestamp_ns", "time", "token", "symbol", "side", "shares", "price", "match_number", "liquidity_flag",
         "net_shares", "symbol_realized"),
        ((fill.timestamp_ns, _time_of_day(fill.timestamp_ns), fill.token, fill.symbol, fill.side, fill.shares,
          _money(fill.price), fill.match_number, fill.liquidity_flag, fill.net_shares, _money(fill.realized))
         for fill in data.fills))
    written["positions.csv"] = _write_csv(
        directory / "positions.csv",
        ("timestamp_ns", "time", "symbol", "net_shares", "average_price", "realized", "unrealized"),
        ((sample.timestamp_ns, _time_of_day(sample.timestamp_ns), sample.symbol, sample.net_shares,
          _ratio_price(sample.cost, sample.net_shares), _money(sample.realized), _money(sample.unrealized))
         for sample in data.positions))
    written["pnl.csv"] = _write_csv(
        directory / "pnl.csv",
        ("timestamp_ns", "time", "realized", "unrealized", "total", "gross_exposure", "net_exposure"),
        ((sample.timestamp_ns, _time_of_day(sample.timestamp_ns), _money(sample.realized),
          _money(sample.unrealized), _money(sample.realized + sample.unrealized), _money(sample.gross_exposure),
          _money(sample.net_exposure))
         for sample in data.pnl))
    return written


# --- Plots ------------------------------------------------------------------------------------------------------


def _matplotlib():
    """``(Figure, FigureCanvasAgg)``, imported on first use."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ReportDependencyError(
            "the replay report's plots need matplotlib, the optional extra of the host package: "
            "pip install 'tick2trade[report]' (or write the CSVs only, without plots)") from error
    return Figure, FigureCanvasAgg


def _figure(title, xlabel, ylabel):
    figure_class, canvas_class = _matplotlib()
    figure = figure_class(figsize=(9, 4.5), dpi=100, layout="constrained")
    canvas_class(figure)
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    return figure, axes


def _origin(data):
    """The first timestamp of the P&L and position histories: time 0 of both plots."""
    stamps = [sample.timestamp_ns for sample in data.pnl[:1] + data.positions[:1]]
    return min(stamps) if stamps else 0


def _seconds(timestamps, origin):
    """ITCH timestamps as seconds since ``origin``, and the axis label."""
    stamps = np.asarray(timestamps, dtype=np.int64)
    return (stamps - origin) / 1e9, f"seconds after {_time_of_day(origin)[:12]}"


def _empty(axes, text):
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="grey")


def _plot_pnl(data, path):
    seconds, label = _seconds([sample.timestamp_ns for sample in data.pnl], _origin(data))
    figure, axes = _figure("P&L over time", label, "dollars")
    if len(seconds):
        realized = np.array([_dollars(sample.realized) for sample in data.pnl])
        total = realized + np.array([_dollars(sample.unrealized) for sample in data.pnl])
        axes.step(seconds, total, where="post", label="total (realized + unrealized)")
        axes.step(seconds, realized, where="post", label="realized", linestyle="--")
        axes.axhline(0, color="black", linewidth=0.8)
        axes.legend(loc="best")
    else:
        _empty(axes, "no P&L samples")
    figure.savefig(path, format="png")


def _plot_positions(data, path):
    seconds, label = _seconds([sample.timestamp_ns for sample in data.positions], _origin(data))
    figure, axes = _figure("Position per symbol", label, "net shares")
    if len(seconds):
        symbols = sorted({sample.symbol for sample in data.positions})
        for symbol in symbols:
            points = [(second, sample.net_shares) for second, sample in zip(seconds, data.positions)
                      if sample.symbol == symbol]
            xs, ys = zip(*points)
            axes.step((0.0, *xs), (0, *ys), where="post", label=symbol)
        axes.axhline(0, color="black", linewidth=0.8)
        axes.legend(loc="best", ncols=min(4, len(symbols)))
    else:
        _empty(axes, "no fills")
    figure.savefig(path, format="png")


def _plot_latency(data, path):
    samples = np.asarray(data.latency_cycles, dtype=np.int64)
    figure, axes = _figure("Tick-to-trade latency", f"cycles ({data.clock_hz / 1e6:g} MHz)", "orders")
    if samples.size:
        low, high = int(samples.min()), int(samples.max())
        bins = np.arange(low, high + 2) - 0.5 if high - low <= 200 else 100
        axes.hist(samples, bins=bins)
        median = float(np.median(samples))
        axes.axvline(median, color="black", linestyle="--",
                     label=f"median {median:g} cycles = {median / data.clock_hz * 1e9:.1f} ns")
        axes.legend(loc="best")
    else:
        _empty(axes, "no latency samples")
    figure.savefig(path, format="png")


def write_plots(data, directory):
    """Draw the three PNGs into ``directory``; return ``{file name: path}``. Raises
    :class:`ReportDependencyError` without matplotlib."""
    _matplotlib()
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, draw in (("pnl.png", _plot_pnl), ("positions.png", _plot_positions), ("latency.png", _plot_latency)):
        draw(data, directory / name)
        written[name] = directory / name
    return written


def write_report(data, directory, *, plots=True):
    """Write the CSVs, and the plots unless ``plots`` is false, into ``directory``; return ``{file name: path}``.
    The plots are checked for first, so a missing matplotlib fails before anything is written."""
    if plots:
        _matplotlib()
    written = write_csvs(data, directory)
    if plots:
        written.update(write_plots(data, directory))
    return written


# --- Summary ----------------------------------------------------------------------------------------------------


def _latency_line(data):
    samples = np.asarray(data.latency_cycles, dtype=np.int64)
    if not samples.size:
        return "tick-to-trade latency: no samples"
    median, p99 = np.percentile(samples, [50, 99], method="lower")
    to_ns = 1e9 / data.clock_hz
    return (f"tick-to-trade latency: {samples.size} orders, min {samples.min()} / median {median} / p99 {p99} / "
            f"max {samples.max()} cycles (median {median * to_ns:.1f} ns at {data.clock_hz / 1e6:g} MHz)")


def summary_text(data):
    """A short text summary of a replay."""
    states = {}
    for order in data.orders:
        states[str(order.state)] = states.get(str(order.state), 0) + 1
    state_text = ", ".join(f"{state} {count}" for state, count in sorted(states.items()))
    shares = sum(fill.shares for fill in data.fills)
    bought = sum(fill.shares * fill.price for fill in data.fills if fill.side == "B")
    sold = sum(fill.shares * fill.price for fill in data.fills if fill.side != "B")
    lines = [f"orders: {len(data.orders)}" + (f" ({state_text})" if state_text else ""),
             f"fills: {len(data.fills)} ({shares} shares; bought ${_dollars(bought):,.2f}, sold "
             f"${_dollars(sold):,.2f}); refused reports: {data.refused}"]
    if data.pnl:
        last = data.pnl[-1]
        worst = min(sample.realized + sample.unrealized for sample in data.pnl)
        lines.append(f"P&L: realized ${_dollars(last.realized):,.2f}, unrealized ${_dollars(last.unrealized):,.2f}, "
                     f"total ${_dollars(last.realized + last.unrealized):,.2f} (worst ${_dollars(worst):,.2f}); "
                     f"gross exposure ${_dollars(last.gross_exposure):,.2f}, net "
                     f"${_dollars(last.net_exposure):,.2f}")
    else:
        lines.append("P&L: no fills")
    if data.var is not None:
        lines.append(data.var.text())
    final = {}
    for sample in data.positions:
        final[sample.symbol] = sample.net_shares
    held = ", ".join(f"{symbol} {shares:+d}" for symbol, shares in sorted(final.items()) if shares)
    lines.append(f"positions: {held or 'flat'}")
    lines.append(_latency_line(data))
    if data.mode:
        lines.append(f"mode: {data.mode}" + (f" (breaches: {'; '.join(data.breaches)})" if data.breaches else ""))
    return "\n".join(lines) + "\n"
