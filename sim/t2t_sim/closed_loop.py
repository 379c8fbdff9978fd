"""The closed loop of a replay: the card's orders go to the exchange simulator, its execution reports to the host's
position tracker, and the tracker's positions (and, on a breach, the kill switch) go back to the card.

Timing: an order leaves the card ``latency_cycles`` after the RX beat that triggered it; in ITCH time that is the
trigger's timestamp plus ``latency_cycles x 6.4 ns`` (156.25 MHz). It reaches the exchange ``wire_ns`` later
and is matched against the book rebuilt from the same feed at that moment. The replay pushes the feed through the
card a chunk of packets at a time, so the host's reaction (positions written, a kill) lands at the next chunk
boundary: at most ``packets_per_chunk`` packets after the fill, as a host polling the card would.
"""

from t2t import trading
from t2t.feed import itch
from t2t.positions import PositionLimits, PositionTracker
from t2t.trade import ouch

from .exchange import ExchangeSimulator

__all__ = ["ClosedLoop", "closed_loop_for", "limits_of", "write_loop_report", "CYCLE_NS_NUMERATOR", "CYCLE_NS_DENOMINATOR"]

#: One cycle at 156.25 MHz is 6.4 ns = 32/5 ns (kept as a fraction: integers on the trading path).
CYCLE_NS_NUMERATOR, CYCLE_NS_DENOMINATOR = 32, 5
#: Default wire plus exchange latency: 20 microseconds.
DEFAULT_WIRE_NS = 20_000


class ClosedLoop:
    """Exchange simulator + position tracker attached to a :class:`t2t_sim.replay.Replay` (its ``loop``)."""

    def __init__(self, limits=None, *, card_risk=None, wire_ns=DEFAULT_WIRE_NS, journal=None):
        self.limits = limits or PositionLimits()
        self.card_risk = card_risk
        self.wire_ns = wire_ns
        self.journal = journal
        self.exchange = ExchangeSimulator(latency_ns=wire_ns)
        self.tracker = None
        self.latency_cycles = []
        self.kills = 0
        self._card = None
        self._slot_map = None

    def start(self, card, slot_map):
        self._card, self._slot_map = card, slot_map
        self.tracker = PositionTracker(self.limits, kill=self._kill, on_position=self._push_position,
                                       journal=self.journal)

    def _kill(self):
        self.kills += 1
        trading.kill(self._card)

    def _push_position(self, symbol, net_shares):
        try:
            slot = self._slot_map.slot_of(symbol)
        except trading.TradingError:
            return
        self._card.write("risk.position_slot", slot)
        self._card.write("risk.position", net_shares & 0xFFFFFFFF)
        if self.card_risk is not None:
            risk = self.card_risk
            self._card.write("risk.position_limit", risk.position_limits.get(symbol, risk.default_position_limit))
        self._card.write("risk.position_write", 1)

    def on_chunk(self, card, slot_map, messages, orders, tx_bytes, bbo_rows):
        packets, rest = ouch.split_packets(tx_bytes)
        if rest or len(packets) != len(orders):
            raise RuntimeError(f"TX carried {len(packets)} packets for {len(orders)} logged orders")
        for order, packet in zip(orders, packets):
            sent_ns = order.timestamp_ns + order.latency_cycles * CYCLE_NS_NUMERATOR // CYCLE_NS_DENOMINATOR
            self.latency_cycles.append(order.latency_cycles)
            self.tracker.on_client_packet(packet, sent_ns)
            self.exchange.submit(packet, sent_ns)
        marks = iter(bbo_rows)
        next_mark = next(marks, None)
        for raw in messages:
            message = itch.decode(raw)
            self.exchange.on_itch(message)
            self._apply_replies()
            while next_mark is not None and next_mark[0] <= message.timestamp_ns:
                self._mark(next_mark)
                next_mark = next(marks, None)
        while next_mark is not None:
            self._mark(next_mark)
            next_mark = next(marks, None)

    def _mark(self, row):
        timestamp_ns, _, symbol, bid, _, ask, _ = row
        if symbol:
            self.tracker.mark(symbol, bid, ask, timestamp_ns)

    def _apply_replies(self):
        for reply in self.exchange.drain():
            self.tracker.on_server_packet(reply.packet, sequence=reply.sequence, timestamp_ns=reply.timestamp_ns)

    def finish(self, card):
        self.exchange.flush()
        self._apply_replies()


def limits_of(strategy):
    """The host's post-trade limits of a strategy: its ``host_limits`` (daily loss, gross exposure) and the risk
    file's per-symbol position limits."""
    risk = strategy.risk
    return PositionLimits(daily_loss=strategy.daily_loss_ticks, max_gross_exposure=strategy.max_gross_exposure_ticks,
                          max_position=risk.default_position_limit, symbol_max_position=dict(risk.position_limits))


def closed_loop_for(strategy, *, wire_ns=DEFAULT_WIRE_NS, journal=None):
    return ClosedLoop(limits_of(strategy), card_risk=strategy.risk, wire_ns=wire_ns, journal=journal)


def write_loop_report(loop, directory):
    """Write the closed loop's orders, fills, positions and P&L (CSV, PNG) into ``directory``; return
    ``(files, summary text)``."""
    from t2t.report import ReplayData, summary_text, write_report

    data = ReplayData.from_tracker(loop.tracker, loop.latency_cycles)
    return write_report(data, directory), summary_text(data)
