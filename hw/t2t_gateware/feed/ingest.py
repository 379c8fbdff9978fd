"""The market-data ingest: A/B UDP payloads in, filtered ITCH events out."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import ItchEvent, PayloadBeat
from . import moldudp64, splitter, symbol_filter
from .itch import MESSAGE_TYPES
from .moldudp64 import MoldUdp64Arbiter, SequenceGap
from .splitter import MessageSplitter
from .symbol_filter import SymbolFilter

__all__ = ["COUNTERS", "STATUS", "LATENCY", "FeedIngest"]

#: Every wrapping counter port of :class:`FeedIngest`, each named as in the block that counts it.
COUNTERS = moldudp64.COUNTERS + splitter.COUNTERS + symbol_filter.COUNTERS + ("event_overflow",)

#: Status ports of :class:`FeedIngest` (from the arbiter) and their widths.
STATUS = {"current_session": 80, "session_known": 1, "synced": 1, "next_expected": 64, "session_ended": 1}

#: Cycles from the payload beat carrying a message's last byte to its event on ``o_event`` (common case, see
#: :class:`FeedIngest`).
LATENCY = moldudp64.LATENCY + splitter.LATENCY


class FeedIngest(wiring.Component):
    """MoldUDP64 A/B arbitration, ITCH 5.0 splitting and decoding, and symbol filtering, in one block.

    ``MoldUdp64Arbiter`` (with a packet buffer per feed) -> one ``MessageSplitter`` per feed (framing, checking
    and decoding, reading the ``SymbolFilter`` table) -> event FIFO. Each feed's splitter frames that feed's
    packets as they arrive, while the arbiter decides on them; the splitter of the accepted packet delivers its
    events (see :class:`MoldUdp64Arbiter` for when a packet is replayed from its buffer instead). See each block
    for its policy on bad input; this block only exposes their settings, status and counters.

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
    Latency from the payload beat carrying a message's last byte to its event on ``o_event``: 2 cycles (the
    splitter's input register and its event register; the arbiter adds nothing to a packet framed as it
    arrives, the filter's table bit was read while the message arrived, and an event bypasses the empty event
    FIFO). With a :class:`~.net.UdpReceiver` in front, 3 or 4 cycles from the MAC beat carrying the message's
    last byte (the receiver completes a payload beat with the next MAC beat's lanes 0..1, and outputs it a cycle
    later). That is the common case: the winning copy of each packet, on either feed, whether the other copy is
    a duplicate, arrives at the same time or later, with both feeds at full rate (100 % duty, back-to-back
    packets of the shortest messages). Higher when a packet is replayed from its buffer: 5 cycles at best (the
    buffer's 3-cycle read), plus the time the packet waited, less 2 cycles per later packet of that feed (their
    two header beats are not replayed) until the feed is caught up and frames packets as they arrive again. A
    packet is replayed when it must wait for the other feed's copy of missing messages (a gap), when it is the
    copy taken after a bad one, for an overlap, when the winning copy of a packet arrives while another accepted
    packet is still in flight, or when its decision comes after its first message has ended (a packet whose
    first message is an S or W message, 12 bytes, leaves no cycle to spare). Throughput: one payload beat per
    cycle per feed, at most one event per cycle out. The pipeline never stalls: while ``o_event.ready`` is low,
    events queue in the event FIFO; an event that finds it full is dropped and counted in ``event_overflow``.
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
        splitters = []
        for name in "ab":
            splitters.append(MessageSplitter())
            m.submodules[f"splitter_{name}"] = splitters[-1]
        m.submodules.filter = event_filter = SymbolFilter(lookups=2)
        m.submodules.events = events = fifo.SyncFIFO(width=ItchEvent.as_shape().size, depth=self._event_depth)

        wiring.connect(m, wiring.flipped(self.i_feed_a), arbiter.i_feed_a)
        wiring.connect(m, wiring.flipped(self.i_feed_b), arbiter.i_feed_b)
        wiring.connect(m, wiring.flipped(self.o_gap), arbiter.o_gap)
        for feed, (message_splitter, beats) in enumerate(zip(splitters, (arbiter.o_beats_a, arbiter.o_beats_b))):
            wiring.connect(m, beats, message_splitter.i_beats)
            m.d.comb += [
                message_splitter.skip.eq(arbiter.skip),
                message_splitter.accept.eq(arbiter.accept[feed]),
                message_splitter.abort.eq(arbiter.abort[feed]),
                arbiter.live_ok[feed].eq(message_splitter.live_ok),
                event_filter.lookup_locate[feed].eq(message_splitter.lookup_locate),
                message_splitter.lookup_subscribed.eq(event_filter.subscribed[feed]),
            ]

        m.d.comb += [
            arbiter.session.eq(self.session),
            arbiter.session_valid.eq(self.session_valid),
            event_filter.sub_addr.eq(self.sub_addr),
            event_filter.sub_data.eq(self.sub_data),
            event_filter.sub_we.eq(self.sub_we),
        ]

        # The two splitters' event registers: only the splitter of the packet in flight delivers, and the next
        # packet is decided after the last beat of the one before has passed its splitter, so they take turns.
        # An event goes straight out when nothing waits in the FIFO and the consumer takes it; otherwise it
        # queues behind the waiting ones, so order holds.
        event_a, event_b = splitters[0].o_event, splitters[1].o_event
        passing_valid = event_a.valid | event_b.valid
        passing = Mux(event_b.valid, event_b.payload, event_a.payload)
        bypass = ~events.r_rdy & self.o_event.ready
        m.d.comb += [
            events.w_data.eq(passing),
            events.w_en.eq(passing_valid & ~bypass),
            self.o_event.valid.eq(events.r_rdy | passing_valid),
            self.o_event.payload.eq(Mux(events.r_rdy, events.r_data, passing)),
            events.r_en.eq(self.o_event.ready),
        ]
        m.d.comb += [getattr(self, name).eq(getattr(arbiter, name)) for name in STATUS]
        m.d.comb += [getattr(self, name).eq(getattr(arbiter, name)) for name in moldudp64.COUNTERS]
        with m.If(passing_valid & ~bypass & ~events.w_rdy):
            m.d.sync += self.event_overflow.eq(self.event_overflow + 1)

        # Counters of both splitters, from registered pulses.
        pulses = {name: Signal(2, name=f"{name}_pulses") for name in splitter.COUNTERS + symbol_filter.COUNTERS}
        for index, name in enumerate(splitter.COUNTERS):
            m.d.sync += pulses[name].eq(Cat(message_splitter.errors[index] for message_splitter in splitters))
        m.d.sync += pulses["unsubscribed_events"].eq(Cat(s.unsubscribed for s in splitters))
        for name, pulse in pulses.items():
            counter = getattr(self, name)
            m.d.sync += counter.eq(counter + pulse[0] + pulse[1])
        for index, letter in enumerate(MESSAGE_TYPES):
            hits = Signal(2, name=f"count_{letter}_{index}_pulses")
            m.d.sync += [
                hits.eq(Cat(s.counted & (s.counted_type == ord(letter)) for s in splitters)),
                self.message_counts[index].eq(self.message_counts[index] + hits[0] + hits[1]),
            ]

        return m
