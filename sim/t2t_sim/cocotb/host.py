"""The host software (:mod:`t2t.card`, :mod:`t2t.trading`) driving the Verilated top level inside a cocotb test.

The host driver is blocking (``card.read``/``card.write``); cocotb's bus master is a coroutine. The bridge is
cocotb's own (``cocotb.task.bridge`` and ``resume``): :func:`host` runs a blocking host function in a cocotb
bridge thread, and :class:`CocotbTransport` turns each 32-bit access it makes into an AXI4-Lite transaction of
the testbench's master, so the simulation advances while the host waits, as a card's clock runs while the host
polls it::

    card = await host(Card, CocotbTransport(tb.axil))      # checks id.magic and id.map_hash
    await host(trading.load_symbols, card, slot_map)
    rows = await host(trading.drain_orders, card, slot_map)

A bridge thread never runs alongside the simulator: it runs until it waits on the bus, and the testbench's other
coroutines (stream drivers, monitors) run meanwhile. Give one host function the card at a time: two that
interleave their accesses could split a wide register's words.
"""

from cocotb.task import bridge, resume
from cocotbext.axi import AxiResp

from t2t.transport import BusError, Transport

__all__ = ["CocotbTransport", "host"]

_RESPONSES = {AxiResp.OKAY: "OKAY", AxiResp.EXOKAY: "EXOKAY", AxiResp.SLVERR: "SLVERR", AxiResp.DECERR: "DECERR"}


class CocotbTransport(Transport):
    """:class:`t2t.transport.Transport` over a cocotbext-axi ``AxiLiteMaster``; use it from :func:`host` only."""

    url = "cocotb"

    def __init__(self, axil):
        self._read = resume(axil.read)
        self._write = resume(axil.write)

    def read32(self, address):
        result = self._read(address, 4)
        self._check(result.resp, "read", address)
        return int.from_bytes(result.data, "little")

    def write32(self, address, value):
        result = self._write(address, (value & 0xFFFFFFFF).to_bytes(4, "little"))
        self._check(result.resp, "write", address)

    @staticmethod
    def _check(response, what, address):
        if response != AxiResp.OKAY:
            name = _RESPONSES.get(response, str(response))
            raise BusError(f"AXI4-Lite {what} at {address:#06x} answered {name}", response=name)


async def host(function, *args, **kwargs):
    """Run a blocking host function (one that reaches the card through a :class:`CocotbTransport`) and return
    its result, while the simulation runs."""
    return await bridge(function)(*args, **kwargs)
