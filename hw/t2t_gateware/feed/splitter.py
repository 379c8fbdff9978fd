"""Frames one feed's MoldUDP64 message blocks into ITCH messages and decodes them into events, in two cycles."""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import BEAT_BYTES, STAMP_BITS, ItchEvent
from .itch import KEPT_MESSAGE_BYTES, MESSAGE_LENGTHS
from .itch_decoder import COMMON_FIELDS, DECODED_TYPES, SIDE_TYPES, TYPE_FIELDS
from .packet_buffer import MOLD_BODY_LANE

__all__ = ["COUNTERS", "LATENCY", "BodyBeat", "MessageSplitter"]

#: The wrapping event counters of the splitters (pulses on :attr:`MessageSplitter.errors`, bit ``i`` counts
#: ``COUNTERS[i]``; :class:`~.ingest.FeedIngest` adds them up).
COUNTERS = ("truncated_messages", "length_errors", "unknown_types", "count_errors")

#: Cycles from the input beat carrying a message's last byte to its event on ``o_event``.
LATENCY = 2

# Two bytes of big-endian length before every message.
_PREFIX_BYTES = 2
# Messages in flight at once: one ending and the next starting in the same beat.
_SLOTS = 2
# Message bytes not kept: the tracking number (decoded by no event).
_UNUSED_BYTES = (3, 4)
# Bytes of the first beat that carry the header's message count (big-endian).
_COUNT_LANES = (MOLD_BODY_LANE - 2, MOLD_BODY_LANE - 1)


class BodyBeat(data.Struct):
    """One beat of a MoldUDP64 packet from payload beat 2 on, as a :class:`MessageSplitter` takes it.

    The ``first`` beat is payload beat 2: its lanes 0..3 end the header (lanes 2..3 hold the big-endian message
    count), blocks start at lane 4. ``keep`` as in :class:`~.streams.PayloadBeat`. On the ``last`` beat,
    ``error`` is the frame's bad FCS and ``truncated`` says the packet was cut short (an empty last beat).
    ``replay`` (read on the ``first`` beat) says the packet is accepted from its start; otherwise it is framed
    undecided until :attr:`MessageSplitter.accept` comes. ``stamp``: see :class:`~.streams.PayloadBeat`.
    """
    data: 64
    keep: 8
    first: 1
    last: 1
    error: 1
    truncated: 1
    stamp: STAMP_BITS
    replay: 1


