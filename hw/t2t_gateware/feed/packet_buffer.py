"""Per-feed MoldUDP64 header parsing and packet buffering, in front of the A/B arbiter."""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import BEAT_BYTES, STAMP_BITS, PayloadBeat

__all__ = ["MOLD_HEADER_BYTES", "MOLD_BODY_LANE", "MoldUdp64Header", "BufferedBeat", "MoldUdp64PacketBuffer"]

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
    is 0 and means nothing yet.
    """
    session: 80
    sequence: 64
    end: 64
    count: 16
    complete: 1
    error: 1


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
        The buffered beats, in order; a beat shows up 2 cycles after it arrived, one beat per cycle.
    overflow : Out(32)
        Wrapping count of packets lost to buffer limits: refused whole at their first beat because either FIFO
        lacks room for a longest packet, or cut short because they were longer than ``max_payload_bytes``.
    runt_packets : Out(32)
        Wrapping count of packets shorter than the 20-byte header (dropped), including packets interrupted by
        a new ``first`` before their header was complete.
    cut_packets : Out(32)
        Wrapping count of packets given up before their last beat: a pause longer than ``stall_timeout``, or a
        new ``first`` in the middle of the body.

    Notes
    -----
    Throughput: one beat per cycle, never stalls. A packet given up ends with a ``truncated`` beat, so the
    arbiter never waits for a ``last`` that will not come.
    """

    i_payload: In(stream.Signature(PayloadBeat, always_ready=True))
    o_header: Out(stream.Signature(MoldUdp64Header))
    o_body: Out(stream.Signature(BufferedBeat))
    overflow: Out(32)
    runt_packets: Out(32)
    cut_packets: Out(32)

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
                                                               depth=self._header_depth)
        m.submodules.body_fifo = body_fifo = fifo.SyncFIFOBuffered(width=BufferedBeat.as_shape().size,
                                                                   depth=self._body_depth)
        m.d.comb += [
            self.o_header.valid.eq(header_fifo.r_rdy),
            self.o_header.payload.eq(header_fifo.r_data),
            header_fifo.r_en.eq(self.o_header.ready),
            self.o_body.valid.eq(body_fifo.r_rdy),
            self.o_body.payload.eq(body_fifo.r_data),
            body_fifo.r_en.eq(self.o_body.ready),
        ]

        beat = self.i_payload.payload
        arriving = self.i_payload.valid

        # Where the next arriving beat falls in its packet.
        WAIT_FIRST, HEADER_BEAT_1, HEADER_BEAT_2, BODY, DISCARD = range(5)
        position = Signal(range(5), init=WAIT_FIRST)
        header_beat_0 = Signal(64)
        header_beat_1 = Signal(64)
        body_beats = Signal(range(self._max_body_beats + 1))

        # The header FIFO takes one entry per admitted packet, the body FIFO at most `_reserve` beats: checking
        # both at the first beat means a packet never runs out of room half way.
        room = ((self._body_depth - body_fifo.w_level >= self._reserve) &
                (header_fifo.w_level < self._header_depth))

        lanes = [beat.data[8 * lane:8 * lane + 8] for lane in range(BEAT_BYTES)]
        header_bytes = ([header_beat_0[8 * lane:8 * lane + 8] for lane in range(BEAT_BYTES)] +
                        [header_beat_1[8 * lane:8 * lane + 8] for lane in range(BEAT_BYTES)] + lanes[:4])
        header = MoldUdp64Header(header_fifo.w_data)
        sequence = _big_endian(header_bytes[10:18])
        count = _big_endian(header_bytes[18:20])
        m.d.comb += [
            header.session.eq(_big_endian(header_bytes[0:10])),
            header.sequence.eq(sequence),
            header.count.eq(count),
            header.end.eq(sequence + count),
            header.complete.eq(beat.last),
            header.error.eq(beat.last & beat.error),
        ]

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
        with m.If(write_truncation):
            m.d.comb += body.eq(truncation_beat)

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
                        m.d.comb += [header_fifo.w_en.eq(1), body_fifo.w_en.eq(1)]
                        m.d.sync += [body_beats.eq(1), position.eq(BODY)]
                    with m.Else():
                        m.d.comb += runt_ended.eq(1)
                        m.d.sync += position.eq(DISCARD)
                    with m.If(beat.last):
                        m.d.sync += position.eq(WAIT_FIRST)
                with m.Case(BODY):
                    m.d.comb += body_fifo.w_en.eq(1)
                    with m.If(body_beats == self._max_body_beats):
                        m.d.comb += [too_long.eq(1), write_truncation.eq(1)]
                        m.d.sync += position.eq(DISCARD)
                    with m.Else():
                        m.d.sync += body_beats.eq(body_beats + 1)
                    with m.If(beat.last):
                        m.d.sync += position.eq(WAIT_FIRST)
                with m.Case(DISCARD):
                    with m.If(beat.last):
                        m.d.sync += position.eq(WAIT_FIRST)

        idle_cycles = Signal(range(self._stall_timeout + 1))
        with m.If(arriving | (position != BODY)):
            m.d.sync += idle_cycles.eq(0)
        with m.Elif(idle_cycles == self._stall_timeout - 1):
            m.d.comb += [cut.eq(1), write_truncation.eq(1), body_fifo.w_en.eq(1)]
            m.d.sync += position.eq(WAIT_FIRST)
        with m.Else():
            m.d.sync += idle_cycles.eq(idle_cycles + 1)

        m.d.sync += [
            self.overflow.eq(self.overflow + refused + too_long),
            self.runt_packets.eq(self.runt_packets + runt_interrupted + runt_ended),
            self.cut_packets.eq(self.cut_packets + cut),
        ]

        return m
