"""The card's top level: network ports in and out, the AXI4-Lite register bank, and the pipeline between them."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .net.udp_receiver import OUTCOMES, UdpReceiver
from .regs.axi_lite import AxiLiteSignature
from .regs.bank import RegisterBank
from .regs.generate import load_regmap
from .streams import BEAT_BYTES, STAMP_BITS, MacBeat, MacRxSignature

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
        stamp = cycles[:STAMP_BITS]

        status = bank["control.status"]
        for feed_id, (name, rx) in enumerate((("a", self.rx_a), ("b", self.rx_b))):
            receiver = UdpReceiver(feed_id)
            m.submodules[f"udp_receiver_{name}"] = receiver
            m.d.comb += [
                receiver.i_mac.valid.eq(rx.valid),
                receiver.i_mac.payload.eq(rx.payload),
                receiver.stamp.eq(stamp),
                receiver.dst_ip.eq(bank[f"feed.dst_ip_{name}"].value),
                receiver.dst_port.eq(bank[f"feed.dst_port_{name}"].value),
                bank[f"rx_{name}.frames"].value.eq(receiver.frames),
            ]
            for outcome in OUTCOMES:
                m.d.comb += bank[f"rx_{name}.{outcome}"].value.eq(getattr(receiver, outcome))

            # The sticky status bit rises with the bad-FCS counter.
            previous_bad_fcs = Signal(32, name=f"previous_bad_fcs_{name}")
            m.d.sync += previous_bad_fcs.eq(receiver.bad_fcs)
            m.d.comb += status.set[status.register.field(f"rx_{name}_error").offset].eq(
                previous_bad_fcs != receiver.bad_fcs)

            payload = receiver.o_payload
            payload_bytes = bank[f"rx_{name}.payload_bytes"].value
            with m.If(payload.valid):
                # keep is contiguous from lane 0: its bit count is the byte count.
                m.d.sync += payload_bytes.eq(payload_bytes + Mux(payload.p.last, sum(payload.p.keep), BEAT_BYTES))
        return m
