"""PairStrategy against PairStrategyModel: both legs on a spread outside the band, exact ratio arithmetic, no-trade
conditions, cooldown, atomic rule change, legs held while the output is."""

import random

from amaranth.lib import data
from amaranth.sim import Simulator

from t2t.trade.reference import PAIR_COUNTERS, PairRule, PairStrategyModel
from t2t_gateware.streams import OrderRequest
from t2t_gateware.trade.strategy import PAIR_COUNTERS as GATEWARE_PAIR_COUNTERS
from t2t_gateware.trade.strategy import PAIR_LATENCY, PairStrategy

SYMBOLS = 4
BUY, SELL = 0, 1
# A = slot 1, B = slot 2, A ~ 1.5 x B.
RULE = PairRule(enable=True, slot_a=1, slot_b=2, ratio=0x18000, upper=50, lower=-50, shares_a=100, shares_b=150,
                time_in_force=0, cooldown=0)


def bbo(slot, bid, ask, *, degraded=0, timestamp=0):
    return {"slot": slot, "locate": 10 + slot, "bid_price": bid, "bid_shares": 100, "bid_orders": 1,
            "ask_price": ask, "ask_shares": 100, "ask_orders": 1, "degraded": degraded, "timestamp": timestamp,
            "stamp": 0}


def as_dict(const):
    return {name: int(getattr(const, name).value if hasattr(getattr(const, name), "value") else getattr(const, name))
            for name, _field in data.Layout.cast(OrderRequest)}


def run_pair(schedule, *, out_ready=lambda cycle: True, tail=12):
    """Per cycle: ``bbo`` (an update on the tap), ``rule`` (staged), ``commit``, ``halted`` (mask, held).
    Returns (events, orders with their cycle, counters)."""
    dut = PairStrategy(SYMBOLS)
    events, orders, counters = [], [], {}

    async def testbench(ctx):
        halted = 0
        for cycle in range(len(schedule) + tail):
            actions = schedule[cycle] if cycle < len(schedule) else {}
            ctx.set(dut.cycle, cycle)
            halted = actions.get("halted", halted)
            ctx.set(dut.halted, halted)
            ctx.set(dut.rule_we, "rule" in actions)
            if "rule" in actions:
                ctx.set(dut.rule, actions["rule"].fields())
            ctx.set(dut.rules_commit, actions.get("commit", 0))
            ctx.set(dut.i_bbo_tap.valid, "bbo" in actions)
            if "bbo" in actions:
                ctx.set(dut.i_bbo_tap.payload, actions["bbo"])
                events.append(("update", cycle, actions["bbo"], halted))
            for name in ("rule", "commit"):
                if name in actions:
                    events.append((name, cycle, actions[name]))
            ready = out_ready(cycle)
            ctx.set(dut.o_order.ready, ready)
            if ctx.get(dut.o_order.valid) and ready:
                orders.append((cycle, as_dict(ctx.get(dut.o_order.payload))))
            await ctx.tick()
        for name in GATEWARE_PAIR_COUNTERS:
            counters[name] = ctx.get(getattr(dut, name))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return events, orders, counters


def model_run(events):
    model = PairStrategyModel()
    orders = []
    for kind, cycle, *rest in events:
        if kind == "update":
            update, halted = rest
            rule = model.active
            orders += model.on_bbo(cycle, update, halted=bool((halted >> rule.slot_a | halted >> rule.slot_b) & 1))
        elif kind == "rule":
            model.stage(rest[0])
        elif kind == "commit":
            model.commit()
    return orders, model.counters


def spaced(*actions, gap=8):
    """One action every ``gap`` cycles: each update is evaluated, and its legs sent, before the next."""
    schedule = []
    for action in actions:
        schedule += [action] + [{}] * (gap - 1)
    return schedule


