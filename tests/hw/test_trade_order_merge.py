"""OrderMerge, registered (1 cycle) and not (0 cycles): round robin when both inputs offer, pair legs kept together,
nothing lost under back-pressure; threshold and pair strategies merged into the risk gate."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.sim import Simulator

from t2t_gateware.streams import OrderRequest
from t2t_gateware.trade.order_merge import OrderMerge
from t2t_gateware.trade.risk_gate import RiskGate
from t2t_gateware.trade.strategy import PairStrategy, ThresholdStrategy


def order(source, number, more_legs=0):
    """An order tagged by its source (slot 0 = a, 1 = b) and its number within the source (shares)."""
    return {"slot": source, "locate": 7, "side": 0, "shares": number, "price": 100_0000 + number,
            "time_in_force": 0, "timestamp": 0, "stamp": 0, "more_legs": more_legs}


def as_dict(const):
    return {name: int(getattr(const, name).value if hasattr(getattr(const, name), "value") else getattr(const, name))
            for name, _field in data.Layout.cast(OrderRequest)}


def run_merge(offers, *, cycles, registered, out_ready=lambda cycle: True):
    """``offers``: per input ("a", "b") a list of (first cycle offered, order); an input offers its next order from
    that cycle on until it is taken. Returns the orders out as (cycle, source, order, cycle its input offered it)."""
    dut = OrderMerge(registered=registered)
    out = []

    async def testbench(ctx):
        queues = {name: list(items) for name, items in offers.items()}
        in_flight = []          # (source, order, cycle first offered), in the order the merge took them
        first_offered = {}
        held = None
        for cycle in range(cycles):
            for name in ("a", "b"):
                port = getattr(dut, f"i_{name}")
                queue = queues.get(name, [])
                offering = bool(queue) and queue[0][0] <= cycle
                ctx.set(port.valid, offering)
                if offering:
                    ctx.set(port.payload, queue[0][1])
                    first_offered.setdefault((name, len(queue)), cycle)
            ready = out_ready(cycle)
            ctx.set(dut.o_order.ready, ready)
            valid = ctx.get(dut.o_order.valid)
            payload = as_dict(ctx.get(dut.o_order.payload)) if valid else None
            if held is not None:
                assert valid and payload == held, "an offered order changed"
            held = payload if valid and not ready else None
            taken = []
            for name in ("a", "b"):
                port = getattr(dut, f"i_{name}")
                if ctx.get(port.valid) and ctx.get(port.ready):
                    taken.append((name, queues[name][0][1], first_offered[name, len(queues[name])]))
                    queues[name].pop(0)
            assert len(taken) <= 1
            if registered:
                if valid and ready:
                    source, item, offered = in_flight.pop(0)
                    assert payload == item
                    out.append((cycle, source, item, offered))
                in_flight += taken
            else:
                assert len(taken) == (1 if valid and ready else 0)
                if taken:
                    source, item, offered = taken[0]
                    assert payload == item
                    out.append((cycle, source, item, offered))
            await ctx.tick()
        assert not any(queues.values()) and not in_flight, "orders left"

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return out


@pytest.mark.parametrize("registered", [True, False])
def test_one_input_active_then_each_order_goes_through_one_or_zero_cycles_after_it_is_offered(registered):
    for name in ("a", "b"):
        offers = {"a": [], "b": []}
        offers[name] = [(3 * n, order(0, n)) for n in range(10)]
        out = run_merge(offers, cycles=40, registered=registered)
        assert [cycle - offered for cycle, _n, _o, offered in out] == [int(registered)] * 10
        assert [item for _c, _n, item, _o in out] == [item for _c, item in offers[name]]
    print(f"\norder merge (registered={registered}): {int(registered)} cycle(s) added")


@pytest.mark.parametrize("registered", [True, False])
def test_back_to_back_orders_on_one_input_then_one_per_cycle(registered):
    out = run_merge({"a": [(0, order(0, n)) for n in range(8)], "b": []}, cycles=12, registered=registered)
    assert [cycle for cycle, _n, _o, _f in out] == [n + int(registered) for n in range(8)]


@pytest.mark.parametrize("registered", [True, False])
def test_both_inputs_offering_then_round_robin(registered):
    offers = {"a": [(0, order(0, n)) for n in range(6)], "b": [(0, order(1, n)) for n in range(6)]}
    out = run_merge(offers, cycles=16, registered=registered)
    names = [name for _c, name, _o, _f in out]
    assert names in (["a", "b"] * 6, ["b", "a"] * 6)
    assert [cycle for cycle, _n, _o, _f in out] == [n + int(registered) for n in range(12)]


@pytest.mark.parametrize("registered", [True, False])
def test_pair_legs_then_kept_together_while_the_other_input_offers(registered):
    # b offers leg A at cycle 2 and leg B two cycles later; a offers an order every cycle.
    legs = [(2, order(1, 1, more_legs=1)), (4, order(1, 2))]
    out = run_merge({"a": [(0, order(0, n)) for n in range(10)], "b": legs}, cycles=20, registered=registered)
    names = [name for _c, name, _o, _f in out]
    first = names.index("b")
    assert names[first:first + 2] == ["b", "b"]
    assert out[first + 1][0] == 4 + int(registered)         # a waited for leg B
    assert [item["shares"] for _c, name, item, _f in out if name == "a"] == list(range(10))


@pytest.mark.parametrize("registered", [True, False])
def test_random_offers_and_back_pressure_then_nothing_lost_order_kept_legs_together(registered):
    rng = random.Random(5)
    offers = {"a": [], "b": []}
    cycle = 0
    for n in range(300):
        cycle += rng.choice((0, 1, 1, 2, 5))
        offers["a"].append((cycle, order(0, n)))
    cycle = 0
    for n in range(0, 200, 2):
        cycle += rng.choice((1, 3, 8))
        offers["b"] += [(cycle, order(1, n, more_legs=1)), (cycle + rng.choice((0, 1, 3)), order(1, n + 1))]
    out = run_merge(offers, cycles=1500, registered=registered, out_ready=lambda cycle: rng.random() < 0.7)
    for name in ("a", "b"):
        assert [item for _c, n, item, _f in out if n == name] == [item for _c, item in offers[name]]
    for index, (_c, name, item, _f) in enumerate(out):
        if item["more_legs"]:
            assert out[index + 1][1] == name and out[index + 1][2]["shares"] == item["shares"] + 1


def test_threshold_and_pair_strategies_merged_into_the_gate_then_pair_legs_reach_the_gate_back_to_back():
    symbols = 4
    m = Module()
    m.submodules.threshold = threshold = ThresholdStrategy(symbols)
    m.submodules.pair = pair = PairStrategy(symbols)
    m.submodules.merge = merge = OrderMerge()
    m.submodules.gate = gate = RiskGate(symbols)
    wiring.connect(m, threshold.o_order, merge.i_a)
    wiring.connect(m, pair.o_order, merge.i_b)
    wiring.connect(m, merge.o_order, gate.i_order)
    taken = []
    passed = []

    async def testbench(ctx):
        ctx.set(gate.limits, {"max_shares": 1000, "max_notional": 1000 * 200_0000, "collar_ticks": 100,
                              "bucket_capacity": 100, "refill_cycles": 1})
        ctx.set(gate.o_order.ready, 1)
        ctx.set(gate.o_reject.ready, 1)
        # Slot 0: threshold rule (buy when ask <= 101.0000); slots 1 and 2: the pair (A rich sells 1, buys 2).
        ctx.set(threshold.rule, {"enable": 1, "buy_threshold": 101_0000, "shares": 100})
        ctx.set(threshold.rule_we, 1)
        ctx.set(threshold.rules_commit, 1)
        ctx.set(pair.rule, {"enable": 1, "slot_a": 1, "slot_b": 2, "ratio": 1 << 16, "upper": 50, "lower": -50,
                            "shares_a": 100, "shares_b": 100})
        ctx.set(pair.rule_we, 1)
        ctx.set(pair.rules_commit, 1)
        await ctx.tick()
        for port in (threshold.rule_we, threshold.rules_commit, pair.rule_we, pair.rules_commit):
            ctx.set(port, 0)
        for slot in range(3):
            ctx.set(gate.position_we, 1)
            ctx.set(gate.position_slot, slot)
            ctx.set(gate.position_limit, 10_000)
            ctx.set(gate.notional_size_we, 1)
            ctx.set(gate.notional_size_slot, slot)
            ctx.set(gate.notional_size, 100)
            await ctx.tick()
        ctx.set(gate.position_we, 0)
        ctx.set(gate.notional_size_we, 0)
        for _ in range(200):
            await ctx.tick()
        # BBOs: slot 2 at 99.00/100.00, then slot 1 rich at 101.00/102.00 (101.00 - 100.00 > 0.0050), and at the
        # same time threshold updates of slot 0 every cycle.
        updates = [(2, 99_0000, 100_0000), (1, 101_0000, 102_0000)]
        for cycle in range(60):
            bbo = {"slot": 0, "bid_price": 99_0000, "ask_price": 100_0000 + cycle}
            ctx.set(threshold.i_bbo.valid, cycle < 30)
            ctx.set(threshold.i_bbo.payload, bbo)
            tap = updates.pop(0) if cycle in (3, 4) else None
            ctx.set(pair.i_bbo_tap.valid, tap is not None)
            ctx.set(gate.i_bbo_tap.valid, tap is not None or cycle == 0)
            if tap is not None:
                payload = {"slot": tap[0], "bid_price": tap[1], "ask_price": tap[2]}
                ctx.set(pair.i_bbo_tap.payload, payload)
                ctx.set(gate.i_bbo_tap.payload, payload)
            elif cycle == 0:
                ctx.set(gate.i_bbo_tap.payload, bbo)
            if ctx.get(gate.i_order.valid) and ctx.get(gate.i_order.ready):
                taken.append(as_dict(ctx.get(gate.i_order.payload)))
            if ctx.get(gate.o_order.valid):
                passed.append(as_dict(ctx.get(gate.o_order.payload)))
            await ctx.tick()

    simulator = Simulator(m)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    slots = [item["slot"] for item in taken]
    assert 1 in slots and 0 in slots
    leg_a = slots.index(1)
    assert slots[leg_a + 1] == 2 and taken[leg_a]["more_legs"] == 1 and taken[leg_a + 1]["more_legs"] == 0
    assert [item["slot"] for item in passed].count(0) >= 2 and {1, 2} <= {item["slot"] for item in passed}
