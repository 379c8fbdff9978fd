"""RegisterBank in the Amaranth simulator, elaborated from a test map that uses every access kind."""

import pytest
import yaml
from amaranth.hdl import Module, Mux, Signal
from amaranth.sim import Simulator

from t2t.regmap import RegisterMap, RegmapError, parse_regmap
from t2t_gateware.regs.axi_lite import AxiResponse
from t2t_gateware.regs.bank import RegisterBank

TEST_MAP = """
name: test
version: 7
magic: 0x12345678
data_width: 32
address_width: 12
commit_register: ctl.commit
blocks:
  - name: id
    base: 0x000
    registers:
      - {name: magic, access: ro}
      - {name: version, access: ro}
      - {name: map_hash, access: ro}
      - {name: plain, access: rw, reset: 0xA5A5A5A5}
      - {name: counter, access: ro, width: 64}
      - {name: wide, access: rw, width: 80, reset: 0x1234}
  - name: ctl
    base: 0x100
    registers:
      - name: commit
        access: strobe
        fields: [{name: limits, offset: 0, width: 1}, {name: other, offset: 1, width: 1}]
      - {name: status, access: w1c, width: 8}
      - {name: limit_lo, access: rw, commit: limits, reset: 10}
      - {name: limit_hi, access: rw, commit: limits, reset: 20}
      - {name: limit_wide, access: rw, commit: limits, width: 64, reset: 30}
"""

OKAY, SLVERR, DECERR = AxiResponse.OKAY, AxiResponse.SLVERR, AxiResponse.DECERR


def make_bank():
    regmap = RegisterMap(parse_regmap(yaml.safe_load(TEST_MAP)))
    return regmap, RegisterBank(regmap)


async def axi_write(ctx, bus, address, data, strobe=0xF):
    ctx.set(bus.awaddr, address)
    ctx.set(bus.wdata, data)
    ctx.set(bus.wstrb, strobe)
    ctx.set(bus.awvalid, 1)
    ctx.set(bus.wvalid, 1)
    ctx.set(bus.bready, 1)
    await ctx.tick().until(bus.awready)
    ctx.set(bus.awvalid, 0)
    ctx.set(bus.wvalid, 0)
    if not ctx.get(bus.bvalid):
        await ctx.tick().until(bus.bvalid)
    response = ctx.get(bus.bresp)
    await ctx.tick()
    ctx.set(bus.bready, 0)
    return response


async def axi_read(ctx, bus, address):
    ctx.set(bus.araddr, address)
    ctx.set(bus.arvalid, 1)
    ctx.set(bus.rready, 1)
    await ctx.tick().until(bus.arready)
    ctx.set(bus.arvalid, 0)
    if not ctx.get(bus.rvalid):
        await ctx.tick().until(bus.rvalid)
    data, response = ctx.get(bus.rdata), ctx.get(bus.rresp)
    await ctx.tick()
    ctx.set(bus.rready, 0)
    return data, response


def run(testbench, extra=None):
    regmap, bank = make_bank()
    m = Module()
    m.submodules.bank = bank
    if extra:
        extra(m, bank)
    sim = Simulator(m)
    sim.add_clock(1e-8)

    async def bench(ctx):
        await testbench(ctx, regmap, bank)

    sim.add_testbench(bench)
    sim.run()


def test_id_registers_come_from_the_map():
    async def tb(ctx, regmap, bank):
        assert await axi_read(ctx, bank.axil, 0x0) == (0x12345678, OKAY)
        assert await axi_read(ctx, bank.axil, 0x4) == (7, OKAY)
        assert await axi_read(ctx, bank.axil, 0x8) == (regmap.hash32, OKAY)
    run(tb)


def test_reset_values_and_read_write_with_byte_strobes():
    async def tb(ctx, regmap, bank):
        assert await axi_read(ctx, bank.axil, 0xC) == (0xA5A5A5A5, OKAY)
        assert await axi_write(ctx, bank.axil, 0xC, 0x11223344) == OKAY
        assert ctx.get(bank["id.plain"].value) == 0x11223344
        assert await axi_write(ctx, bank.axil, 0xC, 0xFFFFFFFF, strobe=0b0100) == OKAY
        assert await axi_read(ctx, bank.axil, 0xC) == (0x11FF3344, OKAY)
    run(tb)


