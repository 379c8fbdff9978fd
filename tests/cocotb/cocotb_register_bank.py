"""cocotb tests of the register bank in the Verilated top level (launched by test_register_bank_cocotb.py)."""

import cocotb
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiResp

from t2t_sim.cocotb import TopTestbench


@cocotb.test()
async def reset_values_match_the_register_map(dut):
    tb = TopTestbench(dut)
    await tb.start()
    for reg in tb.regmap:
        if reg.access == "rw":
            assert await tb.read(reg.path) == reg.reset, reg.path
    assert await tb.read("id.magic") == tb.regmap.magic
    assert await tb.read("id.map_hash") == tb.regmap.hash32


@cocotb.test()
async def scratch_reads_back_what_was_written(dut):
    tb = TopTestbench(dut)
    await tb.start()
    for value in (0, 0xFFFFFFFF, 0x5A5A1234, 0x80000001):
        await tb.write("id.scratch", value)
        assert await tb.read("id.scratch") == value


@cocotb.test()
async def cycle_counter_reads_atomically_across_the_low_word_wrap(dut):
    tb = TopTestbench(dut)
    await tb.start()
    first = await tb.read("id.cycles")
    await ClockCycles(dut.clk, 100)
    second = await tb.read("id.cycles")
    assert 100 < second - first < 200
    # The high word read later must be the one latched with the low word.
    low = await tb.axil.read_dword(tb.address("id.cycles", 0))
    await ClockCycles(dut.clk, 50)
    high = await tb.axil.read_dword(tb.address("id.cycles", 1))
    assert (high << 32 | low) >= second


@cocotb.test()
async def wide_session_register_commits_on_its_last_word_and_group_commit(dut):
    tb = TopTestbench(dut)
    await tb.start()
    session = int.from_bytes(b"ABCDEFGHIJ", "big")
    await tb.write("feed.session", session)
    assert await tb.read("feed.session") == session
    await tb.write("feed.dst_port_a", 12345)
    assert await tb.read("feed.dst_port_a") == 12345
    await tb.commit("feed")
    assert await tb.read("feed.session") == session


@cocotb.test()
async def unmapped_addresses_answer_decerr(dut):
    tb = TopTestbench(dut)
    await tb.start()
    before = await tb.read("id.scratch")
    for address in (0x0080, 0x0FFC, 0xFFFC):
        read = await tb.axil.read(address, 4)
        assert read.resp == AxiResp.DECERR, hex(address)
        write = await tb.axil.write(address, b"\x01\x02\x03\x04")
        assert write.resp == AxiResp.DECERR, hex(address)
    assert await tb.read("id.scratch") == before


@cocotb.test()
async def writes_to_read_only_registers_answer_slverr(dut):
    tb = TopTestbench(dut)
    await tb.start()
    write = await tb.axil.write(tb.address("id.magic"), b"\x00\x00\x00\x00")
    assert write.resp == AxiResp.SLVERR
    assert await tb.read("id.magic") == tb.regmap.magic
