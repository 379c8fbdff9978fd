"""MoldUDP64 A/B arbitration: the first good copy of each sequence number wins, gaps are reported to the host."""

from amaranth.hdl import Cat, Module, Mux, Signal
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
    sequence number, else A (heads are judged one cycle before the decision: a head judged one cycle later than
    the other, e.g. one that just moved up in its buffer, counts as arrived later). The session is set by the
    host (``session_valid``, taken one cycle later; a new value restarts sequencing) or learned from the first
    accepted packet; ``next_expected`` is learned from the first accepted packet (no gap is reported for it).

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
    Latency: a beat leaves ``o_blocks`` 4 cycles after it arrived when the arbiter is idle (header decision 2
    cycles after the header's last beat: the heads are judged against the state in a registered compare stage,
    the decision acts on those flags a cycle later; the next decision comes the cycle after an accepted packet's
    last beat left). Gaps reach ``o_gap`` a few cycles after they are found (the entry is computed and written
    through registers). Throughput: one beat per cycle; a discarded packet is drained from its buffer while the
    other feed's packet streams, so both feeds may deliver back-to-back copies of the same packets at 100 % duty
    without loss. Between two accepted packets of the same feed the output idles 2 cycles (1 when the next one
    is already waiting), the time of the two header beats, so the output keeps up with either input. If both
    feeds carry different packets at full rate, the buffers fill and whole packets are refused (``overflow``).
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
        # Output register, refilled only while empty (so o_gap.ready reaches no further than it; gaps are rare,
        # one every other cycle is plenty).
        gap_out_valid = Signal()
        gap_out = Signal(SequenceGap)
        m.d.comb += [
            self.o_gap.valid.eq(gap_out_valid),
            self.o_gap.payload.eq(gap_out),
            gap_fifo.r_en.eq(~gap_out_valid),
        ]
        with m.If(~gap_out_valid):
            m.d.sync += [gap_out_valid.eq(gap_fifo.r_rdy), gap_out.eq(gap_fifo.r_data)]
        with m.Elif(self.o_gap.ready):
            m.d.sync += gap_out_valid.eq(0)

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
        # discard[feed] != 0, kept in a register.
        discarding = [Signal(name=f"discarding_{name}") for name in "ab"]

        # The streamer: one beat per cycle from the accepted packet's buffer, after that feed's older discards.
        bodies = [buffer.o_body for buffer in buffers]
        body = BufferedBeat(Mux(stream_feed, bodies[1].payload.as_value(), bodies[0].payload.as_value()))
        body_valid = Mux(stream_feed, bodies[1].valid, bodies[0].valid)
        discard_pending = Mux(stream_feed, discarding[1], discarding[0])
        stream_pop = busy & ~discard_pending & body_valid
        stream_end = stream_pop & body.last
        stream_end_bad = stream_end & (body.error | body.truncated)
        for feed, port in enumerate(bodies):
            m.d.comb += port.ready.eq(discarding[feed] | (busy & (stream_feed == feed)))

        # The host's session setting, registered (so that the 80-bit compare does not sit in the decision):
        # acted on one cycle later, and not twice for one change.
        host_session = Signal(80)
        host_change_seen = Signal()
        host_change_acted = Signal()
        m.d.sync += [
            host_session.eq(self.session),
            host_change_seen.eq(self.session_valid & (~session_known | (self.session != session))),
        ]
        host_session_change = host_change_seen & ~host_change_acted
        m.d.sync += host_change_acted.eq(host_session_change)
        # Decide only when the previous accepted packet's fate is known (the cycle after its last beat), so that
        # its copy on the other feed is never judged against a packet that may still turn out bad.
        decidable = ~host_session_change & ~busy

        # Each head is judged against the arbitration state one cycle ahead of the decision, into registered
        # flags: the decision (two heads, 64-bit comparisons, choice, pop, state update) is split into a compare
        # stage and an act stage. The flags are ``fresh`` when neither the head nor the state changed since they
        # were computed (and the head is not already decided); only fresh heads take part in a decision.
        headers = [buffer.o_header for buffer in buffers]
        flag_names = ("is_data", "control_moves", "data_new", "duplicate", "wrong_session", "in_order", "no_gap",
                      "dropped", "heartbeat_seen", "end_seen")
        flags = [{name: Signal(name=f"{name}_{feed_name}") for name in flag_names} for feed_name in "ab"]
        fresh = [Signal(name=f"fresh_{feed_name}") for feed_name in "ab"]
        b_lower = Signal()
        # A head's session comparison comes with it from its buffer, unless the session changed since it was
        # buffered: then it is compared here, in 20-bit pieces registered, one cycle more.
        session_pieces = 4
        piece_bits = 80 // session_pieces
        slow_match = [Signal(session_pieces, name=f"slow_match_{feed_name}") for feed_name in "ab"]
        slow_match_valid = [Signal(name=f"slow_match_valid_{feed_name}") for feed_name in "ab"]
        for feed, port in enumerate(headers):
            m.d.sync += slow_match[feed].eq(Cat(
                port.payload.session[piece * piece_bits:(piece + 1) * piece_bits] ==
                session[piece * piece_bits:(piece + 1) * piece_bits] for piece in range(session_pieces)))
        for feed, port in enumerate(headers):
            header = port.payload
            is_heartbeat = header.heartbeat
            is_end = header.end_of_session
            is_data = ~is_heartbeat & ~is_end
            session_match = Mux(buffers[feed].session_match_valid, header.session_match, slow_match[feed].all())
            session_ok = ~session_known | session_match
            ahead = header.sequence > next_expected
            all_seen = header.end <= next_expected
            control = ~is_data & session_ok
            # A heartbeat's sequence number is the next one to be sent: trust it only from a whole, good packet.
            control_moves = control & header.complete & ~header.error & (~synced | ahead)
            duplicate = is_data & session_ok & synced & all_seen
            wrong_session = ~session_ok
            values = {
                "is_data": is_data,
                "control_moves": control_moves,
                "data_new": is_data & session_ok & (~synced | ~all_seen),
                "duplicate": duplicate,
                "wrong_session": wrong_session,
                "in_order": synced & ~ahead,
                "no_gap": ~synced | ~ahead,
                "dropped": duplicate | wrong_session | (control & ~control_moves),
                "heartbeat_seen": control & is_heartbeat,
                "end_seen": control & is_end & header.complete & ~header.error,
            }
            m.d.sync += [flags[feed][name].eq(value) for name, value in values.items()]
        m.d.sync += b_lower.eq(headers[1].payload.sequence < headers[0].payload.sequence)

        # Only judged heads take part: a head that showed up (or was left by a state change) in the last cycle
        # waits a cycle, as if it had arrived one cycle later.
        all_fresh = (fresh[0] | ~headers[0].valid) & (fresh[1] | ~headers[1].valid)
        wants = [fresh[feed] & (flags[feed]["data_new"] | (flags[feed]["control_moves"] & ~busy))
                 for feed in range(2)]
        no_gap = [flags[feed]["no_gap"] for feed in range(2)]
        dropped = [fresh[feed] & flags[feed]["dropped"] for feed in range(2)]
        duplicate = [flags[feed]["duplicate"] for feed in range(2)]
        wrong_session = [flags[feed]["wrong_session"] for feed in range(2)]
        heartbeat_seen = [flags[feed]["heartbeat_seen"] for feed in range(2)]
        end_seen = [flags[feed]["end_seen"] for feed in range(2)]

        choose_b = wants[1] & (~wants[0] | (no_gap[1] & ~no_gap[0]) | ((no_gap[1] == no_gap[0]) & b_lower))
        # A packet beyond next_expected waits up to gap_timeout idle cycles for the other feed's copy of the
        # missing messages, so a loss (or a bad FCS) on one feed does not turn into a gap when the other feed
        # lags behind by less than that.
        gap_wait = Signal(range(self._gap_timeout + 1))
        gap_expired = Signal(init=self._gap_timeout == 0)  # gap_wait == gap_timeout, kept in a register
        may_take = Mux(choose_b, no_gap[1], no_gap[0]) | gap_expired
        take_b = choose_b & may_take
        take = [wants[0] & ~choose_b & may_take, take_b]
        popped = [decidable & (take[feed] | dropped[feed]) for feed in range(2)]
        taking = decidable & (take[0] | take[1])
        # The decision only sets a few registers; it acts in the next cycle (the "act" cycle), from registers:
        # the decided heads leave their buffers then (so the taken head is still there to be read), and the
        # arbitration state is updated at its end.
        pop_pending = [Signal(name=f"pop_pending_{feed_name}") for feed_name in "ab"]
        acting = Signal()
        acting_b = Signal()
        m.d.sync += [pop_pending[feed].eq(popped[feed]) for feed in range(2)]
        m.d.sync += [acting.eq(taking), acting_b.eq(take_b)]
        for feed, port in enumerate(headers):
            m.d.comb += port.ready.eq(pop_pending[feed])

        decided_is_data = Mux(take_b, flags[1]["is_data"], flags[0]["is_data"])
        with m.If(taking | (all_fresh & ~(wants[0] | wants[1]))):
            m.d.sync += [gap_wait.eq(0), gap_expired.eq(self._gap_timeout == 0)]
        with m.Elif(decidable & (wants[0] | wants[1]) & ~gap_expired):
            m.d.sync += [gap_wait.eq(gap_wait + 1), gap_expired.eq(gap_wait == self._gap_timeout - 1)]

        def count_pulses(counter, pulses):
            # Registered pulses: the counter adds one cycle later.
            counted = Signal(2, name=f"{counter.name}_pulses")
            m.d.sync += [
                counted.eq(Cat(pulses[feed] & popped[feed] for feed in range(2))),
                counter.eq(counter + counted[0] + counted[1]),
            ]

        count_pulses(self.duplicates, duplicate)
        count_pulses(self.bad_session, wrong_session)
        count_pulses(self.heartbeats, heartbeat_seen)
        count_pulses(self.end_of_session, end_seen)
        with m.If(sum(end_seen[feed] & popped[feed] for feed in range(2)) != 0):
            m.d.sync += session_ended.eq(1)

        # Every heartbeat and end of session has one buffered beat (the end of its header) to throw away.
        for feed in range(2):
            discard_added = Signal(name=f"discard_added_{feed}")
            m.d.sync += discard_added.eq(popped[feed] & (dropped[feed] | (take[feed] & ~decided_is_data)))
            discard_done = discarding[feed] & bodies[feed].valid & bodies[feed].payload.last
            m.d.sync += [
                discard[feed].eq(discard[feed] + discard_added - discard_done),
                discarding[feed].eq(discard_added | (discarding[feed] & ~((discard[feed] == 1) & discard_done))),
            ]

        # The taken packet, read in the act cycle.
        taken = MoldUdp64Header(Mux(acting_b, headers[1].payload.as_value(), headers[0].payload.as_value()))
        taken_is_data = Mux(acting_b, flags[1]["is_data"], flags[0]["is_data"])
        taken_in_order = Mux(acting_b, flags[1]["in_order"], flags[0]["in_order"])
        # Overlap: the messages below next_expected were delivered; fewer than 2**16 of them.
        taken_skip = Mux(taken_in_order, next_expected[:16] - taken.sequence[:16], 0)
        acting_data = acting & taken_is_data

        # Output register: the streamed beat, with the header lanes of the first beat masked off. The first beat
        # may leave in the act cycle, before packet_* hold the packet.
        m.d.sync += self.o_blocks.valid.eq(stream_pop)
        with m.If(stream_pop):
            m.d.sync += [
                self.o_blocks.payload.data.eq(body.data),
                self.o_blocks.payload.keep.eq(Mux(stream_first, body.keep & _BODY_LANES_MASK, body.keep)),
                self.o_blocks.payload.first.eq(stream_first),
                self.o_blocks.payload.last.eq(body.last),
                self.o_blocks.payload.error.eq(body.last & (body.error | body.truncated)),
                self.o_blocks.payload.stamp.eq(body.stamp),
                self.o_blocks.payload.sequence.eq(Mux(acting, taken.sequence, packet_sequence)),
                self.o_blocks.payload.count.eq(Mux(acting, taken.count, packet_count)),
                self.o_blocks.payload.skip.eq(Mux(acting, taken_skip, packet_skip)),
                stream_first.eq(0),
            ]

        # Gaps: a data packet's is found when it ended good, a heartbeat's when it is taken; reported two cycles
        # later (once gap_first, gap_sequence and the registered gap size are there), and written into the gap
        # FIFO one cycle after the report.
        gap_pending_now = Mux(acting_data, synced & ~taken_in_order, gap_pending)
        gap_found = (stream_end & ~stream_end_bad & gap_pending_now) | heartbeat_gap
        gap_found_1 = Signal()
        gap_report = Signal()
        m.d.sync += [gap_found_1.eq(gap_found), gap_report.eq(gap_found_1)]
        gap_size = Signal(64)
        m.d.sync += gap_size.eq(gap_sequence - gap_first)
        gap_write = Signal()
        gap_entry = Signal(SequenceGap)
        m.d.sync += gap_write.eq(gap_report)
        with m.If(gap_report):
            m.d.sync += [
                gap_entry.first.eq(gap_first),
                gap_entry.count.eq(Mux(gap_size[32:] != 0, 0xFFFF_FFFF, gap_size[:32])),
            ]
        m.d.comb += [
            gap_fifo.w_data.eq(gap_entry),
            gap_fifo.w_en.eq(gap_write),
        ]
        with m.If(gap_report):
            m.d.sync += self.gaps.eq(self.gaps + 1)
        with m.If(gap_write & ~gap_fifo.w_rdy):
            m.d.sync += self.gap_fifo_overflow.eq(self.gap_fifo_overflow + 1)

        # The decision: the stream starts at once.
        with m.If(taking & decided_is_data):
            m.d.sync += [busy.eq(1), stream_feed.eq(take_b), stream_first.eq(1)]

        # The act cycle.
        m.d.comb += heartbeat_gap.eq(acting & ~taken_is_data & synced & ~taken_in_order)
        with m.If(acting):
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
                    packet_sequence.eq(taken.sequence),
                    packet_count.eq(taken.count),
                    packet_skip.eq(taken_skip),
                    rollback_next_expected.eq(next_expected),
                    rollback_synced.eq(synced),
                    rollback_session_known.eq(session_known),
                    rollback_valid.eq(1),
                    gap_pending.eq(synced & ~taken_in_order),
                    self.accepted_packets.eq(self.accepted_packets + 1),
                ]

        # The end of the stream (possibly in the act cycle itself, for a packet of a single beat).
        rollback_now = Mux(acting_data, 1, rollback_valid)
        with m.If(stream_end):
            m.d.sync += [busy.eq(0), gap_pending.eq(0)]
            with m.If(body.error):
                m.d.sync += self.bad_fcs_packets.eq(self.bad_fcs_packets + 1)
            with m.If(stream_end_bad & rollback_now):
                m.d.sync += [
                    next_expected.eq(Mux(acting_data, next_expected, rollback_next_expected)),
                    synced.eq(Mux(acting_data, synced, rollback_synced)),
                    session_known.eq(Mux(acting_data, session_known, rollback_session_known)),
                ]

        with m.If(host_session_change):
            m.d.sync += [
                session.eq(host_session),
                session_known.eq(1),
                synced.eq(0),
                session_ended.eq(0),
                rollback_valid.eq(0),
            ]

        # The flags go stale when the state changes (at the end of an act cycle, a rollback, a host change) and
        # for the cycles between a decision and the act; a head, when it is decided and until it has left.
        state_change = taking | acting | (stream_end_bad & rollback_now) | host_session_change
        session_change = (acting & ~session_known) | host_session_change
        for feed in range(2):
            head_stays = headers[feed].valid & ~pop_pending[feed]
            m.d.comb += [buffers[feed].session.eq(session), buffers[feed].session_change.eq(session_change)]
            m.d.sync += [
                slow_match_valid[feed].eq(head_stays & ~session_change),
                fresh[feed].eq(head_stays & ~popped[feed] & ~state_change &
                               (buffers[feed].session_match_valid | slow_match_valid[feed])),
            ]

        return m
