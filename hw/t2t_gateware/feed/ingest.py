"""The market-data ingest: A/B UDP payloads in, filtered ITCH events out."""

from amaranth.hdl import Module, Mux
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import ItchEvent, PayloadBeat
from . import moldudp64, splitter, symbol_filter
from .itch import MESSAGE_TYPES
from .itch_decoder import ItchDecoder
from .moldudp64 import MoldUdp64Arbiter, SequenceGap
from .splitter import MessageSplitter
from .symbol_filter import SymbolFilter

__all__ = ["COUNTERS", "STATUS", "FeedIngest"]

#: Every wrapping counter port of :class:`FeedIngest`, each named as in the block that counts it.
COUNTERS = moldudp64.COUNTERS + splitter.COUNTERS + symbol_filter.COUNTERS + ("event_overflow",)

#: Status ports of :class:`FeedIngest` (from the arbiter) and their widths.
STATUS = {"current_session": 80, "session_known": 1, "synced": 1, "next_expected": 64, "session_ended": 1}


class FeedIngest(wiring.Component):
    """MoldUDP64 A/B arbitration, ITCH 5.0 splitting and decoding, and symbol filtering, in one block.

    ``MoldUdp64Arbiter`` -> ``MessageSplitter`` -> ``ItchDecoder`` -> ``SymbolFilter`` -> event FIFO. See each
    block for its policy on bad input; this block only exposes their settings, status and counters.

    Parameters
    ----------
    body_depth, header_depth, max_payload_bytes, stall_timeout, gap_depth, gap_timeout : int
        See :class:`MoldUdp64Arbiter`.
    event_depth : int
        Entries of the output event FIFO.

    Attributes
    ----------
    i_feed_a, i_feed_b : In(stream.Signature(PayloadBeat, always_ready=True))
        UDP payloads of feed A and feed B.
    o_event : Out(stream.Signature(ItchEvent))
        Events of subscribed stocks and system events, in sequence order.
    o_gap : Out(stream.Signature(SequenceGap))
        Sequence gaps for the host to request again.
    session, session_valid : In(80), In(1)
        Fixed session (see :class:`MoldUdp64Arbiter`).
    sub_addr, sub_data, sub_we : In(16), In(1), In(1)
        Subscription table write port (see :class:`SymbolFilter`).
    current_session, session_known, synced, next_expected, session_ended : Out
        Arbiter status.
    message_counts : Out(32).array(23)
        Messages per ITCH type, in :data:`~.itch.MESSAGE_TYPES` order.
    accepted_packets, duplicates, gaps, gap_fifo_overflow, bad_session, heartbeats, end_of_session : Out(32)
        The arbiter's wrapping counters, like all the following.
    bad_fcs_packets, overflow, runt_packets, cut_packets : Out(32)
        The arbiter's (and its packet buffers').
    truncated_messages, length_errors, unknown_types, count_errors : Out(32)
        The splitter's.
    unsubscribed_events : Out(32)
        The filter's.
    event_overflow : Out(32)
        Events lost because ``o_event`` was held back (not ``ready``) long enough to fill the event FIFO.

    Notes
    -----
    Latency from the payload beat carrying a message's last byte to its event on ``o_event``: 7 cycles (arbiter
    4, splitter 2, decoder 1; the filter reads its table two cycles ahead, and an event bypasses the empty event
    FIFO), also with both feeds at full rate; more only while the arbiter catches up after a wait
    (a copy taken after a bad one, a gap wait). Throughput: one payload beat per cycle per feed, at most one event per cycle
    out. The pipeline never stalls: while ``o_event.ready`` is low, events queue in the event FIFO; an event
    that finds it full is dropped and counted in ``event_overflow``.
    """

    def __init__(self, *, body_depth=512, header_depth=16, max_payload_bytes=1472, stall_timeout=64,
                 gap_depth=16, gap_timeout=256, event_depth=16):
        self._arbiter_options = dict(body_depth=body_depth, header_depth=header_depth,
                                     max_payload_bytes=max_payload_bytes, stall_timeout=stall_timeout,
                                     gap_depth=gap_depth, gap_timeout=gap_timeout)
        self._event_depth = event_depth
        super().__init__({
            "i_feed_a": In(stream.Signature(PayloadBeat, always_ready=True)),
            "i_feed_b": In(stream.Signature(PayloadBeat, always_ready=True)),
            "o_event": Out(stream.Signature(ItchEvent)),
            "o_gap": Out(stream.Signature(SequenceGap)),
            "session": In(80),
            "session_valid": In(1),
            "sub_addr": In(16),
            "sub_data": In(1),
            "sub_we": In(1),
            **{name: Out(width) for name, width in STATUS.items()},
            "message_counts": Out(32).array(len(MESSAGE_TYPES)),
            **{name: Out(32) for name in COUNTERS},
        })

    def elaborate(self, platform):
        m = Module()

        m.submodules.arbiter = arbiter = MoldUdp64Arbiter(**self._arbiter_options)
        m.submodules.splitter = message_splitter = MessageSplitter()
        m.submodules.decoder = decoder = ItchDecoder()
        m.submodules.filter = event_filter = SymbolFilter()
        m.submodules.events = events = fifo.SyncFIFO(width=ItchEvent.as_shape().size, depth=self._event_depth)

        wiring.connect(m, wiring.flipped(self.i_feed_a), arbiter.i_feed_a)
        wiring.connect(m, wiring.flipped(self.i_feed_b), arbiter.i_feed_b)
        wiring.connect(m, wiring.flipped(self.o_gap), arbiter.o_gap)
        wiring.connect(m, arbiter.o_blocks, message_splitter.i_blocks)
        wiring.connect(m, message_splitter.o_message, decoder.i_message)
        wiring.connect(m, decoder.o_event, event_filter.i_event)

        m.d.comb += [
            arbiter.session.eq(self.session),
            arbiter.session_valid.eq(self.session_valid),
            event_filter.sub_addr.eq(self.sub_addr),
            event_filter.sub_data.eq(self.sub_data),
            event_filter.sub_we.eq(self.sub_we),
            event_filter.lookahead_locate.eq(message_splitter.next_locate),
        ]

        # An event goes straight out when nothing waits in the FIFO and the consumer takes it; otherwise it
        # queues behind the waiting ones, so order holds.
        passing = event_filter.o_event
        bypass = ~events.r_rdy & self.o_event.ready
        m.d.comb += [
            events.w_data.eq(passing.payload),
            events.w_en.eq(passing.valid & ~bypass),
            self.o_event.valid.eq(events.r_rdy | passing.valid),
            self.o_event.payload.eq(Mux(events.r_rdy, events.r_data, passing.payload)),
            events.r_en.eq(self.o_event.ready),
        ]
        m.d.comb += [getattr(self, name).eq(getattr(arbiter, name)) for name in STATUS]
        m.d.comb += [self.message_counts[index].eq(decoder.message_counts[index])
                     for index in range(len(MESSAGE_TYPES))]
        for block, names in ((arbiter, moldudp64.COUNTERS), (message_splitter, splitter.COUNTERS),
                             (event_filter, symbol_filter.COUNTERS)):
            m.d.comb += [getattr(self, name).eq(getattr(block, name)) for name in names]
        with m.If(event_filter.o_event.valid & ~events.w_rdy):
            m.d.sync += self.event_overflow.eq(self.event_overflow + 1)

        return m
