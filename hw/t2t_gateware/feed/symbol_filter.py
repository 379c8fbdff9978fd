"""The subscription table: one bit per ITCH stock locate (65536 bits of block RAM), one read port per splitter."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["COUNTERS", "LOCATES", "SymbolFilter"]

#: Stock locates are 16-bit: one table bit each.
LOCATES = 1 << 16

#: The wrapping event counters of the filtering (counted by :class:`~.ingest.FeedIngest` from the splitters'
#: ``unsubscribed`` pulses).
COUNTERS = ("unsubscribed_events",)


class SymbolFilter(wiring.Component):
    """Says which stock locates are subscribed; the splitters hold back the events of the others (system events,
    locate 0, always pass).

    The table starts empty (nothing subscribed). The host sets or clears one locate per write. Each read port is
    a plain block RAM read: the bit for ``lookup_locate[i]`` is on ``subscribed[i]`` the next cycle (the table is
    kept once per read port; every write goes to all copies).

    Parameters
    ----------
    lookups : int
        Read ports.

    Attributes
    ----------
    lookup_locate : In(16).array(lookups)
        Locates to read.
    subscribed : Out(1).array(lookups)
        The table bits of the locates of the cycle before.
    sub_addr : In(16)
        Stock locate to write.
    sub_data : In(1)
        1 subscribes ``sub_addr``, 0 unsubscribes it.
    sub_we : In(1)
        Write strobe; the new value is read from the next cycle on.
    """

    def __init__(self, *, lookups=2):
        self._lookups = lookups
        super().__init__({
            "lookup_locate": In(16).array(lookups),
            "subscribed": Out(1).array(lookups),
            "sub_addr": In(16),
            "sub_data": In(1),
            "sub_we": In(1),
        })

    def elaborate(self, platform):
        m = Module()

        for port in range(self._lookups):
            table = m.submodules[f"table{port}"] = Memory(shape=1, depth=LOCATES, init=[])
            write = table.write_port()
            read = table.read_port()
            m.d.comb += [
                write.addr.eq(self.sub_addr),
                write.data.eq(self.sub_data),
                write.en.eq(self.sub_we),
                read.addr.eq(self.lookup_locate[port]),
                self.subscribed[port].eq(read.data),
            ]

        return m
