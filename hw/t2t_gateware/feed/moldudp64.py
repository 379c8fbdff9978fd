"""MoldUDP64 A/B arbitration: the first good copy of each sequence number wins, gaps are reported to the host."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import BEAT_BYTES, STAMP_BITS, PayloadBeat
from .packet_buffer import MOLD_BODY_LANE, BufferedBeat, MoldUdp64Header, MoldUdp64PacketBuffer

__all__ = ["END_OF_SESSION_COUNT", "COUNTERS", "MessageBlockBeat", "SequenceGap", "MoldUdp64Arbiter"]

#: MoldUDP64 message count that marks the end of a session.
END_OF_SESSION_COUNT = 0xFFFF
# Lanes of the first body beat that hold message blocks (the lower ones are the end of the header).
_BODY_LANES_MASK = ((1 << BEAT_BYTES) - 1) & ~((1 << MOLD_BODY_LANE) - 1)


class MessageBlockBeat(data.Struct):
    """One beat of the message blocks of an accepted MoldUDP64 packet (the 20-byte header stripped).

    ``keep`` marks the valid lanes, a contiguous run: the ``first`` beat holds blocks from lane 4 up (the header
    ended at lane 3), only the ``last`` beat may end below lane 7 (an empty ``last`` beat has ``keep`` 0).
    ``error`` on the ``last`` beat: bad FCS, or the packet was cut short by the buffer. ``stamp`` is the arrival
    stamp of the beat's highest valid byte. ``sequence`` is the sequence number of the packet's first message,
    ``count`` its message count, ``skip`` how many leading messages were already delivered by the other feed
    (to be framed but not delivered again); all three hold on every beat of the packet.
    """
    data: 64
    keep: 8
    first: 1
    last: 1
    error: 1
    stamp: STAMP_BITS
    sequence: 64
    count: 16
    skip: 16


class SequenceGap(data.Struct):
    """Messages that no feed delivered: ``count`` of them from sequence number ``first`` (``count`` saturates)."""
    first: 64
    count: 32


#: The wrapping event counters (``Out(32)`` ports) of :class:`MoldUdp64Arbiter`.
COUNTERS = ("accepted_packets", "duplicates", "gaps", "gap_fifo_overflow", "bad_session", "heartbeats",
            "end_of_session", "bad_fcs_packets", "overflow", "runt_packets", "cut_packets")


class MoldUdp64Arbiter(wiring.Component):
    """Merges the A and B copies of a MoldUDP64 feed into one stream of message blocks, in sequence order.

    Each feed has a :class:`MoldUdp64PacketBuffer`; the arbiter decides on a packet when its header reaches
    the head of its buffer, and then either streams its message blocks out or discards it. Decisions compare the
    packet with ``next_expected``, the sequence number after the last accepted message:

    * another session than the current one: dropped, ``bad_session``;
    * all messages already seen: dropped, ``duplicates``;
    * the first messages already seen, later ones new (overlap): accepted with ``skip`` set to the number of seen
      messages (the splitter frames them but delivers only the new ones);
    * starting at ``next_expected``: accepted;
    * starting beyond ``next_expected``: waits up to ``gap_timeout`` cycles for the other feed to deliver the
      missing messages, then is accepted, and (first missing, count) is pushed to ``o_gap`` and counted in
      ``gaps`` once the packet ended with a good FCS;
    * heartbeat (count 0) and end of session (count 0xFFFF, ``end_of_session``, sets ``session_ended``): nothing
      is forwarded; if the packet was exactly the 20-byte header with a good FCS and its sequence number is beyond
      ``next_expected``, that is a gap too and ``next_expected`` moves to it.

    When both heads can be accepted, the one that starts at or below ``next_expected`` wins, else the lower
    sequence number, else A. The session is set by the host (``session_valid``; a new value restarts
    sequencing) or learned from the first accepted packet; ``next_expected`` is learned from the first accepted
    packet (no gap is reported for it).

    Bad FCS policy (cut-through): an accepted packet streams out while it still arrives, so its messages have
    left before its FCS is known. If it ends bad (``bad_fcs_packets``) or cut short by the buffer,
    ``next_expected`` (and a session learned from it) is rolled back and no gap is reported, so the other feed's
    copy is accepted in full afterwards: downstream sees those sequence numbers again. No decision is taken while
    an accepted packet is in flight, so its copy on the other feed waits for that outcome and is never dropped as
    a duplicate of a bad packet.

    A copy of missing messages arriving after the gap was declared is a duplicate (the host recovers them through
    the re-request server); ``gap_timeout`` should cover the skew between the feeds.

    Parameters
    ----------
    body_depth, header_depth, max_payload_bytes, stall_timeout : int
        Per-feed buffer settings, see :class:`MoldUdp64PacketBuffer`.
    gap_depth : int
        Entries of the gap FIFO; a gap found while it is full is counted in ``gaps`` and ``gap_fifo_overflow``
        but not queued.
    gap_timeout : int
        Idle cycles a packet beyond ``next_expected`` waits for the other feed before the gap is declared
        (0: at once). The feeds' buffers absorb the wait.

    Attributes
    ----------
    i_feed_a, i_feed_b : In(stream.Signature(PayloadBeat, always_ready=True))
        UDP payloads of feed A and feed B.
    o_blocks : Out(stream.Signature(MessageBlockBeat, always_ready=True))
        Message blocks of accepted packets, never held back.
    o_gap : Out(stream.Signature(SequenceGap))
        Gaps for the host to request again.
    session : In(80)
        Session to take when ``session_valid``: the 10 bytes as a big-endian number (first character in the most
        significant byte).
    session_valid : In(1)
        Take ``session`` instead of learning it; a change of ``session`` restarts sequencing.
    current_session : Out(80)
        The session in force (same coding as ``session``), meaningful when ``session_known``.
    session_known, synced : Out(1)
        A session is set or learned; ``next_expected`` is known.
    next_expected : Out(64)
        Sequence number of the next message to deliver.
    session_ended : Out(1)
        An end-of-session packet of the current session arrived (cleared when the host sets a session).
    accepted_packets : Out(32)
        Wrapping counters, like all the following: data packets forwarded (bad-FCS ones included).
    duplicates : Out(32)
        Data packets dropped because all their messages were delivered already.
    gaps, gap_fifo_overflow : Out(32)
        Gaps found; those of them lost because the gap FIFO was full.
    bad_session : Out(32)
        Packets of another session.
    heartbeats, end_of_session : Out(32)
        Heartbeats and (whole, good) end-of-session packets of the current session, both feeds' copies.
    bad_fcs_packets : Out(32)
        Accepted packets that ended with a bad FCS (and were rolled back).
    overflow, runt_packets, cut_packets : Out(32)
        Sums of both packet buffers' counters.

    Notes
    -----
    Latency: a beat leaves ``o_blocks`` 3 cycles after it arrived when the arbiter is idle (header decision the
    cycle after the header's last beat). Throughput: one beat per cycle; a discarded packet is drained from its
    buffer while the other feed's packet streams, so both feeds may deliver back-to-back copies of the same
    packets at 100 % duty without loss. Between two accepted packets of the same feed the output idles 2 cycles,
    the time of the two header beats, so the output keeps up with either input. If both feeds carry different
    packets at full rate, the buffers fill and whole packets are refused (``overflow``).
    """

    i_feed_a: In(stream.Signature(PayloadBeat, always_ready=True))
    i_feed_b: In(stream.Signature(PayloadBeat, always_ready=True))
    o_blocks: Out(stream.Signature(MessageBlockBeat, always_ready=True))
    o_gap: Out(stream.Signature(SequenceGap))
    session: In(80)
    session_valid: In(1)
    current_session: Out(80)
    session_known: Out(1)
    synced: Out(1)
    next_expected: Out(64)
    session_ended: Out(1)
    accepted_packets: Out(32)
    duplicates: Out(32)
    gaps: Out(32)
    gap_fifo_overflow: Out(32)
    bad_session: Out(32)
    heartbeats: Out(32)
    end_of_session: Out(32)
    bad_fcs_packets: Out(32)
    overflow: Out(32)
    runt_packets: Out(32)
    cut_packets: Out(32)

    def __init__(self, *, body_depth=512, header_depth=16, max_payload_bytes=1472, stall_timeout=64,
                 gap_depth=16, gap_timeout=256):
        self._buffer_options = dict(body_depth=body_depth, header_depth=header_depth,
                                    max_payload_bytes=max_payload_bytes, stall_timeout=stall_timeout)
        self._body_depth = body_depth
        self._gap_depth = gap_depth
        self._gap_timeout = gap_timeout
        super().__init__()

    def elaborate(self, platform):
        m = Module()

        buffers = []
        for name, port in (("a", self.i_feed_a), ("b", self.i_feed_b)):
            buffer = m.submodules[f"buffer_{name}"] = MoldUdp64PacketBuffer(**self._buffer_options)
            wiring.connect(m, wiring.flipped(port), buffer.i_payload)
            buffers.append(buffer)
        m.d.comb += [getattr(self, name).eq(getattr(buffers[0], name) + getattr(buffers[1], name))
                     for name in ("overflow", "runt_packets", "cut_packets")]

        m.submodules.gap_fifo = gap_fifo = fifo.SyncFIFOBuffered(width=SequenceGap.as_shape().size,
                                                                 depth=self._gap_depth)
        m.d.comb += [
            self.o_gap.valid.eq(gap_fifo.r_rdy),
            self.o_gap.payload.eq(gap_fifo.r_data),
            gap_fifo.r_en.eq(self.o_gap.ready),
        ]

        next_expected = Signal(64)
        synced = Signal()
        session = Signal(80)
        session_known = Signal()
        session_ended = Signal()
        m.d.comb += [
            self.next_expected.eq(next_expected),
            self.synced.eq(synced),
            self.current_session.eq(session),
            self.session_known.eq(session_known),
            self.session_ended.eq(session_ended),
        ]

        # The accepted packet being streamed out.
        busy = Signal()
        stream_feed = Signal()
        stream_first = Signal()
        packet_sequence = Signal(64)
        packet_count = Signal(16)
        packet_skip = Signal(16)
        # What to restore if the streamed packet ends bad: the state before it was accepted.
        rollback_next_expected = Signal(64)
        rollback_synced = Signal()
        rollback_session_known = Signal()
        rollback_valid = Signal()
        # A gap found at acceptance, reported only once the packet proved good.
        gap_pending = Signal()
        gap_first = Signal(64)
        gap_sequence = Signal(64)
        heartbeat_gap = Signal()
        # Packets whose headers were decided "drop" but whose bodies are still in the buffer, per feed.
        discard = [Signal(range(self._body_depth + 1), name=f"discard_{name}") for name in "ab"]

        # The streamer: one beat per cycle from the accepted packet's buffer, after that feed's older discards.
        bodies = [buffer.o_body for buffer in buffers]
        body = BufferedBeat(Mux(stream_feed, bodies[1].payload.as_value(), bodies[0].payload.as_value()))
        body_valid = Mux(stream_feed, bodies[1].valid, bodies[0].valid)
        discard_pending = Mux(stream_feed, discard[1] != 0, discard[0] != 0)
        stream_pop = busy & ~discard_pending & body_valid
        stream_end = stream_pop & body.last
        stream_end_bad = stream_end & (body.error | body.truncated)
        for feed, port in enumerate(bodies):
            m.d.comb += port.ready.eq((discard[feed] != 0) | (busy & (stream_feed == feed)))

        host_session_change = self.session_valid & (~session_known | (self.session != session))
        # Decide only when the previous accepted packet's fate is known, so that its copy on the other feed is
        # never judged against a packet that may still turn out bad.
        decidable = ~host_session_change & (~busy | (stream_end & ~stream_end_bad))

        headers = [buffer.o_header for buffer in buffers]
        wants, in_order, no_gap, dropped, heartbeat_seen, end_seen = [], [], [], [], [], []
        duplicate, wrong_session = [], []
        for feed, port in enumerate(headers):
            header = port.payload
            is_heartbeat = header.count == 0
            is_end = header.count == END_OF_SESSION_COUNT
            is_data = ~is_heartbeat & ~is_end
            session_ok = ~session_known | (header.session == session)
            ahead = header.sequence > next_expected
            all_seen = header.end <= next_expected
            control = port.valid & ~is_data & session_ok
            # A heartbeat's sequence number is the next one to be sent: trust it only from a whole, good packet.
            control_moves = control & header.complete & ~header.error & (~synced | ahead)
            data_new = port.valid & is_data & session_ok & (~synced | ~all_seen)
            duplicate.append(port.valid & is_data & session_ok & synced & all_seen)
            wrong_session.append(port.valid & ~session_ok)
            wants.append(data_new | (control_moves & ~busy))
            in_order.append(synced & ~ahead)
            no_gap.append(~synced | ~ahead)
            dropped.append(duplicate[feed] | wrong_session[feed] | (control & ~control_moves))
            heartbeat_seen.append(control & is_heartbeat)
            end_seen.append(control & is_end & header.complete & ~header.error)

        choose_b = wants[1] & (~wants[0] | (no_gap[1] & ~no_gap[0]) |
                               ((no_gap[1] == no_gap[0]) & (headers[1].payload.sequence <
                                                             headers[0].payload.sequence)))
        # A packet beyond next_expected waits up to gap_timeout idle cycles for the other feed's copy of the
        # missing messages, so a loss (or a bad FCS) on one feed does not turn into a gap when the other feed
        # lags behind by less than that.
        gap_wait = Signal(range(self._gap_timeout + 1))
        may_take = Mux(choose_b, no_gap[1], no_gap[0]) | (gap_wait == self._gap_timeout)
        take_b = choose_b & may_take
        take = [wants[0] & ~choose_b & may_take, take_b]
        popped = [decidable & (take[feed] | dropped[feed]) for feed in range(2)]
        for feed, port in enumerate(headers):
            m.d.comb += port.ready.eq(popped[feed])

        taken = MoldUdp64Header(Mux(take_b, headers[1].payload.as_value(), headers[0].payload.as_value()))
        taken_is_data = (taken.count != 0) & (taken.count != END_OF_SESSION_COUNT)
        taken_in_order = Mux(take_b, in_order[1], in_order[0])
        taking = decidable & (take[0] | take[1])
        with m.If(taking | ~(wants[0] | wants[1])):
            m.d.sync += gap_wait.eq(0)
        with m.Elif(decidable & (gap_wait != self._gap_timeout)):
            m.d.sync += gap_wait.eq(gap_wait + 1)

        def count_pulses(counter, pulses):
            m.d.sync += counter.eq(counter + sum(pulses[feed] & popped[feed] for feed in range(2)))

        count_pulses(self.duplicates, duplicate)
        count_pulses(self.bad_session, wrong_session)
        count_pulses(self.heartbeats, heartbeat_seen)
        count_pulses(self.end_of_session, end_seen)
        with m.If(sum(end_seen[feed] & popped[feed] for feed in range(2)) != 0):
            m.d.sync += session_ended.eq(1)

        # Every heartbeat and end of session has one buffered beat (the end of its header) to throw away.
        for feed in range(2):
            discard_added = popped[feed] & (dropped[feed] | (take[feed] & ~taken_is_data))
            discard_done = (discard[feed] != 0) & bodies[feed].valid & bodies[feed].payload.last
            m.d.sync += discard[feed].eq(discard[feed] + discard_added - discard_done)

        # Output register: the streamed beat, with the header lanes of the first beat masked off.
        m.d.sync += self.o_blocks.valid.eq(stream_pop)
        with m.If(stream_pop):
            m.d.sync += [
                self.o_blocks.payload.data.eq(body.data),
                self.o_blocks.payload.keep.eq(Mux(stream_first, body.keep & _BODY_LANES_MASK, body.keep)),
                self.o_blocks.payload.first.eq(stream_first),
                self.o_blocks.payload.last.eq(body.last),
                self.o_blocks.payload.error.eq(body.last & (body.error | body.truncated)),
                self.o_blocks.payload.stamp.eq(body.stamp),
                self.o_blocks.payload.sequence.eq(packet_sequence),
                self.o_blocks.payload.count.eq(packet_count),
                self.o_blocks.payload.skip.eq(packet_skip),
                stream_first.eq(0),
            ]

        # Gap reports: a data packet's when it ended good, a heartbeat's the cycle after it was taken.
        gap_report = (stream_end & ~stream_end_bad & gap_pending) | heartbeat_gap
        gap_size = gap_sequence - gap_first
        gap_entry = SequenceGap(gap_fifo.w_data)
        m.d.comb += [
            gap_entry.first.eq(gap_first),
            gap_entry.count.eq(Mux(gap_size[32:] != 0, 0xFFFF_FFFF, gap_size[:32])),
            gap_fifo.w_en.eq(gap_report),
        ]
        m.d.sync += heartbeat_gap.eq(0)
        with m.If(gap_report):
            m.d.sync += self.gaps.eq(self.gaps + 1)
            with m.If(~gap_fifo.w_rdy):
                m.d.sync += self.gap_fifo_overflow.eq(self.gap_fifo_overflow + 1)

        with m.If(stream_end):
            m.d.sync += [busy.eq(0), gap_pending.eq(0)]
            with m.If(body.error):
                m.d.sync += self.bad_fcs_packets.eq(self.bad_fcs_packets + 1)
            with m.If(stream_end_bad & rollback_valid):
                m.d.sync += [
                    next_expected.eq(rollback_next_expected),
                    synced.eq(rollback_synced),
                    session_known.eq(rollback_session_known),
                ]

        with m.If(taking):
            m.d.sync += [
                next_expected.eq(Mux(taken_is_data, taken.end, taken.sequence)),
                synced.eq(1),
                gap_first.eq(next_expected),
                gap_sequence.eq(taken.sequence),
            ]
            with m.If(~session_known):
                m.d.sync += [session.eq(taken.session), session_known.eq(1)]
            with m.If(taken_is_data):
                m.d.sync += [
                    busy.eq(1),
                    stream_feed.eq(take_b),
                    stream_first.eq(1),
                    packet_sequence.eq(taken.sequence),
                    packet_count.eq(taken.count),
                    # Overlap: the messages below next_expected were delivered; fewer than 2**16 of them.
                    packet_skip.eq(Mux(taken_in_order, next_expected[:16] - taken.sequence[:16], 0)),
                    rollback_next_expected.eq(next_expected),
                    rollback_synced.eq(synced),
                    rollback_session_known.eq(session_known),
                    rollback_valid.eq(1),
                    gap_pending.eq(synced & ~taken_in_order),
                    self.accepted_packets.eq(self.accepted_packets + 1),
                ]
            with m.Else():
                m.d.sync += heartbeat_gap.eq(synced & ~taken_in_order)

        with m.If(host_session_change):
            m.d.sync += [
                session.eq(self.session),
                session_known.eq(1),
                synced.eq(0),
                session_ended.eq(0),
                rollback_valid.eq(0),
            ]

        return m
