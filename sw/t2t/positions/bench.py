"""Benchmarks of the position tracker, for bench/run.py: each function returns one number.

* :func:`fills_per_s`: Executed reports applied per second by a :class:`PositionTracker` with its journal (written
  and flushed per fill), limits checked after each fill and the ``on_position`` hook called.
* :func:`breach_to_kill_ms`: median time from handing the tracker the fill that breaches the daily loss limit to
  the kill callback being called (journal on).
"""

import contextlib
import logging
import pathlib
import statistics
import tempfile
import time

from ..trade import ouch
from .tracker import PositionLimits, PositionTracker

__all__ = ["fills_per_s", "breach_to_kill_ms"]

_SYMBOLS = ("AAPL", "MSFT", "AMZN", "NVDA", "TSLA", "GOOGL", "META", "INTC")


def _order(token, side, shares, stock, price):
    return ouch.EnterOrder(token=token, side=side, shares=shares, stock=stock, price=price, time_in_force=99998,
                           firm="", display="Y", capacity="P", intermarket_sweep="N", minimum_quantity=0,
                           cross_type="N", customer_type="N")


def _accepted(order, timestamp):
    return ouch.Accepted(timestamp=timestamp, token=order.token, side=order.side, shares=order.shares,
                         stock=order.stock, price=order.price, time_in_force=order.time_in_force, firm=order.firm,
                         display=order.display, order_reference=1, capacity=order.capacity,
                         intermarket_sweep=order.intermarket_sweep, minimum_quantity=0, cross_type="N",
                         order_state="L", bbo_weight=" ")


@contextlib.contextmanager
def _quiet():
    """The tracker logs every breach as critical: not once per repeat of a benchmark."""
    logger = logging.getLogger("t2t.positions")
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def fills_per_s(fills=20_000, *, journal=True, fsync=False):
    """Fills per second through :meth:`PositionTracker.on_message` (journal in a temporary folder unless
    ``journal`` is false; ``fsync`` each record if asked). Fills alternate buys and sells over 8 symbols, so
    positions open, reduce and flip."""
    with tempfile.TemporaryDirectory() as folder, _quiet():
        path = pathlib.Path(folder) / "journal.jsonl" if journal else None
        limits = PositionLimits(daily_loss=10 ** 15, max_gross_exposure=10 ** 15, max_position=10 ** 9)
        pushed = []
        tracker = PositionTracker(limits, kill=lambda: None, on_position=lambda symbol, net: pushed.append(net),
                                  journal=path, fsync=fsync)
        reports = []
        for index, symbol in enumerate(_SYMBOLS):
            price = 1_000_000 + 10_000 * index
            tracker.mark(symbol, price, price + 100, 0)
            for side in "BS":
                order = _order(f"BENCH{side}{index:08d}", side, 10 ** 9, symbol, price)
                tracker.order_sent(order, 0)
                tracker.on_message(_accepted(order, 0))
        for number in range(fills):
            index = number % len(_SYMBOLS)
            side = "B" if (number // len(_SYMBOLS)) % 3 != 2 else "S"
            price = 1_000_000 + 10_000 * index + 100 * (number % 7)
            reports.append(ouch.Executed(timestamp=number + 1, token=f"BENCH{side}{index:08d}",
                                         shares=100 + number % 5 * 100, price=price, liquidity_flag="R",
                                         match_number=number + 1))
        on_message = tracker.on_message
        started = time.perf_counter()
        for report in reports:
            on_message(report)
        elapsed = time.perf_counter() - started
        applied = len(tracker.fills)
        tracker.close()
    if applied != fills:
        raise RuntimeError(f"benchmark applied {applied} of {fills} fills")
    return fills / elapsed


def breach_to_kill_ms(repeats=200):
    """Median milliseconds from calling :meth:`PositionTracker.on_message` with the fill that breaches the daily
    loss limit to the kill callback running (journal on, over ``repeats`` fresh trackers)."""
    samples = []
    with tempfile.TemporaryDirectory() as folder, _quiet():
        for repeat in range(repeats):
            killed = []
            tracker = PositionTracker(PositionLimits.in_dollars(daily_loss=1_000),
                                      kill=lambda: killed.append(time.perf_counter_ns()),
                                      on_position=lambda symbol, net: None,
                                      journal=pathlib.Path(folder) / f"journal{repeat}.jsonl")
            tracker.mark("AAPL", 1_000_000, 1_000_100, 0)
            order = _order("BREACH00000001", "B", 1_000, "AAPL", 1_020_000)
            tracker.order_sent(order, 0)
            tracker.on_message(_accepted(order, 0))
            # Bought 1000 at $102.00, marked at the $100.00 bid: -$2,000, past the $1,000 limit.
            fill = ouch.Executed(timestamp=1, token=order.token, shares=1_000, price=1_020_000, liquidity_flag="R",
                                 match_number=1)
            started = time.perf_counter_ns()
            tracker.on_message(fill)
            tracker.close()
            if len(killed) != 1:
                raise RuntimeError("the breaching fill did not call the kill switch")
            samples.append((killed[0] - started) / 1e6)
    return statistics.median(samples)
