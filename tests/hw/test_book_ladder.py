"""DepthLadder against a Python model of its contract: every change lands at its penny price (or is counted as a
miss, marking the side unsafe when a search could pass over it), and a search finds the first occupied price worse
than its start, seeing every change presented before the cycle it started, whatever the spacing of the changes
(2 cycles and up, so the read of a change can miss the write of the one before and must take it over)."""

import random

import pytest
from amaranth.sim import Simulator

from t2t_gateware.book.ladder import PENNY, DepthLadder

_SHARES_MASK = (1 << 32) - 1
_ORDERS_MASK = (1 << 16) - 1


class LadderModel:
    """The ladder's contents as the contract defines them, updated when a change is presented."""

    def __init__(self, symbols, ticks):
        self.ticks = ticks
        self.span = ticks * PENNY
        self.base = [0] * symbols
        self.centred = [False] * symbols
        self.unsafe = [[False, False] for _ in range(symbols)]
        self.levels = {}                  # (slot, side, index) -> [shares, orders]
        self.misses = 0

    def index_of(self, slot, price):
        """(index, below, above) of ``price`` in the slot's window; index None when outside or off the grid."""
        offset = price - self.base[slot]
        below, above = offset < 0, offset >= self.span
        if below or above or offset % PENNY:
            return None, below, above
        return offset // PENNY, below, above

    def change(self, slot, side, price, shares, orders):
        if orders == 1 and not self.centred[slot]:
            self.centred[slot] = True
            self.base[slot] = price - self.span // 2
        index, below, above = self.index_of(slot, price)
        if index is None:
            self.misses += 1
            if not below and not above or (below if side else above):
                self.unsafe[slot][side] = True
            return
        level = self.levels.setdefault((slot, side, index), [0, 0])
        level[0] = (level[0] + shares) & _SHARES_MASK
        level[1] = (level[1] + orders) & _ORDERS_MASK

    def search(self, slot, side, start, inclusive):
        """(found, price, shares, orders) of the first price with orders from ``start`` towards worse prices."""
        index, _, _ = self.index_of(slot, start)
        if index is None:
            return (False,)
        step = 1 if side else -1
        if not inclusive:
            index += step
        while 0 <= index < self.ticks:
            shares, orders = self.levels.get((slot, side, index), (0, 0))
            if orders:
                return (True, self.base[slot] + index * PENNY, shares, orders)
            index += step
        return (False,)


async def search_inclusive(ctx, dut, slot, side, price):
    """One inclusive search from ``price`` while nothing else happens; (found, price, shares, orders) at its end."""
    ctx.set(dut.search_start, 1)
    ctx.set(dut.search_slot, slot)
    ctx.set(dut.search_side, side)
    ctx.set(dut.search_from, price)
    ctx.set(dut.search_inclusive, 1)
    await ctx.tick()
    ctx.set(dut.search_start, 0)
    for _ in range(20):
        if ctx.get(dut.search_done):
            return (bool(ctx.get(dut.search_found)), ctx.get(dut.found_price), ctx.get(dut.found_shares),
                    ctx.get(dut.found_orders))
        await ctx.tick()
    raise AssertionError(f"no search_done within 20 cycles (slot {slot}, side {side}, price {price})")


