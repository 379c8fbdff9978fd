"""Per-feed MoldUDP64 header parsing and packet buffering, in front of the A/B arbiter."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import BEAT_BYTES, STAMP_BITS, PayloadBeat

__all__ = ["MOLD_HEADER_BYTES", "MOLD_BODY_LANE", "MoldUdp64Header", "BufferedBeat", "LiveBeat",
           "MoldUdp64PacketBuffer"]

#: Length of the MoldUDP64 downstream header: session (10), sequence number (8), message count (2).
MOLD_HEADER_BYTES = 20
#: The header ends inside the third beat: message blocks start at this lane of beat 2.
MOLD_BODY_LANE = MOLD_HEADER_BYTES % BEAT_BYTES
# Index of the beat that completes the header (and is the first one buffered).
_HEADER_LAST_BEAT = MOLD_HEADER_BYTES // BEAT_BYTES


class MoldUdp64Header(data.Struct):
    """The header of one buffered packet, as the arbiter needs it.

    ``session`` holds the 10 session bytes as a big-endian number (first character in the most significant
    byte, as in the register map). ``end`` is ``sequence + count``. ``complete`` says the packet ended with its
    header (20 bytes, the normal heartbeat and end of session); then ``error`` is its FCS status, else ``error``
    is 0 and means nothing yet. ``heartbeat`` (count 0) and ``end_of_session`` (count 0xFFFF) are decoded from
    ``count``. ``session_match``: ``session`` equalled the buffer's ``session`` input when the header was
    written (meaningful only while ``session_match_valid``).
    """
    session: 80
    sequence: 64
    end: 64
    count: 16
    complete: 1
    error: 1
    heartbeat: 1
    end_of_session: 1
    session_match: 1


class BufferedBeat(data.Struct):
    """One buffered beat of a packet, from the beat that completes the header (lanes 0..3 are header) onwards.

    ``error``: the packet's FCS was bad (``last`` beat only). ``truncated``: the packet was cut short by the
    buffer (too long, or a new packet started before it ended); such a beat is an empty ``last`` beat.
    """
    data: 64
    keep: 8
    last: 1
    error: 1
    truncated: 1
    stamp: STAMP_BITS


class LiveBeat(data.Struct):
    """A beat as it is written into the body FIFO (see :attr:`MoldUdp64PacketBuffer.o_live`): a
    :class:`BufferedBeat` and ``first``, set on a packet's first buffered beat (payload beat 2)."""
    beat: BufferedBeat
    first: 1


def _big_endian(byte_list):
    """The number whose big-endian bytes are ``byte_list`` (first byte most significant)."""
    return Cat(*reversed(byte_list))