def check_against_model(schedule, **options):
    events, orders, counters = run_pair(schedule, **options)
    expected, expected_counters = model_run(events)
    assert [fields for _cycle, fields in orders] == expected
    assert counters == expected_counters
    return events, orders, counters


SETUP = [{"rule": RULE}, {"commit": 1}]


def test_a_rich_against_b_then_sell_a_at_bid_and_buy_b_at_ask_four_cycles_after_the_update():
    # bid(A) - 1.5 x ask(B) = 151.0600 - 1.5 x 100.7000 = 100 ticks > 50.
    schedule = SETUP + spaced({"bbo": bbo(2, 100_6000, 100_7000)}, {"bbo": bbo(1, 151_0600, 151_0700, timestamp=9)})
    events, orders, counters = check_against_model(schedule)
    trigger = events[-1][1]
    assert [(cycle - trigger, order["slot"], order["side"], order["shares"], order["price"])
            for cycle, order in orders] == [(PAIR_LATENCY, 1, SELL, 100, 151_0600), (PAIR_LATENCY + 1, 2, BUY, 150,
                                                                                      100_7000)]
    assert orders[0][1]["timestamp"] == 9 and counters["signals"] == 1
    assert [order["more_legs"] for _cycle, order in orders] == [1, 0]     # a merge keeps leg B behind leg A
    print(f"\npair latency: {orders[0][0] - trigger} cycles from the update to leg A, leg B one cycle later")


def test_a_cheap_against_b_then_buy_a_at_ask_and_sell_b_at_bid():
    # ask(A) - 1.5 x bid(B) = 150.0000 - 1.5 x 100.3334 = -5001 ticks < -50.
    schedule = SETUP + spaced({"bbo": bbo(1, 149_9000, 150_0000)}, {"bbo": bbo(2, 100_3334, 100_4000)})
    _events, orders, _counters = check_against_model(schedule)
    assert [(order["slot"], order["side"], order["price"]) for _cycle, order in orders] == [
        (1, BUY, 150_0000), (2, SELL, 100_3334)]


def test_spread_at_the_band_then_no_trade_and_just_past_it_a_trade_exact_to_the_ratio_fraction():
    # 1.5 x 100.7000 is exactly 151.0500: bid(A) 151.0550 less that is 50 ticks, not above the band. With a ratio
    # one 65536th above 1.5, bid(A) 151.0566 makes 50.63 ticks (a trade) and 151.0565 makes 49.63 (none).
    schedule = SETUP + spaced({"bbo": bbo(2, 100_6000, 100_7000)}, {"bbo": bbo(1, 151_0550, 151_0700)},
                              {"rule": PairRule(**{**RULE.fields(), "ratio": 0x18001})}, {"commit": 1},
                              {"bbo": bbo(1, 151_0565, 151_0700)}, {"bbo": bbo(1, 151_0566, 151_0700)})
    _events, orders, _counters = check_against_model(schedule)
    assert [order["price"] for _cycle, order in orders] == [151_0566, 100_7000]


def test_untradable_legs_then_counted_and_no_trade():
    schedule = SETUP + spaced({"bbo": bbo(2, 100_6000, 100_7000)}, {"bbo": bbo(1, 151_0600, 0)},
                              {"bbo": bbo(1, 151_0600, 151_0600)}, {"bbo": bbo(1, 151_0600, 151_0700, degraded=1)},
                              {"halted": 0b0100, "bbo": bbo(1, 151_0600, 151_0700)})
    _events, orders, counters = check_against_model(schedule)
    assert orders == [] and counters["suppressed_untradable"] == 5


def test_cooldown_then_one_pair_per_period():
    rule = PairRule(**{**RULE.fields(), "cooldown": 30})
    updates = [{"bbo": bbo(1, 151_0600, 151_0700)}] + [{"bbo": bbo(2, 100_6000, 100_7000)} for _ in range(10)]
    schedule = [{"rule": rule}, {"commit": 1}] + spaced(*updates)
    _events, orders, counters = check_against_model(schedule)
    assert counters["signals"] * 2 == len(orders) and counters["suppressed_cooldown"] > 0