def test_unmapped_address_answers_decerr_and_changes_nothing():
    async def tb(ctx, regmap, bank):
        assert await axi_read(ctx, bank.axil, 0x0F0) == (0, DECERR)
        assert await axi_write(ctx, bank.axil, 0x0F0, 0xDEAD) == DECERR
        assert await axi_write(ctx, bank.axil, 0xFFC, 0xDEAD) == DECERR
        for reg in regmap:
            if reg.access == "rw":
                assert ctx.get(bank[reg.path].value) == reg.reset, reg.path
        assert await axi_read(ctx, bank.axil, 0xC) == (0xA5A5A5A5, OKAY)
    run(tb)


def test_write_to_read_only_register_answers_slverr():
    async def tb(ctx, regmap, bank):
        assert await axi_write(ctx, bank.axil, 0x0, 0) == SLVERR
        assert await axi_read(ctx, bank.axil, 0x0) == (0x12345678, OKAY)
    run(tb)


def test_wide_read_latches_the_high_word_when_the_low_word_is_read():
    def counter(m, bank):
        # Carries from the low word into the high word between the two reads.
        count = Signal(64, init=0x0000_0001_FFFF_FF00)
        m.d.sync += count.eq(count + 1)
        m.d.comb += bank["id.counter"].value.eq(count)

    async def tb(ctx, regmap, bank):
        low, _ = await axi_read(ctx, bank.axil, 0x10)
        for _ in range(400):  # the low word wraps while we wait
            await ctx.tick()
        high, _ = await axi_read(ctx, bank.axil, 0x14)
        value = (high << 32) | low
        assert 0x1_FFFF_FF00 < value < 0x1_FFFF_FF00 + 50, hex(value)
        now = ctx.get(bank["id.counter"].value)
        assert now >> 32 == 2, "the counter did carry into the high word meanwhile"
    run(tb, counter)


def test_wide_write_takes_effect_only_on_the_last_word():
    async def tb(ctx, regmap, bank):
        value = 0xAABB_CCDDEEFF_00112233
        wide = bank["id.wide"].value
        await axi_write(ctx, bank.axil, 0x18, value & 0xFFFFFFFF)
        await axi_write(ctx, bank.axil, 0x1C, (value >> 32) & 0xFFFFFFFF)
        assert ctx.get(wide) == 0x1234, "half-written value must not reach the gateware"
        await axi_write(ctx, bank.axil, 0x20, value >> 64)
        assert ctx.get(wide) == value
        words = [await axi_read(ctx, bank.axil, 0x18 + 4 * i) for i in range(3)]
        assert sum(w << (32 * i) for i, (w, _) in enumerate(words)) == value
    run(tb)


def test_commit_group_applies_all_members_in_one_cycle():
    async def tb(ctx, regmap, bank):
        lo, hi, wide = (bank[p].value for p in ("ctl.limit_lo", "ctl.limit_hi", "ctl.limit_wide"))
        await axi_write(ctx, bank.axil, 0x108, 111)
        await axi_write(ctx, bank.axil, 0x10C, 222)
        await axi_write(ctx, bank.axil, 0x110, 333)
        await axi_write(ctx, bank.axil, 0x114, 1)
        assert (ctx.get(lo), ctx.get(hi), ctx.get(wide)) == (10, 20, 30), "staged values leaked before commit"
        assert await axi_read(ctx, bank.axil, 0x108) == (111, OKAY), "reads return the staged value"
        # Committing another group leaves this one alone.
        await axi_write(ctx, bank.axil, 0x100, 0b10)
        assert ctx.get(lo) == 10
        ctx.set(bank.axil.awaddr, 0x100)
        ctx.set(bank.axil.wdata, 0b01)
        ctx.set(bank.axil.wstrb, 0xF)
        ctx.set(bank.axil.awvalid, 1)
        ctx.set(bank.axil.wvalid, 1)
        ctx.set(bank.axil.bready, 1)
        seen = []
        for _ in range(6):
            await ctx.tick()
            ctx.set(bank.axil.awvalid, 0)
            ctx.set(bank.axil.wvalid, 0)
            seen.append((ctx.get(lo), ctx.get(hi), ctx.get(wide)))
        assert (10, 20, 30) in seen and seen[-1] == (111, 222, (1 << 32) | 333)
        assert all(s in ((10, 20, 30), (111, 222, (1 << 32) | 333)) for s in seen), f"half-applied: {seen}"
    run(tb)


def test_w1c_bits_set_by_gateware_cleared_by_host_and_set_wins():
    async def tb(ctx, regmap, bank):
        status = bank["ctl.status"]
        ctx.set(status.set, 0b0101)
        await ctx.tick()
        ctx.set(status.set, 0)
        assert await axi_read(ctx, bank.axil, 0x104) == (0b0101, OKAY)
        assert await axi_write(ctx, bank.axil, 0x104, 0b0001) == OKAY
        assert await axi_read(ctx, bank.axil, 0x104) == (0b0100, OKAY)
        # An event in the same cycle as the clear is not lost.
        ctx.set(status.set, 0b0100)
        assert await axi_write(ctx, bank.axil, 0x104, 0b0100) == OKAY
        ctx.set(status.set, 0)
        assert (await axi_read(ctx, bank.axil, 0x104))[0] == 0b0100
    run(tb)


