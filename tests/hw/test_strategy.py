"""ThresholdStrategy against ThresholdStrategyModel: thresholds, re-arm rules, no-trade conditions, atomic commits."""

import random

from amaranth.lib import data
from amaranth.sim import Simulator

from t2t.trade.reference import STRATEGY_COUNTERS, StrategyRule, ThresholdStrategyModel
from t2t_gateware.streams import OrderRequest
from t2t_gateware.trade.strategy import COUNTERS, LATENCY, ThresholdStrategy

SYMBOLS = 4


def bbo(slot, bid, ask, *, degraded=0, locate=None, timestamp=0):
    return {"slot": slot, "locate": 100 + slot if locate is None else locate, "bid_price": bid, "bid_shares": 100,
            "bid_orders": 1, "ask_price": ask, "ask_shares": 100, "ask_orders": 1, "degraded": degraded,
            "timestamp": timestamp, "stamp": 0}


def as_dict(const, layout):
    return {name: int(getattr(const, name).value if hasattr(getattr(const, name), "value") else getattr(const, name))
            for name, _field in data.Layout.cast(layout)}


def run_strategy(schedule, *, symbols=SYMBOLS, out_ready=lambda cycle: True, tail=12):
    """Run ``schedule``: per cycle, a dict of host actions and updates to queue:
    ``bbo`` (list of updates, sent in order as soon as the strategy takes them), ``rule`` ((slot, StrategyRule),
    staged), ``commit``, ``rearm`` (slot bitmask), ``halted`` (slot bitmask, held from then on).

    Returns (events, orders, counters): events in cycle order as ("update", cycle, bbo, halted) at each handshake
    and ("rule", cycle, slot, rule), ("commit", cycle), ("rearm", cycle, mask); orders as (cycle, fields)."""
    dut = ThresholdStrategy(symbols)
    events, orders, counters = [], [], {}

    async def testbench(ctx):
        queue = []
        halted = 0
        for cycle in range(len(schedule) + tail):
            actions = schedule[cycle] if cycle < len(schedule) else {}
            ctx.set(dut.cycle, cycle)
            if "halted" in actions:
                halted = actions["halted"]
            ctx.set(dut.halted, halted)
            ctx.set(dut.rearm, actions.get("rearm", 0))
            if actions.get("rearm"):
                events.append(("rearm", cycle, actions["rearm"]))
            ctx.set(dut.rule_we, "rule" in actions)
            if "rule" in actions:
                slot, rule = actions["rule"]
                ctx.set(dut.rule_slot, slot)
                ctx.set(dut.rule, rule.fields())
            ctx.set(dut.rules_commit, actions.get("commit", 0))
            queue.extend(actions.get("bbo", ()))
            ctx.set(dut.i_bbo.valid, bool(queue))
            if queue:
                ctx.set(dut.i_bbo.payload, queue[0])
            ready = out_ready(cycle)
            ctx.set(dut.o_order.ready, ready)
            if queue and ctx.get(dut.i_bbo.ready):
                events.append(("update", cycle, queue.pop(0), halted))
            if "rule" in actions:
                events.append(("rule", cycle, *actions["rule"]))
            if actions.get("commit"):
                events.append(("commit", cycle))
            if ctx.get(dut.o_order.valid) and ready:
                orders.append((cycle, as_dict(ctx.get(dut.o_order.payload), OrderRequest)))
            await ctx.tick()
        assert not queue, "updates left unsent"
        for name in COUNTERS:
            counters[name] = ctx.get(getattr(dut, name))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return events, orders, counters


def model_run(events, symbols=SYMBOLS):
    """Replay the recorded events through the model; returns (orders with their update's cycle, counters)."""
    model = ThresholdStrategyModel(symbols)
    orders = []
    for event in events:
        kind, cycle = event[:2]
        if kind == "rearm":
            model.rearm([slot for slot in range(symbols) if event[2] >> slot & 1])
        elif kind == "update":
            order = model.on_bbo(cycle, event[2], halted=bool(event[3] >> event[2]["slot"] & 1))
            if order is not None:
                orders.append((cycle, order))
        elif kind == "rule":
            model.stage(event[2], event[3])
        elif kind == "commit":
            model.commit()
    return orders, model.counters


def setup(rules):
    """Schedule entries that stage ``rules`` ({slot: rule}) and commit them."""
    return [{"rule": (slot, rule)} for slot, rule in rules.items()] + [{"commit": 1}]