class MessageSplitter(wiring.Component):
    """Splits one feed's packets of 2-byte-length-prefixed message blocks, checks and decodes the messages.

    A block may start at any lane and span beats; blocks never span packets. Each block's type byte is looked
    up in ``message_lengths``; the message is delivered only if its length prefix equals the type's length.
    Delivered messages are counted per type (:attr:`counted`), and those of the decoded types (see
    :mod:`~.itch_decoder`) leave as events, if their stock locate is subscribed (or they are
    system events): the splitter reads the subscription table with :attr:`lookup_locate` as soon as a message's
    locate has arrived, at least two beats before its last byte (the read is over by then).

    Bad input, counted and then the rest of the packet dropped (blocks after it are not framed):

    * ``unknown_types``: the type byte is not in the table;
    * ``length_errors``: the length prefix differs from the type's length (0 included);
    * ``count_errors``: a block beyond the packet's message count; also counted (without dropping anything)
      when a packet ends with fewer complete messages than its count.

    ``truncated_messages`` counts a block cut by the end of its packet (also a count error when the count
    promised it).

    A packet is either accepted from its first beat (``replay``) or framed while its fate is still open: then
    nothing is delivered or counted until :attr:`accept`; the errors found meanwhile are counted then. A message
    that ends (or a packet that ends) while the packet is undecided is lost for this pass: :attr:`live_ok` drops,
    and the arbiter replays the packet from its buffer instead. :attr:`abort` forgets the packet being framed.
    The first ``skip`` messages of a ``replay`` packet are framed and checked but not delivered (the arbiter's
    overlap).

    Parameters
    ----------
    first_block_lane : int
        Lane of the first beat where the first block starts (4, after the 20-byte MoldUDP64 header).
    message_lengths : dict of str to int
        Type letter to message length, each 9..63: longer than a beat, so that at most one message starts and
        one ends in any beat.

    Attributes
    ----------
    i_beats : In(stream.Signature(BodyBeat, always_ready=True))
        Packets from payload beat 2 on (every packet ends with ``last`` before the next ``first``). Beats may
        pause inside a packet.
    skip : In(16)
        Messages of a ``replay`` packet already delivered; read from the cycle after its first beat on.
    accept, abort : In(1)
        Pulses: the packet being framed is accepted (nothing of it was lost: :attr:`live_ok` was high the cycle
        before); forget the packet being framed (the next beat is a ``first`` one).
    o_event : Out(stream.Signature(ItchEvent, always_ready=True))
        One event per delivered, decoded and subscribed message, never held back.
    unsubscribed : Out(1)
        Pulse, aligned with ``o_event``: a decoded message was held back by the subscription table.
    lookup_locate : Out(16), lookup_subscribed : In(1)
        Subscription table read port: the address, and the table bit for the address of the cycle before.
    counted : Out(1), counted_type : Out(8)
        A message was delivered (registered pulse), and its type byte.
    errors : Out(4)
        Pulses of :data:`COUNTERS` (bit ``i`` counts ``COUNTERS[i]``), up to 4 cycles after the beat.
    live_ok : Out(1)
        A packet is being framed undecided and nothing of it is lost so far, nor in this cycle: an
        :attr:`accept` next cycle delivers it whole.

    Notes
    -----
    Latency: a message's event is valid on ``o_event`` 2 cycles after the input beat that carried its last
    byte: an input register (where every lane's byte is looked up as a possible type byte, and the beat is
    rotated for both message registers), then the framing and decoding stage, whose event register is the
    output. Throughput: one beat per cycle, whatever the message mix; at most one message ends in a beat. Each
    message is written into one of two message registers as its beats pass (byte ``j`` of the message comes from
    lane ``(start + j) % 8``, a fixed rotation per message); the bytes of its last beat come from the input
    register, rotated a cycle earlier with the rotation of the message, which was known since the message
    before it started.
    """

    i_beats: In(stream.Signature(BodyBeat, always_ready=True))
    skip: In(16)
    accept: In(1)
    abort: In(1)
    o_event: Out(stream.Signature(ItchEvent, always_ready=True))
    unsubscribed: Out(1)
    lookup_locate: Out(16)
    lookup_subscribed: In(1)
    counted: Out(1)
    counted_type: Out(8)
    errors: Out(len(COUNTERS))
    live_ok: Out(1)

    def __init__(self, *, first_block_lane=MOLD_BODY_LANE, message_lengths=MESSAGE_LENGTHS):
        if min(message_lengths.values()) <= BEAT_BYTES or max(message_lengths.values()) > 63:
            raise ValueError("message lengths must lie in 9..63")
        self._first_type_position = first_block_lane + _PREFIX_BYTES
        self._message_lengths = message_lengths
        super().__init__()

    def elaborate(self, platform):
        m = Module()

        # Framing state that the input stage reads: each message register's rotation.
        next_slot = Signal()
        first_rotation = self._first_type_position % BEAT_BYTES
        slot_rotation = [Signal(3, name=f"slot{s}_rotation", init=first_rotation if s == 0 else 0)
                         for s in range(_SLOTS)]

        # --- Input stage ----------------------------------------------------------------------------------------
        # The beat is registered, every lane's byte is looked up as if it were a type byte (its table length, and
        # whether the two bytes before it, the length prefix, match it), so that the framing stage only selects the
        # result of the lane where the type byte is; and the beat is rotated for each message register.
        incoming = self.i_beats.payload
        incoming_valid = self.i_beats.valid
        in_lanes = [incoming.data[8 * lane:8 * lane + 8] for lane in range(BEAT_BYTES)]
        # The last two bytes of the previous beat, for a length prefix split across beats.
        carry = Signal(8 * _PREFIX_BYTES)
        in_window = [carry[8 * lane:8 * lane + 8] for lane in range(_PREFIX_BYTES)] + in_lanes
        with m.If(incoming_valid):
            m.d.sync += carry.eq(incoming.data[-8 * _PREFIX_BYTES:])

        arriving = Signal()
        beat = Signal(BodyBeat)
        m.d.sync += [arriving.eq(incoming_valid), beat.eq(incoming)]
        valid_lanes = Signal(range(BEAT_BYTES + 1))
        lane_known = [Signal(name=f"lane{lane}_known") for lane in range(BEAT_BYTES)]
        lane_match = [Signal(name=f"lane{lane}_match") for lane in range(BEAT_BYTES)]
        # The lane holds a byte (lane < valid_lanes).
        lane_present = [Signal(name=f"lane{lane}_present") for lane in range(BEAT_BYTES)]
        # lane_present & lane_match.
        lane_good = [Signal(name=f"lane{lane}_good") for lane in range(BEAT_BYTES)]
        # For a type byte in that lane: the position of the message's last byte from lane 0 of this beat, and the
        # position of the next block's type byte from lane 0 of the next beat.
        lane_end = [Signal(7, name=f"lane{lane}_end") for lane in range(BEAT_BYTES)]
        lane_next = [Signal(7, name=f"lane{lane}_next") for lane in range(BEAT_BYTES)]
        first_count = Signal(16)
        count_zero = Signal()
        count_one = Signal()
        in_count = Cat(in_lanes[_COUNT_LANES[1]], in_lanes[_COUNT_LANES[0]])
        m.d.sync += [first_count.eq(in_count), count_zero.eq(in_count == 0), count_one.eq(in_count == 1)]
        m.d.sync += valid_lanes.eq(BEAT_BYTES)
        with m.If(incoming.last):
            m.d.sync += valid_lanes.eq(0)
            for lane in range(BEAT_BYTES):
                with m.If(incoming.keep[lane]):
                    m.d.sync += valid_lanes.eq(lane + 1)
        # Table lookups with the lane's constants folded in (no adder after the lookup), written as two-level logic
        # (a comparator per letter, then ORs of them) so that synthesis keeps them shallow.
        lengths = sorted(set(self._message_lengths.values()))
        for lane in range(BEAT_BYTES):
            is_letter_in = {letter: Signal(name=f"in_lane{lane}_is_{letter}{'_' if letter.islower() else ''}")
                            for letter in self._message_lengths}
            for letter, signal in is_letter_in.items():
                m.d.comb += signal.eq(in_lanes[lane] == ord(letter))

            def any_of(letters_with, _lane_letters=is_letter_in):
                chosen = [_lane_letters[letter] for letter in self._message_lengths if letters_with(letter)]
                return Cat(*chosen).any() if chosen else 0

            known = any_of(lambda letter: True)
            table_end = Cat(any_of(lambda letter, b=b, lane=lane:
                                   (lane + self._message_lengths[letter] - 1) >> b & 1)
                            for b in range(7))
            table_next = Cat(any_of(lambda letter, b=b, lane=lane:
                                    (lane + self._message_lengths[letter] + _PREFIX_BYTES - BEAT_BYTES) >> b & 1)
                             for b in range(7))
            # The length prefix matches: it equals the length of the type this byte is (at most 63, so its high
            # ten bits are zero).
            prefix = Cat(in_window[lane + 1], in_window[lane])
            match = (prefix[6:] == 0) & Cat(
                (prefix[:6] == length) & any_of(lambda letter, length=length: self._message_lengths[letter] == length)
                for length in lengths).any()
            present = ~incoming.last | incoming.keep[lane]
            m.d.sync += [
                lane_good[lane].eq(present & match),
                lane_present[lane].eq(present),
                lane_known[lane].eq(known),
                lane_end[lane].eq(table_end),
                lane_next[lane].eq(table_next),
                lane_match[lane].eq(match),
            ]
        # The beat rotated for each message register: lane i holds the byte a message of that register has at an
        # offset = i (mod 8). Right for the message that ends in this beat, whose rotation was set at least one
        # beat before this one entered (when the message before it started).
        rotated_in = [[Signal(8, name=f"slot{s}_rotated{lane}") for lane in range(BEAT_BYTES)] for s in range(_SLOTS)]
        # Which decoded type each lane's byte is, as a type byte (one bit per letter of DECODED_TYPES).
        letters = list(DECODED_TYPES)
        lane_letters = [Signal(len(letters), name=f"lane{lane}_letters") for lane in range(BEAT_BYTES)]
        for lane in range(BEAT_BYTES):
            m.d.sync += lane_letters[lane].eq(Cat(in_lanes[lane] == ord(letter) for letter in letters))
        for s in range(_SLOTS):
            for lane in range(BEAT_BYTES):
                m.d.sync += rotated_in[s][lane].eq(Array(in_lanes)[(lane + slot_rotation[s])[:3]])

        lanes = [beat.data[8 * lane:8 * lane + 8] for lane in range(BEAT_BYTES)]

        # --- Framing stage -------------------------------------------------------------------------------------
        # Position of the next block's type byte, counted from lane 0 of the next beat to arrive.
        type_position = Signal(6, init=self._first_type_position)
        index = Signal(16)
        packet_count = Signal(16)
        packet_skip = Signal(16)
        dropping = Signal()
        count = Mux(beat.first, first_count, packet_count)
        skip = Mux(beat.first, Mux(beat.replay, self.skip, 0), packet_skip)

        # Whether the packet is accepted: from its first beat (replay), or from an accept pulse.
        accepted = Signal()
        accepted_now = Mux(arriving & beat.first, beat.replay, accepted) | self.accept

        # The block header whose type byte is in this beat.
        type_lane = type_position[:3]
        # type_position < BEAT_BYTES and < valid_lanes (keep is contiguous from lane 0).
        type_here = (type_position[3:] == 0) & Array(lane_present)[type_lane]
        type_known = Array(lane_known)[type_lane]
        length_matches = Array(lane_match)[type_lane]
        header = arriving & ~dropping & type_here
        # index >= count (index is 0 on a packet's first beat), from registers: at_count is index >= packet_count.
        at_count = Signal()
        count_reached = Mux(beat.first, count_zero, at_count)
        beyond_count = header & count_reached
        unknown = header & ~beyond_count & ~type_known
        bad_length = header & ~beyond_count & ~length_matches & type_known
        # The same as header & ~beyond_count & length_matches, with the lane's bits ANDed a stage earlier.
        good = (arriving & ~dropping & (type_position[3:] == 0) & ~count_reached &
                Array(lane_good)[type_lane])
        # Only used when good, i.e. when the length prefix equals the table length.
        message_end = Array(lane_end)[type_lane]
        next_type_position = Array(lane_next)[type_lane]

        # Two message registers used in turn. The next one is always loading at its first beat offset, so it
        # holds the right bytes when its type byte arrives, without waiting for the header to be checked.
        beat_groups = -(-KEPT_MESSAGE_BYTES // BEAT_BYTES) + 1
        slot_beat = [Signal(beat_groups, name=f"slot{s}_beat", init=1) for s in range(_SLOTS)]
        slot_active = [Signal(name=f"slot{s}_active") for s in range(_SLOTS)]
        slot_beats_left = [Signal(4, name=f"slot{s}_beats_left") for s in range(_SLOTS)]
        slot_end_lane = [Signal(3, name=f"slot{s}_end_lane") for s in range(_SLOTS)]
        slot_deliver = [Signal(name=f"slot{s}_deliver") for s in range(_SLOTS)]
        # Plain byte signals: ArrayLayout element wires named "x[42]" collide with bit 42 of "x" in Yosys' ABC9
        # round trip (two flip-flops end up driving one net).
        slot_bytes = [[Signal(8, name=f"slot{s}_byte{byte}") for byte in range(KEPT_MESSAGE_BYTES)]
                      for s in range(_SLOTS)]

        # slot_active & (slot_beats_left == 1), kept in a register: the next beat ends the register's message.
        slot_last = [Signal(name=f"slot{s}_last") for s in range(_SLOTS)]
        # The type of each register's message (one bit per letter of DECODED_TYPES), loaded with its type byte.
        slot_letters = [Signal(len(letters), name=f"slot{s}_letters") for s in range(_SLOTS)]
        slot_ends_whole = []
        # Byte j of a register's message is in the current beat: it sits in beat (rotation + j) // 8 counted from
        # the type byte's beat.
        in_beat = [[Mux((byte % BEAT_BYTES + slot_rotation[s])[3], slot_beat[s][byte // BEAT_BYTES + 1],
                        slot_beat[s][byte // BEAT_BYTES]) for byte in range(KEPT_MESSAGE_BYTES)]
                   for s in range(_SLOTS)]
        for s in range(_SLOTS):
            loading = arriving & (slot_active[s] | (next_slot == s))
            rotated = [Array(lanes)[(lane + slot_rotation[s])[:3]] for lane in range(BEAT_BYTES)]
            for byte in range(KEPT_MESSAGE_BYTES):
                if byte in _UNUSED_BYTES:
                    continue
                with m.If(loading & in_beat[s][byte]):
                    m.d.sync += slot_bytes[s][byte].eq(rotated[byte % BEAT_BYTES])
            with m.If(loading & in_beat[s][0]):
                m.d.sync += slot_letters[s].eq(Array(lane_letters)[slot_rotation[s]])
            ends = slot_last[s]
            slot_ends_whole.append(ends & Array(lane_present)[slot_end_lane[s]])
            with m.If(arriving & slot_active[s]):
                m.d.sync += [slot_beat[s].eq(slot_beat[s] << 1), slot_beats_left[s].eq(slot_beats_left[s] - 1),
                             slot_last[s].eq(slot_beats_left[s] == 2)]
                with m.If(ends):
                    m.d.sync += [slot_active[s].eq(0), slot_last[s].eq(0)]

        with m.If(good):
            m.d.sync += [index.eq(index + 1), next_slot.eq(~next_slot)]
            for s in range(_SLOTS):
                with m.If(next_slot == s):
                    m.d.sync += [
                        slot_active[s].eq(1),
                        slot_beat[s].eq(slot_beat[s] << 1),
                        slot_beats_left[s].eq(message_end[3:]),
                        slot_last[s].eq(message_end[3:] == 1),
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
                m.d.sync += [packet_count.eq(first_count), packet_skip.eq(skip), accepted.eq(beat.replay)]
            with m.If(beyond_count | unknown | bad_length):
                m.d.sync += dropping.eq(1)
        with m.If(self.accept):
            m.d.sync += accepted.eq(1)

        # --- Delivery: at most one message ends per beat; the event register is the output. ---------------------
        ends_any = slot_last[0] | slot_last[1]
        deliverable = (slot_ends_whole[0] & slot_deliver[0]) | (slot_ends_whole[1] & slot_deliver[1])
        delivered = Signal()
        m.d.comb += delivered.eq(arriving & accepted_now & deliverable)
        # The ending message, decoded without a wide multiplexer: each event byte is an OR of (register, type)
        # terms selected by registered bits (the register ends now, its message has that type). A byte a type can
        # have in its last beat (offset >= length - 8) comes from the input stage's rotation when it is in this
        # beat; every other byte comes from the message register.
        is_letter = {(s, letter): slot_last[s] & slot_letters[s][index]
                     for s in range(_SLOTS) for index, letter in enumerate(letters)}

        def message_byte(s, letter, offset):
            if offset >= MESSAGE_LENGTHS[letter] - BEAT_BYTES:
                return Mux(in_beat[s][offset], rotated_in[s][offset % BEAT_BYTES], slot_bytes[s][offset])
            return slot_bytes[s][offset]

        def pick(sources, size):
            """The big-endian field from (letters, offset) sources, 0 for other types."""
            result = []
            for k in range(size):
                terms = []
                for s in range(_SLOTS):
                    for letter_group, offset in sources:
                        # Letters with the same source byte kind share one term.
                        by_source = {}
                        for letter in letter_group:
                            final = offset + k >= MESSAGE_LENGTHS[letter] - BEAT_BYTES
                            by_source.setdefault(final, []).append(letter)
                        for group in by_source.values():
                            select = Cat(is_letter[s, letter] for letter in group).any()
                            terms.append(Mux(select, message_byte(s, group[0], offset + k), 0))
                value = terms[0]
                for term in terms[1:]:
                    value = value | term
                result.append(value)
            return Cat(*reversed(result))

        event = Signal(ItchEvent)
        for name, (offset, size) in COMMON_FIELDS.items():
            m.d.comb += getattr(event, name).eq(pick([(letters, offset)], size))
        for name, sources in TYPE_FIELDS.items():
            if name == "shares":
                continue
            m.d.comb += getattr(event, name).eq(pick([(group, offset) for group, offset, _size in sources],
                                                    sources[0][2]))
        # Q's 8-byte share count saturates: its first four bytes (never in its last beat) are ORed a cycle ahead.
        slot_shares_high = [Signal(name=f"slot{s}_shares_high") for s in range(_SLOTS)]
        for s in range(_SLOTS):
            m.d.sync += slot_shares_high[s].eq(Cat(slot_bytes[s][11:15]).any())
        cross_shares = [Mux(slot_shares_high[s], 0xFFFF_FFFF, Cat(*reversed(slot_bytes[s][15:19])))
                        for s in range(_SLOTS)]
        m.d.comb += [
            event.shares.eq(pick([(group, offset) for group, offset, _size in TYPE_FIELDS["shares"]], 4)
                            | Mux(is_letter[0, "Q"], cross_shares[0], 0) | Mux(is_letter[1, "Q"], cross_shares[1], 0)),
            event.side.eq(Cat(is_letter[s, letter] & (slot_bytes[s][19] == ord("S"))
                              for s in range(_SLOTS) for letter in SIDE_TYPES).any()),
            event.stamp.eq(beat.stamp),
        ]
        kind = 0
        for s in range(_SLOTS):
            for letter, event_kind in DECODED_TYPES.items():
                kind = kind | Mux(is_letter[s, letter], event_kind.value, 0)
        m.d.comb += event.kind.eq(kind)
        decoded = ends_any & Cat(slot_last[s] & slot_letters[s].any() for s in range(_SLOTS)).any()
        is_system = is_letter[0, "S"] | is_letter[1, "S"]
        # Subscription: each register's table bit, read while its message arrived.
        slot_subscribed = [Signal(name=f"slot{s}_subscribed") for s in range(_SLOTS)]
        event_valid = Signal()
        event_passes = Signal()
        m.d.sync += [
            self.o_event.payload.eq(event),
            event_valid.eq(delivered & decoded),
            event_passes.eq((slot_last[0] & slot_subscribed[0]) | (slot_last[1] & slot_subscribed[1]) | is_system),
            self.counted.eq(delivered),
            self.counted_type.eq(Mux(slot_last[1], slot_bytes[1][0], slot_bytes[0][0])),
        ]
        m.d.comb += [
            self.o_event.valid.eq(event_valid & event_passes),
            self.unsubscribed.eq(event_valid & ~event_passes),
        ]

        # --- Subscription lookups --------------------------------------------------------------------------------
        # A message's locate (bytes 1 and 2) lies in its type byte's beat when the type byte is at lane 0..5, else
        # (partly) in the next beat. The table is read in the cycle the locate is there (the address straight from
        # the input register), and its bit kept for the message's register the cycle after. The message ends at
        # least two beats after its locate's beat (every decoded type but S is 19 bytes or more; S always
        # passes), so the bit is in its register by then.
        locate_next_beat = Signal()      # the last message's type byte was at lane 6 or 7
        locate_lane6 = Signal()          # at lane 6: its byte 1 is the previous beat's lane 7
        locate_slot = Signal()
        previous_lane7 = Signal(8)
        with m.If(arriving):
            m.d.sync += previous_lane7.eq(lanes[7])
        address_here = Cat(Array(lanes)[(type_lane + 2)[:3]], Array(lanes)[(type_lane + 1)[:3]])
        address_next = Mux(locate_lane6, Cat(lanes[0], previous_lane7), Cat(lanes[1], lanes[0]))
        m.d.comb += self.lookup_locate.eq(Mux(locate_next_beat, address_next, address_here))
        capture = Signal()
        capture_slot = Signal()
        m.d.sync += [
            capture.eq((good & (type_lane < BEAT_BYTES - 2)) | (locate_next_beat & arriving)),
            capture_slot.eq(Mux(locate_next_beat, locate_slot, next_slot)),
        ]
        with m.If(capture):
            m.d.sync += Array(slot_subscribed)[capture_slot].eq(self.lookup_subscribed)
        with m.If(good & (type_lane >= BEAT_BYTES - 2)):
            m.d.sync += [locate_next_beat.eq(1), locate_lane6.eq(type_lane == BEAT_BYTES - 2),
                         locate_slot.eq(next_slot)]
        with m.Elif(arriving):
            m.d.sync += locate_next_beat.eq(0)

        # --- End of packet: what was cut off, and whether the count held. ----------------------------------------
        ending = arriving & beat.last
        cut_in_flight = ending & ((slot_active[0] & ~slot_ends_whole[0]) | (slot_active[1] & ~slot_ends_whole[1]))
        # A message never ends in the beat of its type byte (it is longer than a beat).
        cut_at_header = good & beat.last
        # A block whose length prefix started but whose type byte did not arrive.
        tail = ending & ~dropping & ~type_here & (type_position < valid_lanes + _PREFIX_BYTES)
        tail_beyond_count = tail & count_reached
        # Whether the count held, worked out from registers over the next two cycles (only for a packet that was
        # accepted when it ended; one that ended undecided is framed again).
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
            count_checked.eq(ending & accepted_now & ~dropping &
                             ~(beyond_count | unknown | bad_length | tail_beyond_count)),
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

        # Error pulses: counted at once in an accepted packet, kept while it is undecided and counted at its
        # accept (each kind happens at most once in a packet: the first error drops the rest).
        # The error terms are registered first (the counters may lag), then sorted a cycle later: counted at once in
        # an accepted packet, kept while it is undecided and counted at its accept (each kind happens at most once
        # in a packet: the first error drops the rest). Everything here is one cycle behind the framing stage.
        terms = Signal(8)
        m.d.sync += terms.eq(Cat(cut_in_flight, cut_at_header, tail, tail_beyond_count, bad_length, unknown,
                                 beyond_count, arriving))
        (late_cut_in_flight, late_cut_at_header, late_tail, late_tail_beyond_count, late_bad_length, late_unknown,
         late_beyond_count, late_arriving) = terms
        late_first = Signal()
        late_accepted = Signal()
        late_accept = Signal()
        late_abort = Signal()
        m.d.sync += [late_first.eq(beat.first), late_accepted.eq(accepted_now), late_accept.eq(self.accept),
                     late_abort.eq(self.abort)]
        found = Cat(late_cut_in_flight | late_cut_at_header | (late_tail & ~late_tail_beyond_count),
                    late_bad_length, late_unknown, late_beyond_count | late_tail_beyond_count)
        pending = Signal(len(COUNTERS))
        with m.If(late_arriving):
            with m.If(late_first):
                m.d.sync += pending.eq(Mux(late_accepted, 0, found))
            with m.Elif(~late_accepted):
                m.d.sync += pending.eq(pending | found)
        with m.If(late_accept | late_abort):
            m.d.sync += pending.eq(0)
        increments = Signal(len(COUNTERS))
        count_error = Signal()
        m.d.sync += [
            increments.eq(Mux(late_arriving & late_accepted, found, 0) | Mux(late_accept, pending, 0)),
            count_error.eq(increments[3]),
        ]
        m.d.comb += self.errors.eq(Cat(increments[0:3], count_error | short))

        # --- The packet's fate, for the arbiter. ------------------------------------------------------------------
        framing = Signal()               # a packet's first beat has passed, its last not yet
        missed = Signal()                # a message (or the end) of the undecided packet has passed
        with m.If(arriving):
            with m.If(beat.first):
                m.d.sync += [framing.eq(~beat.last), missed.eq(~beat.replay & beat.last)]
            with m.Else():
                with m.If(beat.last):
                    m.d.sync += framing.eq(0)
                with m.If(~accepted_now & (ends_any | beat.last)):
                    m.d.sync += missed.eq(1)
        m.d.comb += [
            self.live_ok.eq(framing & ~missed & ~accepted & ~(arriving & (beat.last | ends_any))),
        ]

        with m.If(ending | self.abort):
            m.d.sync += [
                type_position.eq(self._first_type_position),
                index.eq(0),
                dropping.eq(0),
                next_slot.eq(0),
                slot_rotation[0].eq(first_rotation),
                slot_beat[0].eq(1),
                locate_next_beat.eq(0),
            ]
            m.d.sync += [slot_active[s].eq(0) for s in range(_SLOTS)]
            m.d.sync += [slot_last[s].eq(0) for s in range(_SLOTS)]
        with m.If(self.abort):
            m.d.sync += [framing.eq(0), missed.eq(0), accepted.eq(0)]

        return m
