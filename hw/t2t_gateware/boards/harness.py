"""A synthesis harness that keeps every input and output of the top level live on a board without MACs or PCIe."""

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer

from ..top import SYMBOLS, Tick2TradeTop

__all__ = ["SynthesisHarness"]


class SynthesisHarness(wiring.Component):
    """Wraps :class:`Tick2TradeTop` for a board: a PLL makes the core clock; a shift chain loaded from one input
    pin drives every input port of the core (so no logic is constant-folded away); every output bit is XORed
    into one pin (so no logic is unobserved). The harness adds only a register per input bit and an XOR tree.
    """

    def __init__(self, board):
        self.board = board
        super().__init__({})

    @staticmethod
    def _pin(platform, choice):
        """One pin of a board resource (``subsignal`` picks one of a resource with several, e.g. an RGB LED)."""
        pin = platform.request(choice["resource"], choice["number"], dir="-")
        return getattr(pin, choice["subsignal"]) if "subsignal" in choice else pin

    def elaborate(self, platform):
        m = Module()
        board = self.board
        m.submodules.reference = reference = io.Buffer("i", platform.request(board["reference_clock"], 0, dir="-"))
        m.submodules.stimulus = stimulus = io.Buffer("i", self._pin(platform, board["stimulus"]))
        m.submodules.observe = observe = io.Buffer("o", self._pin(platform, board["observe"]))

        m.domains.sync = ClockDomain("sync")
        pll = board["pll"]
        locked = Signal()
        core_clock = Signal()
        m.d.comb += ClockSignal("sync").eq(core_clock)
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=str(board["reference_mhz"]),
            a_FREQUENCY_PIN_CLKOP=str(board["core_clock_mhz"]),
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_FEEDBK_PATH="CLKOP",
            p_CLKI_DIV=pll["clki_div"], p_CLKFB_DIV=pll["clkfb_div"], p_CLKOP_DIV=pll["clkop_div"],
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_CPHASE=pll["clkop_div"] // 2 - 1, p_CLKOP_FPHASE=0,
            i_CLKI=reference.i, o_CLKOP=core_clock, i_CLKFB=core_clock, i_RST=0, i_STDBY=0,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=0, i_PHASESTEP=0, i_PHASELOADREG=0,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked,
        )
        # nextpnr derives the core clock's constraint from the PLL's FREQUENCY_PIN attributes.
        m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")

        m.submodules.core = core = Tick2TradeTop(symbols=board.get("symbols", SYMBOLS))
        inputs, outputs = [], []
        for _, member, value in core.signature.flatten(core):
            (inputs if member.flow == wiring.In else outputs).append(value)
        input_bits = Cat(*inputs)
        chain = Signal(len(input_bits))
        m.d.sync += [chain.eq(Cat(stimulus.i, chain[:-1])), input_bits.eq(chain)]
        folded = Signal()
        m.d.sync += folded.eq(Cat(*outputs).xor())
        m.d.comb += observe.o.eq(folded)
        return m