def check_against_model(schedule, **options):
    events, orders, counters = run_strategy(schedule, **options)
    expected_orders, expected_counters = model_run(events)
    assert [fields for _cycle, fields in orders] == [fields for _cycle, fields in expected_orders]
    assert counters == expected_counters
    return events, orders, counters


BUY_AT_100 = StrategyRule(enable=True, buy_threshold=100_0000, shares=300, offset=200, time_in_force=0)


def test_ask_at_or_below_buy_threshold_then_buy_at_ask_plus_offset_two_cycles_later():
    schedule = setup({1: BUY_AT_100}) + [{}, {"bbo": [bbo(1, 99_0000, 100_0001)]}, {},
                                           {"bbo": [bbo(1, 99_0000, 100_0000, timestamp=77)]}]
    events, orders, counters = check_against_model(schedule)
    update_cycle = [event[1] for event in events if event[0] == "update"][1]
    assert len(orders) == 1
    cycle, order = orders[0]
    assert cycle - update_cycle == LATENCY == 2
    assert order == {"slot": 1, "locate": 101, "side": 0, "shares": 300, "price": 100_0200, "time_in_force": 0,
                     "timestamp": 77, "stamp": 0, "more_legs": 0}
    assert counters["signals"] == 1
    print(f"\nstrategy latency: {cycle - update_cycle} cycles from the BBO handshake to the order's valid")


def test_bid_at_or_above_sell_threshold_then_sell_at_bid_minus_offset_floored_at_one_tick():
    rule = StrategyRule(enable=True, sell_threshold=5, shares=10, offset=200, time_in_force=99998)
    schedule = setup({0: rule, 2: StrategyRule(enable=True, sell_threshold=50_0000, shares=1, offset=3)})
    schedule += [{"bbo": [bbo(0, 4, 0), bbo(0, 150, 0), bbo(2, 50_0000, 60_0000)]}]
    _events, orders, _counters = check_against_model(schedule)
    assert [(order["slot"], order["side"], order["price"]) for _cycle, order in orders] == [
        (0, 1, 1), (2, 1, 49_9997)]


def test_disabled_rule_or_empty_side_or_zero_threshold_then_no_order():
    schedule = setup({0: StrategyRule(enable=False, buy_threshold=100), 1: BUY_AT_100})
    schedule += [{"bbo": [bbo(0, 0, 50), bbo(1, 90_0000, 0), bbo(1, 200_0000, 300_0000)]}]
    _events, orders, counters = check_against_model(schedule)
    assert orders == [] and not any(counters.values())


def test_degraded_halted_crossed_or_locked_book_then_no_trade_and_counted():
    schedule = setup({1: BUY_AT_100}) + [
        {"bbo": [bbo(1, 99_0000, 100_0000, degraded=1)]},
        {"halted": 0b10, "bbo": [bbo(1, 99_0000, 100_0000)]},
        {"halted": 0, "bbo": [bbo(1, 100_0000, 100_0000), bbo(1, 100_0001, 100_0000)]},
        {"bbo": [bbo(1, 99_0000, 100_0000)]},
    ]
    _events, orders, counters = check_against_model(schedule)
    assert len(orders) == 1
    assert {name: value for name, value in counters.items() if value} == {
        "signals": 1, "suppressed_degraded": 1, "suppressed_halted": 1, "suppressed_crossed": 2}


def test_both_sides_hit_then_conflict_and_no_order():
    rule = StrategyRule(enable=True, buy_threshold=100, sell_threshold=90, shares=1)
    _events, orders, counters = check_against_model(setup({3: rule}) + [{"bbo": [bbo(3, 95, 99)]}])
    assert orders == [] and counters["suppressed_conflict"] == 1


def test_cooldown_then_one_signal_per_period_per_side():
    rule = StrategyRule(enable=True, buy_threshold=100, sell_threshold=200, shares=1, cooldown=10)
    updates = [{"bbo": [bbo(0, 50, 100)]} for _ in range(25)] + [{"bbo": [bbo(0, 250, 300)]}]
    events, orders, counters = check_against_model(setup({0: rule}) + updates)
    update_cycles = [event[1] for event in events if event[0] == "update"]
    buy_cycles = [cycle - LATENCY for cycle, order in orders if order["side"] == 0]
    assert [cycle - update_cycles[0] for cycle in buy_cycles] == [0, 10, 20]
    assert [order["side"] for _cycle, order in orders] == [0, 0, 0, 1], "the sell side has its own cooldown"
    assert counters["suppressed_cooldown"] == 22