def test_rule_changes_only_at_commit():
    disabled = PairRule(**{**RULE.fields(), "enable": False})
    schedule = [{"rule": disabled}, {"commit": 1}] + spaced(
        {"bbo": bbo(2, 100_6000, 100_7000)}, {"rule": RULE}, {"bbo": bbo(1, 151_0600, 151_0700)}, {"commit": 1},
        {"bbo": bbo(1, 151_0600, 151_0700)})
    events, orders, _counters = check_against_model(schedule)
    commit = [event[1] for event in events if event[0] == "commit"][-1]
    assert len(orders) == 2 and all(cycle > commit for cycle, _order in orders)


def test_output_held_back_then_both_legs_wait_and_none_is_lost():
    schedule = SETUP + spaced({"bbo": bbo(2, 100_6000, 100_7000)}, {"bbo": bbo(1, 151_0600, 151_0700)}, gap=20)
    _events, orders, _counters = check_against_model(schedule, out_ready=lambda cycle: cycle % 4 == 0)
    assert [order["slot"] for _cycle, order in orders] == [1, 2]


def test_update_arriving_while_legs_are_under_way_then_both_legs_carry_the_trigger_of_their_evaluation():
    # The legs of one signal are one decision: a later update of a leg (which triggers the next evaluation) must
    # not lend its timestamp to leg B, or B's tick-to-trade figure would count from the wrong update.
    schedule = SETUP + spaced({"bbo": bbo(2, 100_6000, 100_7000)}) + [
        {"bbo": bbo(1, 151_0600, 151_0700, timestamp=7)}] + [{}] * (PAIR_LATENCY - 1) + [
        {"bbo": bbo(2, 100_6000, 100_7000, timestamp=8)}] + [{}] * 20
    _events, orders, counters = run_pair(schedule, out_ready=lambda cycle: cycle % 3 == 0)
    assert counters["signals"] == 2
    assert [order["timestamp"] for _cycle, order in orders] == [7, 7, 8, 8]


def test_random_spaced_updates_then_same_legs_and_counters_as_model():
    rng = random.Random(3)
    rules = [RULE, PairRule(**{**RULE.fields(), "ratio": 0x10000, "upper": 20, "lower": -20, "cooldown": 40}),
             PairRule(**{**RULE.fields(), "slot_a": 3, "slot_b": 0, "ratio": 0x8000, "upper": 0, "lower": 0})]
    actions = []
    for _ in range(300):
        roll = rng.random()
        if roll < 0.03:
            actions.append({"rule": rng.choice(rules)})
        elif roll < 0.06:
            actions.append({"commit": 1})
        else:
            slot = rng.randrange(SYMBOLS)
            mid = {0: 50_0000, 1: 150_0000, 2: 100_0000, 3: 25_0000}[slot] + rng.randrange(-3000, 3000)
            bid, ask = mid - rng.randrange(1, 300), mid + rng.randrange(1, 300)
            bid, ask = rng.choice([(bid, ask)] * 12 + [(0, ask), (bid, bid), (ask, bid)])
            action = {"bbo": bbo(slot, bid, ask, degraded=int(rng.random() < 0.03), timestamp=rng.randrange(1000))}
            if rng.random() < 0.02:
                action["halted"] = rng.choice((0, 0, 1 << rng.randrange(SYMBOLS)))
            actions.append(action)
    _events, orders, counters = check_against_model([{"rule": RULE}, {"commit": 1}] + spaced(*actions))
    assert len(orders) == 2 * counters["signals"] and {order["side"] for _cycle, order in orders} == {BUY, SELL}
    assert counters["signals"] > 10 and counters["suppressed_untradable"] > 10, counters


def test_counter_names_match_the_model():
    assert GATEWARE_PAIR_COUNTERS == PAIR_COUNTERS
