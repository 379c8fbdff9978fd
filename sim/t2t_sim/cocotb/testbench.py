"""A testbench base class for the top level: clock, reset, the AXI4-Lite master and the register map by name."""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from t2t.regmap import load_packaged_regmap

__all__ = ["TopTestbench", "CLOCK_PERIOD_NS"]

#: 156.25 MHz, the 64-bit 10GbE datapath clock.
CLOCK_PERIOD_NS = 6.4


class TopTestbench:
    """Clock, reset and an AXI4-Lite master (cocotbext-axi) on ``dut``, with registers addressed by name.

    Subclass it in a test module to add stream drivers and monitors for the blocks under test.
    """

    def __init__(self, dut):
        self.dut = dut
        self.regmap = load_packaged_regmap()
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "axil_"), dut.clk, dut.rst)
        dut.rx_a__valid.value = 0
        dut.rx_b__valid.value = 0
        dut.tx__ready.value = 1

    async def start(self, reset_cycles=8):
        cocotb.start_soon(Clock(self.dut.clk, CLOCK_PERIOD_NS, unit="ns").start())
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, reset_cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    def address(self, path, word=0):
        return self.regmap[path].word_addresses[word]

    async def read_word(self, path, word=0):
        """One 32-bit read; returns ``(value, response)`` without raising on an error response."""
        result = await self.axil.read_dword(self.address(path, word))
        return result

    async def read(self, path):
        reg = self.regmap[path]
        value = 0
        for index, address in enumerate(reg.word_addresses):
            value |= await self.axil.read_dword(address) << (32 * index)
        return value

    async def write(self, path, value):
        reg = self.regmap[path]
        for index, address in enumerate(reg.word_addresses):
            await self.axil.write_dword(address, (value >> (32 * index)) & 0xFFFFFFFF)

    async def commit(self, group):
        await self.write(self.regmap.commit_register, 1 << self.regmap.commit_groups[group].offset)
