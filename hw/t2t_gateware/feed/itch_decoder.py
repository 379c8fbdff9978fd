"""Decodes aligned ITCH 5.0 messages into normalized events and counts messages per type."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import EventKind, ItchEvent
from .itch import MESSAGE_TYPES, ItchMessage

__all__ = ["DECODED_TYPES", "ItchDecoder"]

#: Message types that become an :class:`ItchEvent`, and the kind each becomes.
DECODED_TYPES = {
    "A": EventKind.ADD, "F": EventKind.ADD, "E": EventKind.EXECUTE, "C": EventKind.EXECUTE_WITH_PRICE,
    "X": EventKind.CANCEL, "D": EventKind.DELETE, "U": EventKind.REPLACE, "P": EventKind.TRADE,
    "Q": EventKind.CROSS_TRADE, "S": EventKind.SYSTEM_EVENT, "H": EventKind.TRADING_ACTION,
}


class ItchDecoder(wiring.Component):
    """Turns each aligned ITCH message into an :class:`ItchEvent` (book, trade and status types) and counts it.

    Decoded: A F (ADD: order_ref, side, shares, price), E (order_ref, shares, match_number), C (order_ref,
    shares, match_number, price), X (order_ref, shares), D (order_ref), U (order_ref, new_order_ref, shares,
    price), P (order_ref, side, shares, price, match_number), Q (shares, price, match_number; ``code`` holds the
    cross type; its 8-byte share count saturates at 2**32 - 1), S (``code`` = event code), H (``code`` = trading
    state). Every event carries ``locate``, ``timestamp`` and the message's ``stamp``; the fields a type does not
    carry are 0. Other types are only counted.

    Attributes
    ----------
    i_message : In(stream.Signature(ItchMessage, always_ready=True))
        Complete, length-checked messages (from :class:`MessageSplitter`).
    o_event : Out(stream.Signature(ItchEvent, always_ready=True))
        One event per decoded message, never held back.
    next_locate : Out(16)
        The stock locate of the message being decoded, i.e. of the event ``o_event`` carries next cycle, for a
        lookup that runs in parallel with decoding (:class:`FeedIngest` uses
        :attr:`MessageSplitter.next_locate`, one cycle earlier, so that the table bit is registered).
    message_counts : Out(32).array(23)
        Wrapping count of messages of each type, in :data:`~.itch.MESSAGE_TYPES` order.

    Notes
    -----
    Latency: 1 cycle (the event register). Throughput: one message per cycle. Input of a type outside the
    table cannot arrive (the splitter drops it); a type the decoder does not know would be ignored.
    """

    i_message: In(stream.Signature(ItchMessage, always_ready=True))
    o_event: Out(stream.Signature(ItchEvent, always_ready=True))
    next_locate: Out(16)
    message_counts: Out(32).array(len(MESSAGE_TYPES))

    def elaborate(self, platform):
        m = Module()

        message = self.i_message.payload.bytes
        type_byte = message[0]

        def big_endian(offset, size):
            return Cat(*(message[offset + size - 1 - i] for i in range(size)))

        def is_type(letters):
            return Cat(*(type_byte == ord(letter) for letter in letters)).any()

        event = Signal(ItchEvent)
        m.d.comb += [
            self.next_locate.eq(big_endian(1, 2)),
            event.locate.eq(big_endian(1, 2)),
            event.timestamp.eq(big_endian(5, 6)),
            event.stamp.eq(self.i_message.payload.stamp),
        ]
        with m.Switch(type_byte):
            for letter, kind in DECODED_TYPES.items():
                with m.Case(ord(letter)):
                    m.d.comb += event.kind.eq(kind)
        with m.If(is_type("AFECXDUP")):
            m.d.comb += event.order_ref.eq(big_endian(11, 8))
        with m.If(is_type("AFP")):
            m.d.comb += [
                event.side.eq(message[19] == ord("S")),
                event.shares.eq(big_endian(20, 4)),
                event.price.eq(big_endian(32, 4)),
            ]
        with m.If(is_type("ECX")):
            m.d.comb += event.shares.eq(big_endian(19, 4))
        with m.If(is_type("EC")):
            m.d.comb += event.match_number.eq(big_endian(23, 8))
        with m.If(is_type("C")):
            m.d.comb += event.price.eq(big_endian(32, 4))
        with m.If(is_type("U")):
            m.d.comb += [
                event.new_order_ref.eq(big_endian(19, 8)),
                event.shares.eq(big_endian(27, 4)),
                event.price.eq(big_endian(31, 4)),
            ]
        with m.If(is_type("P")):
            m.d.comb += event.match_number.eq(big_endian(36, 8))
        with m.If(is_type("Q")):
            m.d.comb += [
                event.shares.eq(Mux(big_endian(11, 4) != 0, 0xFFFF_FFFF, big_endian(15, 4))),
                event.price.eq(big_endian(27, 4)),
                event.match_number.eq(big_endian(31, 8)),
                event.code.eq(message[39]),
            ]
        with m.If(is_type("S")):
            m.d.comb += event.code.eq(message[11])
        with m.If(is_type("H")):
            m.d.comb += event.code.eq(message[19])

        arriving = self.i_message.valid
        m.d.sync += self.o_event.valid.eq(arriving & is_type(DECODED_TYPES))
        with m.If(arriving):
            m.d.sync += self.o_event.payload.eq(event)
        for index, letter in enumerate(MESSAGE_TYPES):
            with m.If(arriving & (type_byte == ord(letter))):
                m.d.sync += self.message_counts[index].eq(self.message_counts[index] + 1)

        return m
