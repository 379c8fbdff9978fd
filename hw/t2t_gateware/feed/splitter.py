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
    next_locate : Out(16)
        The stock locate (bytes 1 and 2) of the message ``o_message`` carries next cycle, if it carries one: a
        lookahead for a table lookup two cycles ahead of the decoded event (:class:`SymbolFilter`).
    truncated_messages, length_errors, unknown_types, count_errors : Out(32)
        Wrapping counters.

    Notes
    -----
    Latency: a message leaves 2 cycles after the beat that carried its last byte (an input register, where every
    lane's byte is looked up as a possible type byte, then the framing stage). Throughput: one beat per cycle,
    whatever the message mix. The error counters count up to 3 cycles after the beat. Each message is written into one of two message registers as its beats pass
    (byte ``j`` of the message comes from lane ``(start + j) % 8``, a fixed rotation per message), so no wide
    shifter sits after the last beat.
    """

    i_blocks: In(stream.Signature(MessageBlockBeat, always_ready=True))
    o_message: Out(stream.Signature(ItchMessage, always_ready=True))
    next_locate: Out(16)
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

        # Input stage: the beat is registered, and every lane's byte is looked up as if it were a type byte
        # (its table length, and whether the two bytes before it, the length prefix, match it), so that the
        # framing stage only selects the result of the lane where the type byte is.
        incoming = self.i_blocks.payload
        in_lanes = [incoming.data[8 * lane:8 * lane + 8] for lane in range(BEAT_BYTES)]
        # The last two bytes of the previous beat, for a length prefix split across beats.
        carry = Signal(8 * _PREFIX_BYTES)
        in_window = [carry[8 * lane:8 * lane + 8] for lane in range(_PREFIX_BYTES)] + in_lanes
        with m.If(self.i_blocks.valid):
            m.d.sync += carry.eq(incoming.data[-8 * _PREFIX_BYTES:])

        arriving = Signal()
        beat = Signal(MessageBlockBeat)
        valid_lanes = Signal(range(BEAT_BYTES + 1))
        lane_length = [Signal(6, name=f"lane{lane}_length") for lane in range(BEAT_BYTES)]
        lane_match = [Signal(name=f"lane{lane}_match") for lane in range(BEAT_BYTES)]
        # The lane holds a byte (lane < valid_lanes).
        lane_present = [Signal(name=f"lane{lane}_present") for lane in range(BEAT_BYTES)]
        # For a type byte in that lane: the position of the message's last byte from lane 0 of this beat, and the
        # position of the next block's type byte from lane 0 of the next beat.
        lane_end = [Signal(7, name=f"lane{lane}_end") for lane in range(BEAT_BYTES)]
        lane_next = [Signal(7, name=f"lane{lane}_next") for lane in range(BEAT_BYTES)]
        count_zero = Signal()
        count_one = Signal()
        m.d.sync += arriving.eq(self.i_blocks.valid)
        with m.If(self.i_blocks.valid):
            m.d.sync += [beat.eq(incoming), count_zero.eq(incoming.count == 0), count_one.eq(incoming.count == 1)]
            m.d.sync += valid_lanes.eq(BEAT_BYTES)
            with m.If(incoming.last):
                m.d.sync += valid_lanes.eq(0)
                for lane in range(BEAT_BYTES):
                    with m.If(incoming.keep[lane]):
                        m.d.sync += valid_lanes.eq(lane + 1)
            for lane in range(BEAT_BYTES):
                # Table lookups with the lane's constants folded in (no adder after the lookup).
                table_length = Signal(6, name=f"in_lane{lane}_length")
                table_end = Signal(7, name=f"in_lane{lane}_end")
                table_next = Signal(7, name=f"in_lane{lane}_next")
                known = Signal(name=f"in_lane{lane}_known")
                with m.Switch(in_lanes[lane]):
                    for letter, message_length in self._message_lengths.items():
                        with m.Case(ord(letter)):
                            m.d.comb += [
                                table_length.eq(message_length),
                                table_end.eq(lane + message_length - 1),
                                table_next.eq(lane + message_length + _PREFIX_BYTES - BEAT_BYTES),
                                known.eq(1),
                            ]
                prefix = Cat(in_window[lane + 1], in_window[lane])
                m.d.sync += [
                    lane_present[lane].eq(~incoming.last | incoming.keep[lane]),
                    lane_length[lane].eq(table_length),
                    lane_end[lane].eq(table_end),
                    lane_next[lane].eq(table_next),
                    lane_match[lane].eq(known & (prefix[6:] == 0) & (prefix[:6] == table_length)),
                ]
        lanes = [beat.data[8 * lane:8 * lane + 8] for lane in range(BEAT_BYTES)]

        # Position of the next block's type byte, counted from lane 0 of the next beat to arrive.
        type_position = Signal(6, init=self._first_type_position)
        index = Signal(16)
        packet_count = Signal(16)
        packet_skip = Signal(16)
        dropping = Signal()
        count = Mux(beat.first, beat.count, packet_count)
        skip = Mux(beat.first, beat.skip, packet_skip)

        # The block header whose type byte is in this beat.
        type_lane = type_position[:3]
        # type_position < BEAT_BYTES and < valid_lanes (keep is contiguous from lane 0).
        type_here = (type_position[3:] == 0) & Array(lane_present)[type_lane]
        type_length = Array(lane_length)[type_lane]
        length_matches = Array(lane_match)[type_lane]
        header = arriving & ~dropping & type_here
        # index >= count (index is 0 on a packet's first beat), from registers: at_count is index >= packet_count.
        at_count = Signal()
        count_reached = Mux(beat.first, count_zero, at_count)
        beyond_count = header & count_reached
        unknown = header & ~beyond_count & (type_length == 0)
        bad_length = header & ~beyond_count & ~length_matches & (type_length != 0)
        good = header & ~beyond_count & length_matches
        # Only used when good, i.e. when the length prefix equals the table length.
        message_end = Array(lane_end)[type_lane]
        next_type_position = Array(lane_next)[type_lane]

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
            slot_ends_whole.append(ends & Array(lane_present)[slot_end_lane[s]])
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
            m.d.sync += at_count.eq(Mux(beat.first, Mux(good, count_zero | count_one, count_zero),
                                        Mux(good, index + 1 >= packet_count, at_count)))
            with m.If(good):
                m.d.sync += type_position.eq(next_type_position)
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
        # The type byte (the decoder's first look) from its own register: it was in the slot before the last beat.
        delivered_type = Signal(8)
        with m.If(delivered):
            m.d.sync += delivered_type.eq(Mux(slot_ends[1], slot_bytes[1][0], slot_bytes[0][0]))
        m.d.comb += self.o_message.payload.bytes[0].eq(delivered_type)
        # The stock locate (bytes 1 and 2) of the message that leaves next cycle, if one does: already in its
        # register, since a message's last byte is never in the beat of its locate.
        m.d.comb += self.next_locate.eq(Mux(slot_ends[1], Cat(slot_bytes[1][2], slot_bytes[1][1]),
                                            Cat(slot_bytes[0][2], slot_bytes[0][1])))

        # End of packet: what was cut off, and whether the count held.
        ending = arriving & beat.last
        cut_in_flight = ending & ((slot_active[0] & ~slot_ends_whole[0]) | (slot_active[1] & ~slot_ends_whole[1]))
        # A message never ends in the beat of its type byte (it is longer than a beat).
        cut_at_header = good & beat.last
        # A block whose length prefix started but whose type byte did not arrive.
        tail = ending & ~dropping & ~type_here & (type_position < valid_lanes + _PREFIX_BYTES)
        tail_beyond_count = tail & count_reached
        truncated = cut_in_flight | cut_at_header | (tail & ~tail_beyond_count)
        # Whether the count held, worked out from registers over the next two cycles.
        # complete_messages = index + good - cut, over the next cycles from registers.
        index_now = Signal(16)
        good_now = Signal()
        cut_now = Signal()
        count_checked = Signal()
        packet_count_now = Signal(16)
        m.d.sync += [
            index_now.eq(index),
            good_now.eq(good),
            cut_now.eq(cut_in_flight | cut_at_header),
            count_checked.eq(ending & ~dropping & ~(beyond_count | unknown | bad_length | tail_beyond_count)),
            packet_count_now.eq(count),
        ]
        complete_messages = Signal(16)
        short_checked = Signal()
        packet_count_then = Signal(16)
        m.d.sync += [
            complete_messages.eq(Mux(good_now & ~cut_now, index_now + 1,
                                     Mux(~good_now & cut_now, index_now - 1, index_now))),
            short_checked.eq(count_checked),
            packet_count_then.eq(packet_count_now),
        ]
        short = Signal()
        m.d.sync += short.eq(short_checked & (complete_messages < packet_count_then))

        # The counters add one cycle later (registered increments).
        increments = Signal(4)
        count_error_1 = Signal()
        count_error = Signal()
        m.d.sync += [
            increments.eq(Cat(truncated, bad_length, unknown, beyond_count | tail_beyond_count)),
            count_error_1.eq(increments[3]),
            count_error.eq(count_error_1),
        ]
        m.d.sync += [
            self.truncated_messages.eq(self.truncated_messages + increments[0]),
            self.length_errors.eq(self.length_errors + increments[1]),
            self.unknown_types.eq(self.unknown_types + increments[2]),
            self.count_errors.eq(self.count_errors + (count_error | short)),
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
