"""The card's pop-on-read logs, drained by the card server alone and kept for every client.

Reading word 0 of ``orders.log``, ``risk.reject`` or ``moldudp64.gap`` takes the oldest entry off the card's
queue: two readers would each see part of the log. So the server is the single consumer: it drains the three
queues (every ``drain_interval_ms``, and before answering a ``log`` request), numbers each entry (``seq``, from 1,
per log), keeps the most recent ``keep`` of each, and gives them to any role (``log`` op) and to telemetry
subscribers. Clients may not read those registers themselves.
"""

import collections

from .. import trading
from .protocol import LOG_NAMES

__all__ = ["LogBuffer", "CardLogs", "LOG_NAMES"]

DEFAULT_KEEP = 10_000


class LogBuffer:
    """The last ``keep`` entries of one log, each a dict with its ``seq``."""

    def __init__(self, keep=DEFAULT_KEEP):
        self.entries = collections.deque(maxlen=keep)
        self.next_seq = 1

    def append(self, rows):
        added = []
        for row in rows:
            entry = {"seq": self.next_seq, **trading.row_dict(row)}
            self.next_seq += 1
            self.entries.append(entry)
            added.append(entry)
        return added

    def select(self, since=None, last=None):
        """``(entries, dropped)``: the entries from ``seq`` ``since`` on (all kept ones when ``None``), at most the
        ``last`` newest of them; ``dropped`` counts entries from ``since`` on no longer kept."""
        entries = list(self.entries)
        dropped = 0
        if since is not None:
            oldest = entries[0]["seq"] if entries else self.next_seq
            dropped = max(0, min(oldest, self.next_seq) - since)
            entries = [entry for entry in entries if entry["seq"] >= since]
        if last is not None:
            entries = entries[-last:] if last else []
        return entries, dropped


class CardLogs:
    """The three logs of one card; :meth:`drain` takes what the card has queued into them."""

    def __init__(self, keep=DEFAULT_KEEP):
        self.buffers = {name: LogBuffer(keep) for name in LOG_NAMES}

    def drain(self, card, slot_map=None):
        """Drain the card's queues; ``{log name: [new entries]}`` (only logs that got some)."""
        new = {}
        for name, rows in (("orders", trading.drain_orders(card, slot_map)),
                           ("rejects", trading.drain_rejects(card, slot_map)),
                           ("gaps", trading.drain_gaps(card))):
            if rows:
                new[name] = self.buffers[name].append(rows)
        return new

    def select(self, name, since=None, last=None):
        return self.buffers[name].select(since, last)
