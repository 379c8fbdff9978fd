"""Keeps the events of subscribed stocks (a 65536-bit table of stock locates in block RAM)."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..streams import EventKind, ItchEvent

__all__ = ["COUNTERS", "LOCATES", "SymbolFilter"]

#: Stock locates are 16-bit: one table bit each.
LOCATES = 1 << 16

#: The wrapping event counters (``Out(32)`` ports) of :class:`SymbolFilter`.
COUNTERS = ("unsubscribed_events",)


class SymbolFilter(wiring.Component):
    """Passes an event only if its stock locate is subscribed; system events (S, locate 0) always pass.

    The table starts empty (nothing subscribed). The host sets or clears one locate per write. The table is read
    two cycles ahead, with ``lookahead_locate``, so that the filter adds no register to the event path and its
    block RAM output is registered.

    Attributes
    ----------
    lookahead_locate : In(16)
        The locate of the event that arrives on ``i_event`` two cycles later (e.g.
        :attr:`MessageSplitter.next_locate` in front of an :class:`ItchDecoder`).
    i_event : In(stream.Signature(ItchEvent, always_ready=True))
        Decoded events.
    o_event : Out(stream.Signature(ItchEvent, always_ready=True))
        The events that pass, never held back.
    sub_addr : In(16)
        Stock locate to write.
    sub_data : In(1)
        1 subscribes ``sub_addr``, 0 unsubscribes it.
    sub_we : In(1)
        Write strobe; the new value applies to events arriving 3 cycles later.
    unsubscribed_events : Out(32)
        Wrapping count of events held back.

    Notes
    -----
    Latency: 0 cycles (``o_event`` is ``i_event`` gated by a registered table bit). Throughput: one
    event per cycle.
    """

    lookahead_locate: In(16)
    i_event: In(stream.Signature(ItchEvent, always_ready=True))
    o_event: Out(stream.Signature(ItchEvent, always_ready=True))
    sub_addr: In(16)
    sub_data: In(1)
    sub_we: In(1)
    unsubscribed_events: Out(32)

    def elaborate(self, platform):
        m = Module()

        m.submodules.subscribed = subscribed = Memory(shape=1, depth=LOCATES, init=[])
        write = subscribed.write_port()
        lookup = subscribed.read_port()
        m.d.comb += [
            write.addr.eq(self.sub_addr),
            write.data.eq(self.sub_data),
            write.en.eq(self.sub_we),
            lookup.addr.eq(self.lookahead_locate),
        ]

        # The table bit, registered (the block RAM's clock-to-output is slow): read two cycles ahead.
        subscribed_bit = Signal()
        m.d.sync += subscribed_bit.eq(lookup.data)

        event = self.i_event.payload
        passes = subscribed_bit | (event.kind == EventKind.SYSTEM_EVENT)
        m.d.comb += [
            self.o_event.payload.eq(event),
            self.o_event.valid.eq(self.i_event.valid & passes),
        ]
        with m.If(self.i_event.valid & ~passes):
            m.d.sync += self.unsubscribed_events.eq(self.unsubscribed_events + 1)

        return m
