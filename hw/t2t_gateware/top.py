"""The card's top level: network ports in and out, the AXI4-Lite register bank, and the pipeline between them."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .mac.rx_statistics import RxStatistics
from .regs.axi_lite import AxiLiteSignature
from .regs.bank import RegisterBank
from .regs.generate import load_regmap
from .streams import MacBeat, MacRxSignature

__all__ = ["Tick2TradeTop"]


class Tick2TradeTop(wiring.Component):
    """Everything on the card between the MACs and the PCIe bridge.

    Ports: ``axil`` (AXI4-Lite subordinate, the host's BAR), ``rx_a``/``rx_b`` (feed A and B from their MACs, one
    64-bit beat per clock, never held back), ``tx`` (order entry toward the exchange session; the MAC or TCP
    offload engine may hold it back with ``ready``). Single clock domain ``sync``.
    """

    def __init__(self, regmap=None):
        self.regmap = regmap or load_regmap()
        super().__init__({
            "axil": In(AxiLiteSignature(self.regmap.address_width)),
            "rx_a": In(MacRxSignature()),
            "rx_b": In(MacRxSignature()),
            "tx": Out(stream.Signature(MacBeat)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = bank = RegisterBank(self.regmap)
        wiring.connect(m, wiring.flipped(self.axil), bank.axil)

        cycles = Signal(64)
        m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += bank["id.cycles"].value.eq(cycles)

        status = bank["control.status"]
        for port_name, rx in (("a", self.rx_a), ("b", self.rx_b)):
            stats = RxStatistics()
            m.submodules[f"rx_statistics_{port_name}"] = stats
            m.d.comb += [
                stats.i_mac.valid.eq(rx.valid),
                stats.i_mac.payload.eq(rx.payload),
                bank[f"rx_{port_name}.frames"].value.eq(stats.frames),
                bank[f"rx_{port_name}.bad_fcs"].value.eq(stats.bad_fcs),
                bank[f"rx_{port_name}.bytes"].value.eq(stats.bytes),
                status.set[status.register.field(f"rx_{port_name}_error").offset].eq(stats.bad_fcs_seen),
            ]
        return m