def test_strobe_pulses_once_with_the_written_value_and_reads_as_zero():
    async def tb(ctx, regmap, bank):
        commit = bank["ctl.commit"]
        pulses = 0
        ctx.set(bank.axil.awaddr, 0x100)
        ctx.set(bank.axil.wdata, 0b10)
        ctx.set(bank.axil.wstrb, 0xF)
        ctx.set(bank.axil.awvalid, 1)
        ctx.set(bank.axil.wvalid, 1)
        ctx.set(bank.axil.bready, 1)
        for _ in range(8):
            await ctx.tick()
            ctx.set(bank.axil.awvalid, 0)
            ctx.set(bank.axil.wvalid, 0)
            if ctx.get(commit.strobe):
                pulses += 1
                assert ctx.get(commit.value) == 0b10
        assert pulses == 1
        assert await axi_read(ctx, bank.axil, 0x100) == (0, OKAY)
    run(tb)


def test_reading_a_read_only_register_pulses_read_strobe():
    async def tb(ctx, regmap, bank):
        magic = bank["id.magic"]
        ctx.set(bank.axil.araddr, 0x0)
        ctx.set(bank.axil.arvalid, 1)
        ctx.set(bank.axil.rready, 1)
        pulses = 0
        for _ in range(6):
            await ctx.tick()
            ctx.set(bank.axil.arvalid, 0)
            pulses += ctx.get(magic.read_strobe)
        assert pulses == 1
    run(tb)


@pytest.mark.parametrize("arrival", range(6))
def test_pop_on_read_queue_then_an_entry_arriving_during_the_read_is_read_once_never_lost(arrival):
    # A queue read through id.counter (value = head or 0, popped by read_strobe); one entry arrives ``arrival``
    # cycles after the first read starts. Three reads in a row must return it exactly once (the bug this guards
    # against: a pop one cycle after the value was taken removed an entry that arrived in between, unread).
    from amaranth.lib.fifo import SyncFIFOBuffered

    entry = 0x5A5A_0001

    def extra(m, bank):
        m.submodules.queue = queue = SyncFIFOBuffered(width=64, depth=4)
        counter = bank["id.counter"]
        m.d.comb += [counter.value.eq(Mux(queue.r_rdy, queue.r_data, 0)), queue.r_en.eq(counter.read_strobe)]
        bank.queue = queue

    async def tb(ctx, regmap, bank):
        queue = bank.queue
        ctx.set(bank.axil.araddr, regmap["id.counter"].address)
        ctx.set(bank.axil.arvalid, 1)
        ctx.set(bank.axil.rready, 1)
        cycle, values = 0, []
        while len(values) < 3 and cycle < 60:
            ctx.set(queue.w_en, cycle == arrival)
            ctx.set(queue.w_data, entry)
            address_taken = ctx.get(bank.axil.arvalid) and ctx.get(bank.axil.arready)
            answered = ctx.get(bank.axil.rvalid)
            if answered:
                values.append(ctx.get(bank.axil.rdata))
            await ctx.tick()
            cycle += 1
            if address_taken:
                ctx.set(bank.axil.arvalid, 0)
            if answered:
                ctx.set(bank.axil.arvalid, 1)
        assert len(values) == 3 and values.count(entry) == 1 and values.count(0) == 2, values

    run(tb, extra)


@pytest.mark.parametrize("mutation, message", [
    (lambda s: s.replace("access: w1c, width: 8", "access: w1c, width: 40"), "at most 32 bits"),
    (lambda s: s.replace("commit: limits, reset: 10", "commit: nosuch, reset: 10"), "commit group 'nosuch'"),
    (lambda s: s.replace("{name: plain, access: rw", "{name: plain, access: rx"), "access must be one of"),
    (lambda s: s.replace("base: 0x100", "base: 0x010"), "already used by id.counter"),
    (lambda s: s.replace("reset: 0xA5A5A5A5", "reset: 0x1A5A5A5A5"), "does not fit 32 bits"),
])
def test_inconsistent_map_is_refused_naming_the_register(mutation, message):
    with pytest.raises(RegmapError, match=message):
        parse_regmap(yaml.safe_load(mutation(TEST_MAP)))
