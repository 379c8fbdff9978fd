"""MoldUDP64 A/B arbitration: the first good copy of each sequence number wins, gaps are reported to the host."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import PayloadBeat
from .packet_buffer import BufferedBeat, MoldUdp64Header, MoldUdp64PacketBuffer
from .splitter import BodyBeat

__all__ = ["END_OF_SESSION_COUNT", "COUNTERS", "LATENCY", "SequenceGap", "MoldUdp64Arbiter"]

#: MoldUDP64 message count that marks the end of a session.
END_OF_SESSION_COUNT = 0xFFFF

#: Cycles from a payload beat on ``i_feed_a``/``i_feed_b`` to the same beat on ``o_beats_a``/``o_beats_b`` when
#: its packet is framed without a wait (0: the same cycle); a packet taken from its buffer comes 3 cycles or
#: more after it arrived.
LATENCY = 0


class SequenceGap(data.Struct):
    """Messages that no feed delivered: ``count`` of them from sequence number ``first`` (``count`` saturates)."""
    first: 64
    count: 32


#: The wrapping event counters (``Out(32)`` ports) of :class:`MoldUdp64Arbiter`.
COUNTERS = ("accepted_packets", "duplicates", "gaps", "gap_fifo_overflow", "bad_session", "heartbeats",
            "end_of_session", "bad_fcs_packets", "overflow", "runt_packets", "cut_packets")


class MoldUdp64Arbiter(wiring.Component):
    """Merges the A and B copies of a MoldUDP64 feed: decides which packets are delivered, in sequence order.

    Each feed has a :class:`MoldUdp64PacketBuffer` and its own :class:`~.splitter.MessageSplitter` (wired by
    :class:`~.ingest.FeedIngest` to ``o_beats_a``/``o_beats_b`` and the per-feed control ports). The arbiter
    decides on a packet when its header reaches the head of its buffer, and then either has it delivered or
    discards it. Decisions compare the packet with ``next_expected``, the sequence number after the last
    accepted message:

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

    Cut-through: a packet whose header arrives while its feed has nothing queued is framed by its feed's splitter
    as it arrives (``o_beats`` carries the buffer's input, undecided). The decision comes 2 cycles after the
    header's last beat (payload beat 2), while the packet's first message is still arriving (it ends in payload
    beat 4 at the earliest). If the packet is accepted before any of its messages has ended (the splitter's
    ``live_ok``) and none of its messages is to be skipped (no overlap), its splitter is told to ``accept`` it
    and delivers it as it arrives; its buffered copy is discarded. Otherwise (a wait, a decision that came too late, an
    overlap) the splitter is told to ``abort`` and the packet is replayed from its buffer (``replay`` beats),
    with its feed's later packets, until that feed is caught up (nothing queued between two packets).

    Bad FCS policy (cut-through): an accepted packet is delivered while it still arrives, so its messages have
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
    o_beats_a, o_beats_b : Out(stream.Signature(BodyBeat, always_ready=True))
        Each feed's packets for its splitter, from payload beat 2 on: framed live (the buffer's input, in the
        same cycle) or replayed from the buffer (``replay``), never held back.
    skip : Out(16)
        Messages of the replayed packet already delivered (the overlap), for its splitter.
    accept, abort : Out(2)
        Registered pulses to the splitter of feed A (bit 0) or B (bit 1): the packet it frames live is accepted;
        forget the packet it frames (it will be replayed).
    live_ok : In(2)
        From each feed's splitter: see :class:`~.splitter.MessageSplitter`.
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
    Latency: a packet framed live adds nothing (``o_beats`` is the input beat, in the same cycle); its messages
    are delivered when the header decision (2 cycles after the header's last beat: the heads are judged against
    the state in a registered compare stage, the decision acts on those flags a cycle later, the accept pulse
    is registered) comes before its first message ends. That holds for the winning copy of each packet when
    nothing else is in flight: the next decision comes 2 cycles after an accepted packet's last beat. A replayed
    packet leaves its buffer 3 cycles after it arrived at the earliest (then more while its feed catches up, 2
    cycles per packet, the time of the two header beats, when the feed runs at 100 % duty): after a wait for the
    other feed (a gap), for the copy taken after a bad one, for an overlap, or when the winning copy arrives
    while another accepted packet is still in flight. Gaps reach ``o_gap`` a few cycles after they are found
    (the entry is computed and written through registers). Throughput: one beat per cycle per feed; a discarded
    packet is drained from its buffer while the other feed's packet is delivered, so both feeds may deliver
    back-to-back copies of the same packets at 100 % duty without loss. If both feeds carry different packets at
    full rate, the buffers fill and whole packets are refused (``overflow``).
    """

    i_feed_a: In(stream.Signature(PayloadBeat, always_ready=True))
    i_feed_b: In(stream.Signature(PayloadBeat, always_ready=True))
    o_beats_a: Out(stream.Signature(BodyBeat, always_ready=True))
    o_beats_b: Out(stream.Signature(BodyBeat, always_ready=True))
    skip: Out(16)
    accept: Out(2)
    abort: Out(2)
    live_ok: In(2)
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

        # The accepted packet in flight: delivered live by its feed's splitter, or replayed from its buffer.
        busy = Signal()
        stream_feed = Signal()
        stream_first = Signal()
        stream_live = Signal()
        packet_skip = Signal(16)
        m.d.comb += self.skip.eq(packet_skip)
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

        # The replay: one beat per cycle from the accepted packet's buffer, after that feed's older discards.
        bodies = [buffer.o_body for buffer in buffers]
        body = BufferedBeat(Mux(stream_feed, bodies[1].payload.as_value(), bodies[0].payload.as_value()))
        body_valid = Mux(stream_feed, bodies[1].valid, bodies[0].valid)
        discard_pending = Mux(stream_feed, discarding[1], discarding[0])
        # The replay pops from the cycle after the act cycle on (when its splitter's input multiplexer, driven by
        # a register of its own, has switched to the buffer).
        replay_armed = Signal()
        stream_pop = replay_armed & ~discard_pending & body_valid
        # A live packet ends the cycle after its last beat went to its splitter (when that beat passes the
        # splitter's framing stage), from registers: each feed's last live beat and its error bits.
        live_last = [Signal(name=f"live_last_{name}") for name in "ab"]
        live_last_error = [Signal(name=f"live_last_error_{name}") for name in "ab"]
        live_last_truncated = [Signal(name=f"live_last_truncated_{name}") for name in "ab"]
        live_end = busy & stream_live & Mux(stream_feed, live_last[1], live_last[0])
        end_error = Mux(stream_live, Mux(stream_feed, live_last_error[1], live_last_error[0]), body.error)
        end_truncated = Mux(stream_live, Mux(stream_feed, live_last_truncated[1], live_last_truncated[0]),
                            body.truncated)
        stream_end = (stream_pop & body.last) | live_end
        stream_end_bad = stream_end & (end_error | end_truncated)
        m.d.sync += replay_armed.eq(busy & ~stream_live & ~stream_end)
        for feed, port in enumerate(bodies):
            m.d.comb += port.ready.eq(discarding[feed] | (replay_armed & (stream_feed == feed)))

        # Each feed's splitter input: its buffer's input while it frames live, else the replay. A feed frames live
        # from a packet's first body beat when nothing of that feed is queued or replaying (so that packet is the
        # next one of the feed to be decided, and becomes the head of its buffer the next cycle).
        replaying = [Signal(name=f"replaying_{name}") for name in "ab"]
        # replaying, a cycle later: selects the splitter's input data (a wide multiplexer, so a register of its
        # own, placed by it). A feed goes live again only once both are low.
        source_replay = [Signal(name=f"source_replay_{name}") for name in "ab"]
        m.d.sync += [source_replay[feed].eq(replaying[feed]) for feed in range(2)]
        live_framing = [Signal(name=f"live_framing_{name}") for name in "ab"]
        live_head = [Signal(name=f"live_head_{name}") for name in "ab"]
        for feed, (buffer, port) in enumerate(zip(buffers, (self.o_beats_a, self.o_beats_b))):
            live = buffer.o_live
            live_start = (live.valid & live.payload.first & ~replaying[feed] & ~source_replay[feed] &
                          ~live_framing[feed] & ~buffer.headers_queued)
            live_go = live_start | (live.valid & live_framing[feed] & ~replaying[feed])
            with m.If(live_go):
                m.d.sync += live_framing[feed].eq(~live.payload.beat.last)
            m.d.sync += [
                live_last[feed].eq(live_go & live.payload.beat.last),
                live_last_error[feed].eq(live.payload.beat.error),
                live_last_truncated[feed].eq(live.payload.beat.truncated),
            ]
            with m.If(live_start):
                m.d.sync += live_head[feed].eq(1)
            replay_go = stream_pop & (stream_feed == feed)
            replayed = bodies[feed].payload
            live_beat = BodyBeat(port.payload)
            m.d.comb += port.valid.eq(Mux(replaying[feed], replay_go, live_go))
            with m.If(source_replay[feed]):
                m.d.comb += [
                    live_beat.data.eq(replayed.data),
                    live_beat.keep.eq(replayed.keep),
                    live_beat.first.eq(stream_first),
                    live_beat.last.eq(replayed.last),
                    live_beat.error.eq(replayed.error),
                    live_beat.truncated.eq(replayed.truncated),
                    live_beat.stamp.eq(replayed.stamp),
                    live_beat.replay.eq(1),
                ]
            with m.Else():
                m.d.comb += [
                    live_beat.data.eq(live.payload.beat.data),
                    live_beat.keep.eq(live.payload.beat.keep),
                    live_beat.first.eq(live.payload.first),
                    live_beat.last.eq(live.payload.beat.last),
                    live_beat.error.eq(live.payload.beat.error),
                    live_beat.truncated.eq(live.payload.beat.truncated),
                    live_beat.stamp.eq(live.payload.beat.stamp),
                ]

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
                      "dropped", "heartbeat_seen", "end_seen", "no_skip")
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
                # Starts at or beyond next_expected (or learns it): nothing to skip, may be delivered live.
                "no_skip": ~synced | ahead | (header.sequence == next_expected),
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
        # A taken data packet is delivered live if its splitter frames it and has lost nothing of it yet, else it
        # is replayed from its buffer.
        live_ok = [live_head[feed] & self.live_ok[feed] & flags[feed]["no_skip"] for feed in range(2)]
        take_data = [decidable & take[feed] & flags[feed]["is_data"] for feed in range(2)]
        take_live = [take_data[feed] & live_ok[feed] for feed in range(2)]
        take_replay = [take_data[feed] & ~live_ok[feed] for feed in range(2)]
        # The decision only sets a few registers; it acts in the next cycle (the "act" cycle), from registers:
        # the decided heads leave their buffers then (so the taken head is still there to be read), and the
        # arbitration state is updated at its end.
        pop_pending = [Signal(name=f"pop_pending_{feed_name}") for feed_name in "ab"]
        acting = Signal()
        acting_b = Signal()
        m.d.sync += [pop_pending[feed].eq(popped[feed]) for feed in range(2)]
        m.d.sync += [acting.eq(taking), acting_b.eq(take_b)]
        # The splitter control pulses, in the act cycle: the first replayed beat may leave in it too (its splitter
        # reads ``skip`` from the next cycle on, when packet_skip holds it).
        m.d.sync += [self.accept.eq(Cat(take_live)), self.abort.eq(Cat(take_replay))]
        with m.If(pop_pending[0]):
            m.d.sync += live_head[0].eq(0)
        with m.If(pop_pending[1]):
            m.d.sync += live_head[1].eq(0)
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
            m.d.sync += discard_added.eq(popped[feed] & (dropped[feed] | (take[feed] & ~flags[feed]["is_data"]) |
                                                         take_live[feed]))
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

        with m.If(stream_pop):
            m.d.sync += stream_first.eq(0)

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

        # The decision: the replay (if any) starts at once.
        with m.If(taking & decided_is_data):
            m.d.sync += [busy.eq(1), stream_feed.eq(take_b), stream_first.eq(1),
                         stream_live.eq(take_live[0] | take_live[1])]
        for feed in range(2):
            with m.If(take_replay[feed]):
                m.d.sync += [replaying[feed].eq(1), live_framing[feed].eq(0)]

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
                    packet_skip.eq(taken_skip),
                    rollback_next_expected.eq(next_expected),
                    rollback_synced.eq(synced),
                    rollback_session_known.eq(session_known),
                    rollback_valid.eq(1),
                    gap_pending.eq(synced & ~taken_in_order),
                    self.accepted_packets.eq(self.accepted_packets + 1),
                ]

        # The end of the stream (possibly in the act cycle itself, for a live packet whose last beat came then).
        # A bad end rolls the state back the cycle after, from the registers saved in the act cycle (so also
        # after an end in the act cycle); no decision is taken meanwhile (the flags are stale after both cycles).
        bad_end = Signal()
        bad_fcs_end = Signal()
        m.d.sync += [bad_end.eq(stream_end_bad), bad_fcs_end.eq(stream_end & end_error)]
        with m.If(stream_end):
            m.d.sync += [busy.eq(0), gap_pending.eq(0)]
        with m.If(bad_fcs_end):
            m.d.sync += self.bad_fcs_packets.eq(self.bad_fcs_packets + 1)
        with m.If(bad_end & rollback_valid):
            m.d.sync += [
                next_expected.eq(rollback_next_expected),
                synced.eq(rollback_synced),
                session_known.eq(rollback_session_known),
            ]

        # A feed goes back to live framing once nothing of it is replaying or queued: its next packet (whose
        # header has not arrived yet) is framed live.
        for feed, buffer in enumerate(buffers):
            replay_busy = busy & ~stream_live & (stream_feed == feed)
            with m.If(replaying[feed] & ~replay_busy & ~take_replay[feed] &
                      ~buffer.headers_queued & ~(buffer.o_live.valid & buffer.o_live.payload.first)):
                m.d.sync += replaying[feed].eq(0)

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
        state_change = taking | acting | stream_end_bad | bad_end | host_session_change
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