def run_ladder(*, symbols, ticks, cycles, seed, change_rate, search_rate, cancel_rate=0.0):
    """Random changes (2 cycles apart or more) and searches; returns (searches checked, changes presented)."""
    rng = random.Random(seed)
    dut = DepthLadder(symbols=symbols, ticks=ticks)
    model = LadderModel(symbols, ticks)
    centre = [100_0000 + 1000_0000 * slot for slot in range(symbols)]       # $100.00, $1100.00, ...
    live = {}                                 # (slot, side, price) -> list of (shares) of orders there, per order
    checked = []
    changes = [0]

    def pick_price(slot, side):
        roll = rng.random()
        spread = ticks // 2 + 2
        price = centre[slot] + rng.randint(-spread, spread) * PENNY
        if roll < 0.05:
            price += rng.randint(1, PENNY - 1)                   # off the penny grid
        return price

    async def testbench(ctx):
        last_change = -10
        searching = None                      # (slot, side, expected result, cycle started)
        for cycle in range(cycles):
            change = None
            if cycle - last_change >= 2 and rng.random() < change_rate:
                slot = rng.randrange(symbols)
                if searching is None or slot != searching[0]:
                    side = rng.randrange(2)
                    here = [key for key, orders in live.items() if key[0] == slot and orders]
                    if not model.centred[slot] or not here or rng.random() < 0.55:
                        price = centre[slot] if not model.centred[slot] else pick_price(slot, side)
                        shares = rng.randint(1, 5000)
                        live.setdefault((slot, side, price), []).append(shares)
                        change = (slot, side, price, shares, 1)
                    else:
                        key = rng.choice(here)
                        orders = live[key]
                        position = rng.randrange(len(orders))
                        if rng.random() < 0.5 and orders[position] > 1:
                            taken = rng.randint(1, orders[position] - 1)      # a partial execution or cancel
                            orders[position] -= taken
                            change = (*key, -taken, 0)
                        else:
                            change = (*key, -orders.pop(position), -1)
            if change:
                slot, side, price, shares, orders = change
                ctx.set(dut.change_valid, 1)
                ctx.set(dut.change_slot, slot)
                ctx.set(dut.change_side, side)
                ctx.set(dut.change_price, price)
                ctx.set(dut.change_shares, shares & _SHARES_MASK)
                ctx.set(dut.change_orders, orders & _ORDERS_MASK)
                last_change = cycle
                changes[0] += 1
            else:
                ctx.set(dut.change_valid, 0)
            # A search's result is due when search_done is up (a register: it shows the previous cycle's edge).
            if ctx.get(dut.search_done):
                assert searching is not None, f"cycle {cycle}: search_done without a search"
                if ctx.get(dut.search_found):
                    got = (True, ctx.get(dut.found_price), ctx.get(dut.found_shares), ctx.get(dut.found_orders))
                else:
                    got = (False,)
                assert got == searching[2], f"cycle {cycle}: search of slot {searching[0]} side {searching[1]} " \
                                            f"started at cycle {searching[3]}: got {got}, expected {searching[2]}"
                checked.append(got)
                searching = None
            ctx.set(dut.search_start, 0)
            ctx.set(dut.search_cancel, 0)
            if searching is not None and cycle > searching[3] and rng.random() < cancel_rate:
                ctx.set(dut.search_cancel, 1)
                searching = None
            elif searching is None and rng.random() < search_rate:
                slot, side = rng.randrange(symbols), rng.randrange(2)
                if not change or change[0] != slot:
                    prices = [key[2] for key, orders in live.items() if key[:2] == (slot, side) and orders]
                    start = rng.choice(prices) if prices and rng.random() < 0.7 else pick_price(slot, side)
                    inclusive = rng.randrange(2)
                    ctx.set(dut.search_start, 1)
                    ctx.set(dut.search_slot, slot)
                    ctx.set(dut.search_side, side)
                    ctx.set(dut.search_from, start)
                    ctx.set(dut.search_inclusive, inclusive)
                    # The model has every change before this cycle's (which is of another slot).
                    searching = (slot, side, model.search(slot, side, start, inclusive), cycle)
            if change:
                model.change(*change)
            await ctx.tick()
        ctx.set(dut.change_valid, 0)
        ctx.set(dut.search_start, 0)
        await ctx.tick().repeat(10)
        assert ctx.get(dut.misses) == model.misses
        unsafe = ctx.get(dut.unsafe)
        for slot in range(symbols):
            for side in range(2):
                assert bool(unsafe >> (2 * slot + side) & 1) == model.unsafe[slot][side], (slot, side)
        # Every level, read back by an inclusive search from its own price.
        for (slot, side, index), (shares, orders) in sorted(model.levels.items()):
            if not orders:
                continue
            price = model.base[slot] + index * PENNY
            assert await search_inclusive(ctx, dut, slot, side, price) == (True, price, shares, orders), \
                (slot, side, index)
            checked.append(True)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return checked, changes[0]


@pytest.mark.parametrize("ticks", [8, 64])
def test_random_changes_and_searches_then_every_result_equals_the_model(ticks):
    checked, changes = run_ladder(symbols=2, ticks=ticks, cycles=6000, seed=ticks, change_rate=0.7, search_rate=0.3)
    found = sum(1 for result in checked if result is True or result[0])
    print(f"\nticks {ticks}: {changes} changes, {len(checked)} searches checked, {found} found")
    assert changes > 1500 and len(checked) > 300 and found > 100


def test_changes_every_other_cycle_on_one_price_then_none_is_lost():
    # Two cycles apart on the same price: each read misses the previous change's write and takes its sum over.
    for spacing in (2, 3):
        dut = DepthLadder(symbols=1, ticks=8)
        price = 50_0000

        async def testbench(ctx):
            for n in range(40):
                ctx.set(dut.change_valid, 1)
                ctx.set(dut.change_price, price)
                ctx.set(dut.change_shares, 100 + n)
                ctx.set(dut.change_orders, 1)
                await ctx.tick()
                ctx.set(dut.change_valid, 0)
                await ctx.tick().repeat(spacing - 1)
            await ctx.tick().repeat(8)
            assert await search_inclusive(ctx, dut, 0, 0, price) == \
                (True, price, sum(100 + n for n in range(40)), 40), spacing

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(testbench)
        sim.run()


def test_searches_cancelled_at_random_then_later_searches_still_exact():
    checked, _ = run_ladder(symbols=2, ticks=8, cycles=3000, seed=7, change_rate=0.6, search_rate=0.4,
                            cancel_rate=0.1)
    assert len(checked) > 100