class MoldUdp64PacketBuffer(wiring.Component):
    """Parses the MoldUDP64 header of one feed's packets and queues header and body for the arbiter.

    The header FIFO gets one entry per packet as soon as the beat completing the header (beat 2) arrives; the
    body FIFO gets every beat from beat 2 on (cut-through: the arbiter may read a packet while it still arrives).

    Parameters
    ----------
    body_depth : int
        Beats in the body FIFO (block RAM).
    header_depth : int
        Packets in the header FIFO (distributed RAM).
    max_payload_bytes : int
        Longest UDP payload kept whole; the rest of a longer one is dropped and its body ends ``truncated``.
    stall_timeout : int
        Idle cycles inside a packet's body after which the packet is given up (ends ``truncated``), so that a
        feed that dies in the middle of a packet cannot hold the arbiter (and so the other feed) forever.

    Attributes
    ----------
    i_payload : In(stream.Signature(PayloadBeat, always_ready=True))
        UDP payloads of one feed; beats may pause (``valid`` low) inside a packet.
    o_header : Out(stream.Signature(MoldUdp64Header))
        One entry per buffered packet; shows up 1 cycle after beat 2 arrived.
    o_body : Out(stream.Signature(BufferedBeat))
        The buffered beats, in order; a beat shows up 3 cycles after it arrived, one beat per cycle.
    o_live : Out(stream.Signature(LiveBeat, always_ready=True))
        The body FIFO's write side, in the cycle of the write (the same cycle as the input beat): every buffered
        beat and every truncation beat, ``first`` on a packet's first body beat, which is also the cycle its header
        is written. The arbiter frames packets from here when it can take them without a wait (cut-through).
    headers_queued : Out(1)
        A header waits: in the head register or in the FIFO behind it (registered state only).
    overflow : Out(32)
        Wrapping count of packets lost to buffer limits: refused whole at their first beat because either FIFO
        lacks room for a longest packet, or cut short because they were longer than ``max_payload_bytes``.
    runt_packets : Out(32)
        Wrapping count of packets shorter than the 20-byte header (dropped), including packets interrupted by
        a new ``first`` before their header was complete.
    cut_packets : Out(32)
        Wrapping count of packets given up before their last beat: a pause longer than ``stall_timeout``, or a
        new ``first`` in the middle of the body.
    session : In(80)
        The session each header's ``session_match`` is computed against (the arbiter's current session).
    session_change : In(1)
        ``session`` takes another value at the end of this cycle: the ``session_match`` of the headers already
        buffered (or written this cycle) is out of date.
    session_match_valid : Out(1)
        The head's ``session_match`` is up to date: after a ``session_change``, low until the headers buffered
        then have been read.

    Notes
    -----
    Throughput: one beat per cycle, never stalls. A packet given up ends with a ``truncated`` beat, so the
    arbiter never waits for a ``last`` that will not come.
    """

    i_payload: In(stream.Signature(PayloadBeat, always_ready=True))
    o_header: Out(stream.Signature(MoldUdp64Header))
    o_body: Out(stream.Signature(BufferedBeat))
    o_live: Out(stream.Signature(LiveBeat, always_ready=True))
    headers_queued: Out(1)
    overflow: Out(32)
    runt_packets: Out(32)
    cut_packets: Out(32)
    session: In(80)
    session_change: In(1)
    session_match_valid: Out(1)

    def __init__(self, *, body_depth=512, header_depth=16, max_payload_bytes=1472, stall_timeout=64):
        # Beats from payload byte 16 (start of beat 2) to the end of the longest payload.
        self._max_body_beats = -(-(max_payload_bytes - _HEADER_LAST_BEAT * BEAT_BYTES) // BEAT_BYTES)
        # A packet admitted at its first beat must fit whole, plus its truncation beat, plus the truncation beat
        # of an interrupted older packet written in that same cycle.
        self._reserve = self._max_body_beats + 2
        if body_depth < self._reserve:
            raise ValueError(f"body_depth {body_depth} cannot hold a {max_payload_bytes}-byte payload")
        self._body_depth = body_depth
        self._header_depth = header_depth
        self._stall_timeout = stall_timeout
        super().__init__()

    def elaborate(self, platform):
        m = Module()

        m.submodules.header_fifo = header_fifo = fifo.SyncFIFO(width=MoldUdp64Header.as_shape().size,
                                                               depth=self._header_depth - 1)
        m.submodules.body_fifo = body_fifo = fifo.SyncFIFOBuffered(width=BufferedBeat.as_shape().size,
                                                                   depth=self._body_depth)
        # Output register after the block RAM (its clock-to-output is slow): the arbiter's decision reads
        # ``last``/``error`` of the head beat.
        body_out_valid = Signal()
        body_out = Signal(BufferedBeat)
        body_load = ~body_out_valid | self.o_body.ready
        m.d.comb += [
            self.o_body.valid.eq(body_out_valid),
            self.o_body.payload.eq(body_out),
            body_fifo.r_en.eq(body_load),
        ]
        with m.If(body_load):
            m.d.sync += [body_out_valid.eq(body_fifo.r_rdy), body_out.eq(body_fifo.r_data)]

        beat = self.i_payload.payload
        arriving = self.i_payload.valid

        # Where the next arriving beat falls in its packet.
        WAIT_FIRST, HEADER_BEAT_1, HEADER_BEAT_2, BODY, DISCARD = range(5)
        position = Signal(range(5), init=WAIT_FIRST)
        header_beat_0 = Signal(64)
        header_beat_1 = Signal(64)
        body_beats = Signal(range(self._max_body_beats + 1))
        body_full = Signal()  # body_beats == _max_body_beats, kept in a register

        head_valid = Signal()
        # The header FIFO takes one entry per admitted packet, the body FIFO at most `_reserve` beats: checking
        # both at the first beat means a packet never runs out of room half way.
        room = ((self._body_depth - body_fifo.w_level >= self._reserve) &
                (header_fifo.w_level + head_valid < self._header_depth))

        lanes = [beat.data[8 * lane:8 * lane + 8] for lane in range(BEAT_BYTES)]
        header_bytes = ([header_beat_0[8 * lane:8 * lane + 8] for lane in range(BEAT_BYTES)] +
                        [header_beat_1[8 * lane:8 * lane + 8] for lane in range(BEAT_BYTES)] + lanes[:4])
        header = MoldUdp64Header(header_fifo.w_data)
        header_write = Signal()

        # The head header sits in a register (the arbiter compares it at once): a header goes there directly
        # when the FIFO behind it is empty, so it still shows up 1 cycle after it was written.
        head = Signal(MoldUdp64Header)
        head_load = ~head_valid | self.o_header.ready
        m.d.comb += [
            self.o_header.valid.eq(head_valid),
            self.o_header.payload.eq(head),
            header_fifo.r_en.eq(head_load),
            header_fifo.w_en.eq(header_write & ~(head_load & ~header_fifo.r_rdy)),
        ]
        m.d.comb += self.headers_queued.eq(head_valid | header_fifo.r_rdy)
        with m.If(head_load):
            m.d.sync += [
                head_valid.eq(header_fifo.r_rdy | header_write),
                head.eq(Mux(header_fifo.r_rdy, header_fifo.r_data, header_fifo.w_data)),
            ]
        sequence = _big_endian(header_bytes[10:18])
        count = _big_endian(header_bytes[18:20])
        m.d.comb += [
            header.session.eq(_big_endian(header_bytes[0:10])),
            header.sequence.eq(sequence),
            header.count.eq(count),
            header.end.eq(sequence + count),
            header.complete.eq(beat.last),
            header.error.eq(beat.last & beat.error),
            header.heartbeat.eq(count == 0),
            header.end_of_session.eq(count == 0xFFFF),
            header.session_match.eq(_big_endian(header_bytes[0:10]) == self.session),
        ]

        # Headers whose session_match may be out of date: all those buffered when the session changed (a
        # header written in that same cycle included), read out first.
        stale_headers = Signal(range(self._header_depth + 1))
        stale_clear = Signal(init=1)
        header_read = self.o_header.ready & head_valid
        buffered = Signal(range(self._header_depth + 2))
        m.d.comb += [
            self.session_match_valid.eq(stale_clear),
            buffered.eq(header_fifo.r_level + head_valid + header_write),
        ]
        with m.If(self.session_change):
            m.d.sync += [
                stale_headers.eq(Mux(header_read, buffered - 1, buffered)),
                stale_clear.eq(Mux(header_read, buffered == 1, buffered == 0)),
            ]
        with m.Elif(header_read & ~stale_clear):
            m.d.sync += [stale_headers.eq(stale_headers - 1), stale_clear.eq(stale_headers == 1)]

        body = BufferedBeat(body_fifo.w_data)
        truncation_beat = Const({"last": 1, "truncated": 1}, BufferedBeat)
        write_truncation = Signal()
        m.d.comb += [
            body.data.eq(beat.data),
            body.keep.eq(beat.keep),
            body.last.eq(beat.last),
            body.error.eq(beat.error),
            body.stamp.eq(beat.stamp),
        ]
        # The truncation beat: an empty last beat (its data and stamp are left over, and mean nothing).
        with m.If(write_truncation):
            m.d.comb += [
                body.keep.eq(truncation_beat.keep),
                body.last.eq(truncation_beat.last),
                body.error.eq(truncation_beat.error),
                body.truncated.eq(truncation_beat.truncated),
            ]

        m.d.comb += [
            self.o_live.valid.eq(body_fifo.w_en),
            self.o_live.payload.beat.eq(body),
            self.o_live.payload.first.eq(header_write),
        ]

        # Outcomes counted this cycle (an interrupted packet and the new one may both count in one cycle).
        runt_interrupted = Signal()
        runt_ended = Signal()
        refused = Signal()
        too_long = Signal()
        cut = Signal()

        with m.If(arriving & beat.first):
            with m.If(position == BODY):
                m.d.comb += [cut.eq(1), write_truncation.eq(1), body_fifo.w_en.eq(1)]
            with m.Elif((position == HEADER_BEAT_1) | (position == HEADER_BEAT_2)):
                m.d.comb += runt_interrupted.eq(1)
            m.d.sync += header_beat_0.eq(beat.data)
            with m.If(beat.last):
                m.d.comb += runt_ended.eq(1)
                m.d.sync += position.eq(WAIT_FIRST)
            with m.Elif(room):
                m.d.sync += position.eq(HEADER_BEAT_1)
            with m.Else():
                m.d.comb += refused.eq(1)
                m.d.sync += position.eq(DISCARD)
        with m.Elif(arriving):
            with m.Switch(position):
                with m.Case(HEADER_BEAT_1):
                    m.d.sync += header_beat_1.eq(beat.data)
                    with m.If(beat.last):
                        m.d.comb += runt_ended.eq(1)
                        m.d.sync += position.eq(WAIT_FIRST)
                    with m.Else():
                        m.d.sync += position.eq(HEADER_BEAT_2)
                with m.Case(HEADER_BEAT_2):
                    # keep is contiguous from lane 0: lane 3 present means the 20-byte header is complete.
                    with m.If(beat.keep[3]):
                        m.d.comb += [header_write.eq(1), body_fifo.w_en.eq(1)]
                        m.d.sync += [body_beats.eq(1), body_full.eq(self._max_body_beats == 1), position.eq(BODY)]
                    with m.Else():
                        m.d.comb += runt_ended.eq(1)
                        m.d.sync += position.eq(DISCARD)
                    with m.If(beat.last):
                        m.d.sync += position.eq(WAIT_FIRST)
                with m.Case(BODY):
                    m.d.comb += body_fifo.w_en.eq(1)
                    with m.If(body_full):
                        m.d.comb += [too_long.eq(1), write_truncation.eq(1)]
                        m.d.sync += position.eq(DISCARD)
                    with m.Else():
                        m.d.sync += [body_beats.eq(body_beats + 1),
                                     body_full.eq(body_beats == self._max_body_beats - 1)]
                    with m.If(beat.last):
                        m.d.sync += position.eq(WAIT_FIRST)
                with m.Case(DISCARD):
                    with m.If(beat.last):
                        m.d.sync += position.eq(WAIT_FIRST)

        idle_cycles = Signal(range(self._stall_timeout + 1))
        stall_due = Signal(init=self._stall_timeout == 1)  # idle_cycles == stall_timeout - 1, in a register
        with m.If(arriving | (position != BODY)):
            m.d.sync += [idle_cycles.eq(0), stall_due.eq(self._stall_timeout == 1)]
        with m.Elif(stall_due):
            m.d.comb += [cut.eq(1), write_truncation.eq(1), body_fifo.w_en.eq(1)]
            m.d.sync += position.eq(WAIT_FIRST)
        with m.Else():
            m.d.sync += [idle_cycles.eq(idle_cycles + 1), stall_due.eq(idle_cycles == self._stall_timeout - 2)]

        # The counters add one cycle later (registered increments).
        outcomes = Signal(5)
        m.d.sync += [
            outcomes.eq(Cat(refused, too_long, runt_interrupted, runt_ended, cut)),
            self.overflow.eq(self.overflow + outcomes[0] + outcomes[1]),
            self.runt_packets.eq(self.runt_packets + outcomes[2] + outcomes[3]),
            self.cut_packets.eq(self.cut_packets + outcomes[4]),
        ]

        return m
