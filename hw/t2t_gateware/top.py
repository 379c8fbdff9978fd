"""The card's top level: network ports in and out, the AXI4-Lite register bank, and the pipeline between them."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .feed.ingest import COUNTERS as INGEST_COUNTERS
from .feed.ingest import FeedIngest
from .feed.itch import MESSAGE_TYPES
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

        m.submodules.ingest = ingest = FeedIngest()
        self._connect_ingest(m, bank, ingest)

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
            wiring.connect(m, receiver.o_payload, getattr(ingest, f"i_feed_{name}"))
            payload_bytes = bank[f"rx_{name}.payload_bytes"].value
            with m.If(payload.valid):
                # keep is contiguous from lane 0: its bit count is the byte count.
                m.d.sync += payload_bytes.eq(payload_bytes + Mux(payload.p.last, sum(payload.p.keep), BEAT_BYTES))
        return m

    @staticmethod
    def _connect_ingest(m, bank, ingest):
        """Settings, status, counters, the gap queue and the subscription table of the ingest, by register."""
        mode = bank["feed.session_mode"].field("mode")
        m.d.comb += [
            ingest.session.eq(bank["feed.session"].value),
            ingest.session_valid.eq(mode == bank["feed.session_mode"].register.field("mode").enum["fixed"]),
            bank["moldudp64.current_session"].value.eq(ingest.current_session),
            bank["moldudp64.next_expected"].value.eq(ingest.next_expected),
        ]
        status = bank["moldudp64.status"]
        for name in ("session_known", "synced", "session_ended"):
            m.d.comb += status.field(name).eq(getattr(ingest, name))
        for name in INGEST_COUNTERS:
            block = "moldudp64" if f"moldudp64.{name}" in bank.ports else "itch"
            m.d.comb += bank[f"{block}.{name}"].value.eq(getattr(ingest, name))
        for index, letter in enumerate(MESSAGE_TYPES):
            m.d.comb += bank[f"itch.messages_{letter}"].value.eq(ingest.message_counts[index])

        # The gap queue: the host reads the oldest gap (count 0 when none); reading word 0 takes it off.
        gap = bank["moldudp64.gap"]
        m.d.comb += [
            gap.value.eq(Mux(ingest.o_gap.valid, Cat(ingest.o_gap.p.count, ingest.o_gap.p.first), 0)),
            ingest.o_gap.ready.eq(gap.read_strobe),
        ]

        subscribe = bank["itch.subscribe"]
        m.d.comb += [
            ingest.sub_addr.eq(subscribe.field("locate")),
            ingest.sub_data.eq(subscribe.field("subscribed")),
            ingest.sub_we.eq(subscribe.strobe),
        ]

        # Until the book builder consumes events, they are counted and the last one is kept for the host.
        event = ingest.o_event
        m.d.comb += event.ready.eq(1)
        events = bank["itch.events"].value
        with m.If(event.valid):
            m.d.sync += [
                events.eq(events + 1),
                bank["last_event.kind"].value.eq(Cat(event.p.kind, event.p.side, Const(0, 3), event.p.code)),
                bank["last_event.locate"].value.eq(event.p.locate),
                bank["last_event.order_ref"].value.eq(event.p.order_ref),
                bank["last_event.new_order_ref"].value.eq(event.p.new_order_ref),
                bank["last_event.shares"].value.eq(event.p.shares),
                bank["last_event.price"].value.eq(event.p.price),
                bank["last_event.match_number"].value.eq(event.p.match_number),
                bank["last_event.timestamp"].value.eq(event.p.timestamp),
            ]