def test_one_shot_then_silent_until_rearmed():
    rule = StrategyRule(enable=True, buy_threshold=100, shares=1, one_shot=True)
    updates = [{"bbo": [bbo(2, 0, 100)]} for _ in range(5)] + [{"rearm": 0b0100}] + [
        {"bbo": [bbo(2, 0, 100)]} for _ in range(3)] + [{"rearm": 0b0001}, {"bbo": [bbo(2, 0, 100)]}]
    _events, orders, counters = check_against_model(setup({2: rule}) + updates)
    assert len(orders) == 2
    assert counters["suppressed_cooldown"] == 7


def test_rules_change_only_at_commit_never_half_written():
    old = {slot: StrategyRule(enable=True, buy_threshold=100, shares=1) for slot in range(2)}
    new = {slot: StrategyRule(enable=True, buy_threshold=200, shares=2) for slot in range(2)}
    flow = [{"bbo": [bbo(0, 0, 150), bbo(1, 0, 150)]}]
    schedule = setup(old) + flow * 3 + [{"rule": (0, new[0])}] + flow * 3 + [{"rule": (1, new[1])}] + flow * 3
    schedule += [{"commit": 1}] + flow * 3 + [{"rule": (0, old[0])}] + flow * 2
    events, orders, _counters = check_against_model(schedule)
    commit_cycle = [event[1] for event in events if event[0] == "commit"][-1]
    assert orders, "the new rules fire"
    assert all(cycle - LATENCY > commit_cycle for cycle, _order in orders)
    assert {order["slot"] for _cycle, order in orders} == {0, 1}
    assert all(order["shares"] == 2 for _cycle, order in orders), "a staged rule is never active before its commit"


def random_rule(rng):
    buy = rng.choice((0, rng.randrange(90, 110)))
    return StrategyRule(enable=rng.random() < 0.9, buy_threshold=buy,
                        sell_threshold=rng.choice((0, rng.randrange(100, 125))), shares=rng.randrange(1, 1000),
                        offset=rng.randrange(0, 8), time_in_force=rng.choice((0, 99998)),
                        cooldown=rng.choice((0, 3, 20)), one_shot=rng.random() < 0.2)


def test_random_updates_rule_changes_and_back_pressure_then_same_orders_and_counters_as_model():
    rng = random.Random(5)
    schedule = setup({slot: random_rule(rng) for slot in range(SYMBOLS)})
    halted = 0
    for _ in range(4000):
        actions = {}
        if rng.random() < 0.8:
            bid = rng.randrange(85, 130)
            ask = bid + rng.randrange(-1, 6)
            bid, ask = rng.choice(((bid, ask),) * 8 + ((0, ask), (bid, 0)))
            actions["bbo"] = [bbo(rng.randrange(SYMBOLS + 1), bid, ask, degraded=int(rng.random() < 0.05),
                                  timestamp=rng.randrange(1 << 48))]
        if rng.random() < 0.03:
            actions["rule"] = (rng.randrange(SYMBOLS), random_rule(rng))
        if rng.random() < 0.02:
            actions["commit"] = 1
        if rng.random() < 0.02:
            actions["rearm"] = rng.randrange(1 << SYMBOLS)
        if rng.random() < 0.01:
            halted = rng.randrange(1 << SYMBOLS) & rng.randrange(1 << SYMBOLS)
            actions["halted"] = halted
        schedule.append(actions)
    _events, orders, counters = check_against_model(schedule, out_ready=lambda cycle: rng.random() < 0.8)
    assert len(orders) > 300
    assert all(counters[name] for name in STRATEGY_COUNTERS), counters


def test_counter_names_match_the_model():
    assert COUNTERS == STRATEGY_COUNTERS


def test_slot_staged_twice_the_second_time_in_the_commit_cycle_then_the_last_write_is_active():
    first = StrategyRule(enable=True, buy_threshold=100, shares=1)
    second = StrategyRule(enable=True, buy_threshold=100, shares=2)
    schedule = [{"rule": (0, first)}, {"rule": (0, second), "commit": 1}, {"bbo": [bbo(0, 0, 100)]}]
    _events, orders, _counters = check_against_model(schedule)
    assert [order["shares"] for _cycle, order in orders] == [2]
