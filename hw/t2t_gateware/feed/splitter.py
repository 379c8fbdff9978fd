"""Frames the length-prefixed message blocks of MoldUDP64 packets and aligns each message to byte 0."""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import BEAT_BYTES
from .itch import KEPT_MESSAGE_BYTES, MESSAGE_LENGTHS, ItchMessage
from .moldudp64 import MessageBlockBeat
from .packet_buffer import MOLD_BODY_LANE

__all__ = ["COUNTERS", "MessageSplitter"]

#: The wrapping event counters (``Out(32)`` ports) of :class:`MessageSplitter`.
COUNTERS = ("truncated_messages", "length_errors", "unknown_types", "count_errors")

# Two bytes of big-endian length before every message.
_PREFIX_BYTES = 2
# Messages in flight at once: one ending and the next starting in the same beat.
_SLOTS = 2


class MessageSplitter(wiring.Component):
    """Splits packets of 2-byte-length-prefixed message blocks into aligned, length-checked messages.

    A block may start at any lane and span beats; blocks never span packets. Each block's type byte is looked
    up in ``message_lengths``; the message is delivered only if its length prefix equals the type's length.

    Bad input, counted and then the rest of the packet dropped (blocks after it are not framed):

    * ``unknown_types``: the type byte is not in the table;
    * ``length_errors``: the length prefix differs from the type's length (0 included);
    * ``count_errors``: a block beyond the packet's message ``count``; also counted (without dropping anything)
      when a packet ends with fewer complete messages than its ``count``.

    ``truncated_messages`` counts a block cut by the end of its packet (also a count error when the count
    promised it).

    The first ``skip`` messages of a packet are framed and checked but not delivered (the arbiter's overlap).

    Parameters
    ----------
    first_block_lane : int
        Lane of the first beat where the first block starts (4, after the 20-byte MoldUDP64 header).
    message_lengths : dict of str to int
        Type letter to message length, each 9..63: longer than a beat, so that at most one message starts and
        one ends in any beat.

    Attributes
    ----------
    i_blocks : In(stream.Signature(MessageBlockBeat, always_ready=True))
        Message blocks of accepted packets, framed by ``first``/``last`` (every packet ends with ``last`` before
        the next ``first``, as the arbiter guarantees); ``count`` and ``skip`` are taken from the ``first`` beat.
        Beats may pause inside a packet.
    o_message : Out(stream.Signature(ItchMessage, always_ready=True))
        One aligned message per cycle at most, never held back.
    truncated_messages, length_errors, unknown_types, count_errors : Out(32)
        Wrapping counters.

    Notes
    -----
    Latency: a message leaves 1 cycle after the beat that carried its last byte. Throughput: one beat per cycle,
    whatever the message mix. Each message is written into one of two message registers as its beats pass
    (byte ``j`` of the message comes from lane ``(start + j) % 8``, a fixed rotation per message), so no wide
    shifter sits after the last beat.
    """

    i_blocks: In(stream.Signature(MessageBlockBeat, always_ready=True))
    o_message: Out(stream.Signature(ItchMessage, always_ready=True))
    truncated_messages: Out(32)
    length_errors: Out(32)
    unknown_types: Out(32)
    count_errors: Out(32)

    def __init__(self, *, first_block_lane=MOLD_BODY_LANE, message_lengths=MESSAGE_LENGTHS):
        if min(message_lengths.values()) <= BEAT_BYTES or max(message_lengths.values()) > 63:
            raise ValueError("message lengths must lie in 9..63")
        self._first_type_position = first_block_lane + _PREFIX_BYTES
        self._message_lengths = message_lengths
        super().__init__()

    def elaborate(self, platform):
        m = Module()

        beat = self.i_blocks.payload
        arriving = self.i_blocks.valid
        lanes = [beat.data[8 * lane:8 * lane + 8] for lane in range(BEAT_BYTES)]
        # The last two bytes of the previous beat, for a length prefix split across beats.
        carry = Signal(8 * _PREFIX_BYTES)
        window = [carry[8 * lane:8 * lane + 8] for lane in range(_PREFIX_BYTES)] + lanes

        # Position of the next block's type byte, counted from lane 0 of the next beat to arrive.
        type_position = Signal(6, init=self._first_type_position)
        index = Signal(16)
        packet_count = Signal(16)
        packet_skip = Signal(16)
        dropping = Signal()
        count = Mux(beat.first, beat.count, packet_count)
        skip = Mux(beat.first, beat.skip, packet_skip)

        valid_lanes = Signal(range(BEAT_BYTES + 1))
        m.d.comb += valid_lanes.eq(BEAT_BYTES)
        with m.If(beat.last):
            m.d.comb += valid_lanes.eq(0)
            for lane in range(BEAT_BYTES):
                with m.If(beat.keep[lane]):
                    m.d.comb += valid_lanes.eq(lane + 1)

        # The block header whose type byte is in this beat.
        type_lane = type_position[:3]
        type_here = (type_position < BEAT_BYTES) & (type_position < valid_lanes)
        length = Cat(Array(window[1:9])[type_lane], Array(window[0:8])[type_lane])
        type_byte = Array(lanes)[type_lane]
        type_length = Signal(6)
        with m.Switch(type_byte):
            for letter, message_length in self._message_lengths.items():
                with m.Case(ord(letter)):
                    m.d.comb += type_length.eq(message_length)
        header = arriving & ~dropping & type_here
        beyond_count = header & (index >= count)
        unknown = header & ~beyond_count & (type_length == 0)
        bad_length = header & ~beyond_count & (type_length != 0) & (length != type_length)
        good = header & ~beyond_count & (type_length != 0) & (length == type_length)
        message_end = type_lane + length[:6] - 1
        next_type_position = type_lane + length[:6] + _PREFIX_BYTES

        # Two message registers used in turn. The next one is always loading at its first beat offset, so it
        # holds the right bytes when its type byte arrives, without waiting for the header to be checked.
        next_slot = Signal()
        slot_rotation = [Signal(3, name=f"slot{s}_rotation", init=self._first_type_position % BEAT_BYTES if s == 0
                                else 0) for s in range(_SLOTS)]
        beat_groups = -(-KEPT_MESSAGE_BYTES // BEAT_BYTES) + 1
        slot_beat = [Signal(beat_groups, name=f"slot{s}_beat", init=1) for s in range(_SLOTS)]
        slot_active = [Signal(name=f"slot{s}_active") for s in range(_SLOTS)]
        slot_beats_left = [Signal(4, name=f"slot{s}_beats_left") for s in range(_SLOTS)]
        slot_end_lane = [Signal(3, name=f"slot{s}_end_lane") for s in range(_SLOTS)]
        slot_deliver = [Signal(name=f"slot{s}_deliver") for s in range(_SLOTS)]
        slot_bytes = [Signal(data.ArrayLayout(8, KEPT_MESSAGE_BYTES), name=f"slot{s}_bytes") for s in range(_SLOTS)]

        slot_ends = []
        slot_ends_whole = []
        for s in range(_SLOTS):
            loading = arriving & (slot_active[s] | (next_slot == s))
            rotated = [Array(lanes)[(lane + slot_rotation[s])[:3]] for lane in range(BEAT_BYTES)]
            for byte in range(KEPT_MESSAGE_BYTES):
                group, lane = divmod(byte, BEAT_BYTES)
                # Byte j of the message sits in beat (rotation + j) // 8 counted from the type byte's beat.
                wraps = (lane + slot_rotation[s])[3]
                with m.If(loading & Mux(wraps, slot_beat[s][group + 1], slot_beat[s][group])):
                    m.d.sync += slot_bytes[s][byte].eq(rotated[lane])
            ends = slot_active[s] & (slot_beats_left[s] == 1)
            slot_ends.append(ends)
            slot_ends_whole.append(ends & (slot_end_lane[s] < valid_lanes))
            with m.If(arriving & slot_active[s]):
                m.d.sync += [slot_beat[s].eq(slot_beat[s] << 1), slot_beats_left[s].eq(slot_beats_left[s] - 1)]
                with m.If(ends):
                    m.d.sync += slot_active[s].eq(0)

        with m.If(good):
            m.d.sync += [index.eq(index + 1), next_slot.eq(~next_slot)]
            for s in range(_SLOTS):
                with m.If(next_slot == s):
                    m.d.sync += [
                        slot_active[s].eq(1),
                        slot_beat[s].eq(slot_beat[s] << 1),
                        slot_beats_left[s].eq(message_end[3:]),
                        slot_end_lane[s].eq(message_end[:3]),
                        slot_deliver[s].eq(index >= skip),
                        # The other register takes the next message, whose rotation is known now.
                        slot_rotation[1 - s].eq(next_type_position[:3]),
                        slot_beat[1 - s].eq(1),
                    ]

        with m.If(arriving):
            m.d.sync += carry.eq(beat.data[-8 * _PREFIX_BYTES:])
            with m.If(good):
                m.d.sync += type_position.eq(next_type_position - BEAT_BYTES)
            with m.Elif(type_position >= BEAT_BYTES):
                m.d.sync += type_position.eq(type_position - BEAT_BYTES)
            with m.If(beat.first):
                m.d.sync += [packet_count.eq(beat.count), packet_skip.eq(beat.skip)]
            with m.If(beyond_count | unknown | bad_length):
                m.d.sync += dropping.eq(1)

        # Delivery: at most one message ends per beat.
        delivered = Signal()
        delivered_slot = Signal()
        m.d.comb += delivered.eq(arriving & ((slot_ends_whole[0] & slot_deliver[0]) |
                                             (slot_ends_whole[1] & slot_deliver[1])))
        m.d.sync += self.o_message.valid.eq(delivered)
        with m.If(delivered):
            m.d.sync += [delivered_slot.eq(slot_ends[1]), self.o_message.payload.stamp.eq(beat.stamp)]
        m.d.comb += self.o_message.payload.bytes.eq(Mux(delivered_slot, slot_bytes[1], slot_bytes[0]))

        # End of packet: what was cut off, and whether the count held.
        ending = arriving & beat.last
        cut_in_flight = ending & ((slot_active[0] & ~slot_ends_whole[0]) | (slot_active[1] & ~slot_ends_whole[1]))
        # A message never ends in the beat of its type byte (it is longer than a beat).
        cut_at_header = good & beat.last
        # A block whose length prefix started but whose type byte did not arrive.
        tail = ending & ~dropping & ~type_here & (type_position < valid_lanes + _PREFIX_BYTES)
        tail_beyond_count = tail & (index >= count)
        truncated = cut_in_flight | cut_at_header | (tail & ~tail_beyond_count)
        complete_messages = index + good - (cut_in_flight | cut_at_header)
        short = (ending & ~dropping & ~(beyond_count | unknown | bad_length | tail_beyond_count) &
                 (complete_messages < count))

        m.d.sync += [
            self.truncated_messages.eq(self.truncated_messages + truncated),
            self.length_errors.eq(self.length_errors + bad_length),
            self.unknown_types.eq(self.unknown_types + unknown),
            self.count_errors.eq(self.count_errors + (beyond_count | tail_beyond_count | short)),
        ]

        with m.If(ending):
            m.d.sync += [
                type_position.eq(self._first_type_position),
                index.eq(0),
                dropping.eq(0),
                next_slot.eq(0),
                slot_rotation[0].eq(self._first_type_position % BEAT_BYTES),
                slot_beat[0].eq(1),
            ]
            m.d.sync += [slot_active[s].eq(0) for s in range(_SLOTS)]

        return m
