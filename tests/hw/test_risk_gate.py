"""RiskGate: each check trips and lets through, the kill switch, the reject log, one cycle added, the notional
caps (registered, learned, worked out exactly by the divider), and a random sequence of orders compared with
RiskGateModel."""

import random

from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.sim import Simulator

from t2t.trade import reference
from t2t.trade.reference import RISK_COUNTERS, RiskGateModel, RiskLimits
from t2t_gateware.streams import OrderRequest
from t2t_gateware.trade.risk_gate import COUNTERS, LATENCY, SLOW_LATENCY, RejectReason, RejectRecord, RiskGate
from t2t_gateware.trade.strategy import LATENCY as STRATEGY_LATENCY
from t2t_gateware.trade.strategy import ThresholdStrategy

SYMBOLS = 4
BUY, SELL = 0, 1

# Generous limits: each test tightens the one it trips.
LIMITS = RiskLimits(max_shares=1000, max_notional=1000 * 200_0000, collar_ticks=100, bucket_capacity=100,
                    refill_cycles=1, duplicate_window=0, max_rejects=0, reject_window=0)
# Position 0, limit 10000 shares; BBO 99.0000 / 101.0000.
POSITIONS = {slot: (0, 10_000) for slot in range(SYMBOLS)}
BBOS = {slot: (99_0000, 101_0000) for slot in range(SYMBOLS)}
# One registered order size per slot, 1000 shares: the notional of any order of up to 1000 shares is then checked
# in one cycle as long as its price is within floor(max_notional / 1000).
SIZES = {slot: 1000 for slot in range(SYMBOLS)}


def order(slot=0, side=BUY, shares=100, price=100_0000, locate=None):
    return {"slot": slot, "locate": 200 + slot if locate is None else locate, "side": side, "shares": shares,
            "price": price, "time_in_force": 0, "timestamp": 12345, "stamp": 6, "more_legs": 0}


def as_dict(const, layout):
    return {name: int(getattr(const, name).value if hasattr(getattr(const, name), "value") else getattr(const, name))
            for name, _field in data.Layout.cast(layout)}


def run_gate(schedule, *, limits=LIMITS, positions=POSITIONS, bbos=BBOS, sizes=SIZES, warmup=200, symbols=SYMBOLS,
             out_ready=lambda cycle: True, reject_ready=lambda cycle: True, tail=60, reject_log_depth=16):
    """Write ``positions``, ``bbos`` and the order ``sizes``, wait ``warmup`` cycles (the bucket fills, the sizes'
    caps are worked out), then run ``schedule`` and ``tail`` cycles more after the last order was taken: per
    cycle a dict of ``orders`` (queued, sent in order as soon as the gate takes them), ``bbo`` ((slot, bid, ask)
    on the tap), ``position`` ((slot, position, limit)), ``restricted`` (mask, held), ``kill`` (level, held),
    ``rearm``.

    Returns a dict: ``events`` (in cycle order, for the model), ``accepted`` ((cycle, order)), ``decided`` (the
    cycle each accepted order's ``valid`` rose), ``rejects`` (records), ``counters``, ``killed``, ``slow``."""
    dut = RiskGate(symbols, reject_log_depth=reject_log_depth)
    setup = [{"position": (slot, *value)} for slot, value in positions.items()]
    setup += [{"bbo": (slot, *value)} for slot, value in bbos.items()]
    setup += [{"size": (slot, size)} for slot, size in sizes.items()]
    schedule = setup + [{}] * warmup + list(schedule)
    result = {"events": [], "accepted": [], "decided": [], "rejects": [], "counters": {}}
    events = result["events"]

    async def testbench(ctx):
        ctx.set(dut.limits, limits.fields())
        queue = []
        restricted = kill = 0
        cycle = 0
        offered = False     # o_order.valid was high in the cycle before and not taken
        end = len(schedule) + tail
        while cycle < end:
            actions = schedule[cycle] if cycle < len(schedule) else {}
            ctx.set(dut.cycle, cycle)
            if "restricted" in actions:
                restricted = actions["restricted"]
                events.append(("restricted", cycle, restricted))
            if "kill" in actions:
                kill = actions["kill"]
                events.append(("kill", cycle, kill))
            if "limits" in actions:
                ctx.set(dut.limits, actions["limits"].fields())
                events.append(("limits", cycle, actions["limits"]))
            ctx.set(dut.restricted, restricted)
            ctx.set(dut.kill, kill)
            ctx.set(dut.rearm, actions.get("rearm", 0))
            ctx.set(dut.position_we, "position" in actions)
            if "position" in actions:
                slot, position, limit = actions["position"]
                ctx.set(dut.position_slot, slot)
                ctx.set(dut.position, position)
                ctx.set(dut.position_limit, limit)
            ctx.set(dut.notional_size_we, "size" in actions)
            if "size" in actions:
                ctx.set(dut.notional_size_slot, actions["size"][0])
                ctx.set(dut.notional_size, actions["size"][1])
            ctx.set(dut.i_bbo_tap.valid, "bbo" in actions)
            if "bbo" in actions:
                slot, bid, ask = actions["bbo"]
                ctx.set(dut.i_bbo_tap.payload, {"slot": slot, "bid_price": bid, "ask_price": ask})
            queue.extend(actions.get("orders", ()))
            ctx.set(dut.i_order.valid, bool(queue))
            if queue:
                ctx.set(dut.i_order.payload, queue[0])
            ready, log_ready = out_ready(cycle), reject_ready(cycle)
            ctx.set(dut.o_order.ready, ready)
            ctx.set(dut.o_reject.ready, log_ready)
            if queue and ctx.get(dut.i_order.ready):
                events.append(("order", cycle, queue.pop(0)))
            for name in ("bbo", "position"):
                if name in actions:
                    events.append((name, cycle, *actions[name]))
            if actions.get("rearm"):
                events.append(("rearm", cycle))
            valid = ctx.get(dut.o_order.valid)
            if valid and not offered:
                result["decided"].append(cycle)
            offered = valid and not ready
            if valid and ready:
                result["accepted"].append((cycle, as_dict(ctx.get(dut.o_order.payload), OrderRequest)))
            if ctx.get(dut.o_reject.valid) and log_ready:
                result["rejects"].append(as_dict(ctx.get(dut.o_reject.payload), RejectRecord))
            await ctx.tick()
            cycle += 1
            if queue and cycle == end and end < len(schedule) + 10_000:
                end += tail
        assert not queue, "orders left unsent"
        for name in COUNTERS:
            result["counters"][name] = ctx.get(getattr(dut, name))
        result["killed"] = ctx.get(dut.killed)
        result["slow"] = ctx.get(dut.notional_slow)

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return result


def model_run(result, *, limits=LIMITS, symbols=SYMBOLS):
    """Replay the recorded events through the model (within a cycle: levels, the order, then tap, position and
    rearm, as the gateware applies them). An accepted order's token is taken in the cycle its ``valid`` rose."""
    model = RiskGateModel(symbols, limits)
    accepted = []
    decided = iter(result["decided"])
    for event in result["events"]:
        kind, cycle = event[:2]
        if kind == "restricted":
            model.set_restricted({slot for slot in range(symbols) if event[2] >> slot & 1})
        elif kind == "kill":
            model.set_kill(event[2])
        elif kind == "limits":
            model.limits = event[2]
        elif kind == "order":
            if model.check(cycle, event[2]) == reference.RejectReason.NONE:
                assert model.submit(cycle, event[2], decided=next(decided)) == reference.RejectReason.NONE
                accepted.append((cycle, event[2]))
            else:
                model.submit(cycle, event[2])
        elif kind == "bbo":
            model.on_bbo(*event[2:])
        elif kind == "position":
            model.set_position(*event[2:])
        elif kind == "rearm":
            model.rearm()
    return model, accepted


def check_against_model(schedule, **options):
    model_options = {name: options[name] for name in ("limits", "symbols") if name in options}
    result = run_gate(schedule, **options)
    model, accepted = model_run(result, **model_options)
    assert [fields for _cycle, fields in result["accepted"]] == [fields for _cycle, fields in accepted]
    assert result["rejects"] == [{**record, "reason": int(record["reason"])} for record in model.rejects]
    assert result["counters"] == model.counters
    assert result["killed"] == model.killed
    return result


def reasons(result):
    return [RejectReason(record["reason"]).name for record in result["rejects"]]


def one_order_each(*orders, gap=3, **actions):
    """One order every ``gap`` cycles."""
    schedule = []
    for item in orders:
        schedule += [{"orders": [item], **actions}] + [{}] * (gap - 1)
    return schedule


def trip_and_pass(limits_changes, tripping, passing, reason):
    limits = RiskLimits(**{**LIMITS.fields(), **limits_changes})
    result = check_against_model(one_order_each(tripping, passing), limits=limits)
    assert reasons(result) == [reason]
    assert [fields for _cycle, fields in result["accepted"]] == [passing]
    assert result["counters"]["rejected_" + reason.lower()] == 1 and result["counters"]["accepted"] == 1


def test_order_within_every_limit_then_passes_unchanged_one_cycle_later():
    result = check_against_model([{"orders": [order()]}])
    assert result["rejects"] == []
    (cycle, accepted), = result["accepted"]
    handshake = next(event[1] for event in result["events"] if event[0] == "order")
    assert accepted == order()
    assert cycle - handshake == LATENCY == 1
    assert result["slow"] == 0
    print(f"\nrisk gate added latency: {cycle - handshake} cycle")


def handshakes(result):
    return [event[1] for event in result["events"] if event[0] == "order"]


def test_unregistered_size_then_the_divider_decides_it_and_the_next_order_of_that_size_takes_one_cycle():
    result = check_against_model(one_order_each(order(shares=300), order(shares=300, price=100_0001), gap=60),
                                 sizes={})
    (first, _), (second, _) = result["accepted"]
    taken = handshakes(result)
    assert [first - taken[0], second - taken[1]] == [SLOW_LATENCY, LATENCY]
    assert result["slow"] == 1
    print(f"\nrisk gate, first order of a new size: {first - taken[0]} cycles")


def test_registered_size_covers_smaller_orders_and_a_price_above_its_cap_goes_to_the_divider():
    limits = RiskLimits(**{**LIMITS.fields(), "max_notional": 500 * 100_0000})     # cap of 500 shares: 100.0000
    # 400 x 100.0000 is covered; 400 x 101.0000 is above the cap of 500 shares but within the limit (404 < 500):
    # the divider passes it; 500 x 100.0001 is over, and settled at once by the kept size 500.
    result = check_against_model(one_order_each(order(shares=400), order(shares=400, price=101_0000),
                                                order(shares=500, price=100_0001), gap=60),
                                 limits=limits, sizes={0: 500})
    assert reasons(result) == ["MAX_NOTIONAL"]
    taken = handshakes(result)
    assert [cycle - start for (cycle, _), start in zip(result["accepted"], taken)] == [LATENCY, SLOW_LATENCY]
    assert result["slow"] == 1
    assert result["counters"]["rejected_max_notional"] == 1


def test_notional_exact_at_the_limit_both_ways_for_kept_and_new_sizes():
    limits = RiskLimits(**{**LIMITS.fields(), "max_notional": 777 * 100_0003 - 1})
    orders = [order(shares=777, price=100_0003), order(shares=777, price=100_0002),    # new size: divider
              order(shares=777, price=100_0003), order(shares=777, price=100_0002, locate=9)]  # kept: one cycle
    result = check_against_model(one_order_each(*orders, gap=60), limits=limits, sizes={})
    assert reasons(result) == ["MAX_NOTIONAL", "MAX_NOTIONAL"]
    assert len(result["accepted"]) == 2 and result["slow"] == 1


def test_new_max_notional_then_kept_sizes_are_forgotten_and_worked_out_again():
    lower = RiskLimits(**{**LIMITS.fields(), "max_notional": 100 * 100_0000 - 1})
    schedule = one_order_each(order(), gap=60) + [{"limits": lower}, {}] + one_order_each(
        order(price=100_0001), order(shares=99, price=100_0001), gap=60)
    result = check_against_model(schedule)
    # The first order is covered by the cap of 1000 shares at the old limit; after the change that cap is gone.
    assert reasons(result) == ["MAX_NOTIONAL"]
    assert len(result["accepted"]) == 2 and result["slow"] == 2


def test_back_to_back_orders_then_one_taken_every_three_cycles():
    result = check_against_model([{"orders": [order(shares=n) for n in range(1, 6)]}])
    cycles = [event[1] for event in result["events"] if event[0] == "order"]
    assert [later - earlier for earlier, later in zip(cycles, cycles[1:])] == [3] * 4
    assert len(result["accepted"]) == 5


def test_shares_above_max_then_rejected_and_at_max_passes():
    trip_and_pass({"max_shares": 500}, order(shares=501), order(shares=500), "MAX_SHARES")


def test_notional_above_max_then_rejected_and_at_max_passes():
    trip_and_pass({"max_notional": 100 * 100_0000}, order(shares=100, price=100_0001), order(shares=100),
                  "MAX_NOTIONAL")


def test_notional_of_the_widest_order_is_exact():
    limits = {"max_shares": (1 << 32) - 1, "max_notional": ((1 << 32) - 1) * 101_0000 - 1, "collar_ticks": 0}
    widest = order(shares=(1 << 32) - 1, price=101_0000)
    positions = {0: (0, (1 << 32) - 1)}
    result = check_against_model(one_order_each(widest), limits=RiskLimits(**{**LIMITS.fields(), **limits}),
                                 positions=positions)
    assert reasons(result) == ["MAX_NOTIONAL"]
    limits["max_notional"] += 1
    result = check_against_model(one_order_each(widest), limits=RiskLimits(**{**LIMITS.fields(), **limits}),
                                 positions=positions)
    assert reasons(result) == []


def test_buy_above_ask_plus_collar_then_rejected_and_at_the_collar_passes():
    trip_and_pass({"collar_ticks": 50}, order(price=101_0051), order(price=101_0050), "PRICE_COLLAR")


def test_sell_below_bid_minus_collar_then_rejected_and_at_the_collar_passes():
    trip_and_pass({"collar_ticks": 50}, order(side=SELL, price=98_9949), order(side=SELL, price=98_9950),
                  "PRICE_COLLAR")


def test_collar_wider_than_the_price_then_signed_bounds_stay_exact():
    limits = RiskLimits(**{**LIMITS.fields(), "collar_ticks": 100_0000})
    # Sells at any price pass (price + collar >= bid); a buy below the collar (price - collar < 0) passes, one
    # above ask + collar does not.
    orders = [order(side=SELL, price=1), order(side=SELL, price=0, shares=99), order(price=5, shares=98),
              order(price=201_0000, shares=97), order(price=201_0001, shares=96)]
    result = check_against_model(one_order_each(*orders), limits=limits, bbos={0: (99_0000, 101_0000)})
    assert reasons(result) == ["PRICE_COLLAR"] and len(result["accepted"]) == 4


def test_new_collar_then_every_slot_reference_worked_out_again_and_applied():
    narrow = RiskLimits(**{**LIMITS.fields(), "collar_ticks": 0})
    schedule = one_order_each(order(price=101_0100)) + [{"limits": narrow}] + one_order_each(
        order(price=101_0001, shares=99), order(slot=3, side=SELL, price=98_9999), order(slot=3, price=101_0000))
    result = check_against_model(schedule)
    assert reasons(result) == ["PRICE_COLLAR", "PRICE_COLLAR"] and len(result["accepted"]) == 2


def test_empty_reference_side_then_rejected_as_no_reference_and_other_side_passes():
    result = check_against_model(one_order_each(order(slot=1), order(slot=1, side=SELL, price=99_0000)),
                                 bbos={1: (99_0000, 0)})
    assert reasons(result) == ["NO_REFERENCE"]
    assert len(result["accepted"]) == 1


def test_collar_reference_follows_the_bbo_tap():
    schedule = one_order_each(order(price=102_0000)) + [{"bbo": (0, 101_0000, 102_0000)}] + one_order_each(
        order(price=102_0000))
    result = check_against_model(schedule, limits=RiskLimits(**{**LIMITS.fields(), "collar_ticks": 0}))
    assert reasons(result) == ["PRICE_COLLAR"] and len(result["accepted"]) == 1


def test_pending_buys_reach_the_position_limit_then_rejected_until_the_host_writes_the_position():
    schedule = one_order_each(*[order(shares=300)] * 4, order(side=SELL, shares=300))
    schedule += [{"position": (0, 600, 1000)}] + one_order_each(order(shares=400), order(shares=401))
    result = check_against_model(schedule, positions={0: (100, 1000)})
    # 100 + 300 + 300 + 300 = 1000; the fourth would make 1300. After the write: 600 + 400 = 1000, then 1401.
    assert reasons(result) == ["POSITION_LIMIT", "POSITION_LIMIT"]
    assert [(item["side"], item["shares"]) for _cycle, item in result["accepted"]] == [
        (BUY, 300), (BUY, 300), (BUY, 300), (SELL, 300), (BUY, 400)]


def test_position_writes_while_an_order_is_in_flight_then_applied_after_it_in_order():
    writes = [{"position": (0, 0, 1000)}, {"position": (1, 0, 50)}, {"position": (0, 900, 1000)}]
    schedule = [{"orders": [order(shares=300)]}] + writes + one_order_each(order(shares=100, price=100_0001),
                                                                             order(shares=101, price=100_0002))
    result = check_against_model(schedule, positions={0: (0, 10_000)})
    # The first order counted against the old limit; the last write (900 of 1000) leaves room for 100 shares.
    assert reasons(result) == ["POSITION_LIMIT"]
    assert [item["shares"] for _cycle, item in result["accepted"]] == [300, 100]


def test_rearm_while_an_order_is_in_flight_then_applied_after_its_reject():
    limits = RiskLimits(**{**LIMITS.fields(), "max_shares": 10, "max_rejects": 1, "reject_window": 100})
    result = check_against_model([{"orders": [order(shares=11)]}, {"rearm": 1}] + one_order_each(order(shares=5)),
                                 limits=limits)
    assert reasons(result) == ["MAX_SHARES"] and len(result["accepted"]) == 1 and not result["killed"]


def test_sells_past_a_short_limit_then_rejected():
    result = check_against_model(one_order_each(order(slot=2, side=SELL, shares=501, price=99_0000),
                                                order(slot=2, side=SELL, shares=500, price=99_0000)),
                                 positions={2: (-500, 1000)})
    assert reasons(result) == ["POSITION_LIMIT"] and len(result["accepted"]) == 1


def test_slot_without_a_position_write_then_nothing_trades():
    result = check_against_model(one_order_each(order(slot=3)), positions={0: (0, 1000)})
    assert reasons(result) == ["POSITION_LIMIT"]


def test_bucket_empty_then_rate_limited_and_refilled_later_passes():
    limits = RiskLimits(**{**LIMITS.fields(), "bucket_capacity": 3, "refill_cycles": 50})
    burst = [{"orders": [order(shares=shares) for shares in range(1, 6)]}]
    result = check_against_model(burst + [{}] * 60 + [{"orders": [order(shares=9)]}], limits=limits, warmup=200)
    assert reasons(result) == ["RATE_LIMIT", "RATE_LIMIT"]
    assert [item["shares"] for _cycle, item in result["accepted"]] == [1, 2, 3, 9]


def test_same_order_within_the_window_then_duplicate_and_after_it_passes():
    limits = RiskLimits(**{**LIMITS.fields(), "duplicate_window": 10})
    result = check_against_model(one_order_each(order(), order(), order(shares=101), gap=5) + [{}] * 10 +
                                 one_order_each(order(shares=101)), limits=limits)
    assert reasons(result) == ["DUPLICATE"]
    assert len(result["accepted"]) == 3


def test_restricted_slot_then_rejected_and_other_slots_pass():
    result = check_against_model(one_order_each(order(slot=1), order(slot=2), restricted=0b0010))
    assert reasons(result) == ["RESTRICTED"] and result["accepted"][0][1]["slot"] == 2


def test_slot_outside_the_gate_then_restricted():
    result = check_against_model(one_order_each(order(slot=SYMBOLS)))
    assert reasons(result) == ["RESTRICTED"]


def test_host_kill_then_every_order_rejected_until_released_and_rearmed():
    schedule = [{"kill": 1}] + one_order_each(order()) + [{"kill": 0}] + one_order_each(order(shares=7))
    schedule += [{"rearm": 1}] + one_order_each(order(shares=8))
    result = check_against_model(schedule)
    assert reasons(result) == ["KILLED", "KILLED"]
    assert [item["shares"] for _cycle, item in result["accepted"]] == [8]
    assert not result["killed"]


def test_max_rejects_within_the_window_then_killed_sticky_until_rearm():
    limits = RiskLimits(**{**LIMITS.fields(), "max_shares": 10, "max_rejects": 3, "reject_window": 20})
    spaced = one_order_each(order(shares=11), gap=15) * 3          # windows restart: never 3 within 20 cycles
    burst = one_order_each(order(shares=12), order(shares=13), order(shares=14), order(shares=5), gap=2)
    result = check_against_model(spaced + [{}] * 20 + burst, limits=limits)
    assert reasons(result) == ["MAX_SHARES"] * 6 + ["KILLED"]
    assert result["killed"] and result["accepted"] == []
    result = check_against_model(spaced + burst + [{}] * 5 + [{"rearm": 1}] + one_order_each(order(shares=5)),
                                 limits=limits)
    assert not result["killed"] and len(result["accepted"]) == 1


def test_several_checks_fail_then_the_first_reason_is_reported():
    limits = RiskLimits(**{**LIMITS.fields(), "max_shares": 10, "max_notional": 10})
    result = check_against_model(one_order_each(order(shares=11, price=300_0000), restricted=0b1))
    assert reasons(result) == ["RESTRICTED"]
    result = check_against_model(one_order_each(order(shares=11, price=300_0000)), limits=limits)
    assert reasons(result) == ["MAX_SHARES"]


def test_reject_log_full_then_records_dropped_and_counted_but_every_reject_counted_by_reason():
    limits = RiskLimits(**{**LIMITS.fields(), "max_shares": 10})
    result = run_gate([{"orders": [order(shares=11 + n) for n in range(30)]}], limits=limits,
                      reject_ready=lambda cycle: False, reject_log_depth=8)
    assert result["counters"]["rejected_max_shares"] == 30
    assert result["counters"]["reject_log_dropped"] == 30 - 8
    result = run_gate([{"orders": [order(shares=11 + n) for n in range(30)]}], limits=limits,
                      reject_ready=lambda cycle: cycle % 2 == 0, reject_log_depth=8, tail=60)
    logged = [record["shares"] for record in result["rejects"]]
    assert logged == sorted(set(logged)) and len(logged) + result["counters"]["reject_log_dropped"] == 30
    assert logged[:9] == list(range(11, 20)), "drops only once the log is full"


def test_output_held_back_then_orders_wait_and_none_is_lost():
    result = check_against_model([{"orders": [order(shares=n + 1) for n in range(20)]}],
                                 out_ready=lambda cycle: cycle % 3 == 0)
    assert [item["shares"] for _cycle, item in result["accepted"]] == list(range(1, 21))


def random_orders(rng, count):
    prices = (98_9900, 99_0000, 100_0000, 101_0000, 101_0100, 102_0000)
    return [order(slot=rng.randrange(SYMBOLS) if rng.random() < 0.98 else SYMBOLS,
                  side=rng.randrange(2), price=rng.choice(prices),
                  shares=rng.choice((50, 100, 200, 400, 600, 900)) if rng.random() < 0.995 else 450)
            for _ in range(count)]


def test_random_orders_bbos_positions_and_kills_then_same_accepts_and_rejects_as_model():
    rng = random.Random(11)
    limits = RiskLimits(max_shares=800, max_notional=500 * 101_0000, collar_ticks=100, bucket_capacity=4,
                        refill_cycles=24, duplicate_window=150, max_rejects=16, reject_window=40)
    schedule = []
    for _ in range(4000):
        actions = {}
        if rng.random() < 0.6:
            actions["orders"] = random_orders(rng, 3 if rng.random() < 0.1 else 1)
        if rng.random() < 0.1:
            bid = rng.choice((0, 99_0000, 99_0000, 100_0000))
            actions["bbo"] = (rng.randrange(SYMBOLS), bid, rng.choice((0, 101_0000, 101_0000, 102_0000)))
        if rng.random() < 0.03:
            actions["position"] = (rng.randrange(SYMBOLS), rng.randrange(-1500, 1500), rng.randrange(500, 3000))
        if rng.random() < 0.005:
            actions["restricted"] = rng.choice((0, 0, 1 << rng.randrange(SYMBOLS)))
        if rng.random() < 0.001:
            actions["kill"] = 1
        elif rng.random() < 0.01:
            actions["kill"] = 0
        if rng.random() < 0.04:
            actions["rearm"] = 1
        schedule.append(actions)
    positions = {slot: (0, 2000) for slot in range(SYMBOLS)}
    # 400 shares registered per slot (covers 50 to 400); the gate learns 600 (always over the limit) and 450.
    result = check_against_model(schedule, limits=limits, positions=positions,
                                 sizes={slot: 400 for slot in range(SYMBOLS)},
                                 out_ready=lambda cycle: rng.random() < 0.85)
    counters = result["counters"]
    print(f"\nrisk gate random run: {counters}, notional by the divider: {result['slow']}")
    assert result["slow"] >= SYMBOLS
    assert counters["accepted"] > 200
    assert all(counters[name] for name in COUNTERS if name != "reject_log_dropped"), counters


def test_reasons_and_counters_match_the_model():
    assert [(reason.name, reason.value) for reason in RejectReason] == [
        (reason.name, reason.value) for reason in reference.RejectReason]
    assert COUNTERS == RISK_COUNTERS


def test_strategy_into_gate_then_bbo_to_checked_order_in_three_cycles():
    m = Module()
    m.submodules.strategy = strategy = ThresholdStrategy(SYMBOLS)
    m.submodules.gate = gate = RiskGate(SYMBOLS)
    wiring.connect(m, strategy.o_order, gate.i_order)
    seen = []

    async def testbench(ctx):
        ctx.set(gate.limits, LIMITS.fields())
        ctx.set(gate.o_order.ready, 1)
        ctx.set(gate.o_reject.ready, 1)
        ctx.set(strategy.rule, {"enable": 1, "buy_threshold": 101_0000, "shares": 100, "offset": 10})
        ctx.set(strategy.rule_we, 1)
        ctx.set(strategy.rules_commit, 1)
        await ctx.tick()
        ctx.set(strategy.rule_we, 0)
        ctx.set(strategy.rules_commit, 0)
        ctx.set(gate.position_we, 1)
        ctx.set(gate.position_limit, 1000)
        ctx.set(gate.notional_size_we, 1)     # the rule's size, registered with the rule
        ctx.set(gate.notional_size, 100)
        ctx.set(gate.i_bbo_tap.valid, 1)
        ctx.set(gate.i_bbo_tap.payload, {"slot": 0, "bid_price": 99_0000, "ask_price": 101_0000})
        await ctx.tick()
        ctx.set(gate.position_we, 0)
        ctx.set(gate.notional_size_we, 0)
        ctx.set(gate.i_bbo_tap.valid, 0)
        for _ in range(150):        # the bucket fills meanwhile
            await ctx.tick()
        for cycle in range(20):
            ctx.set(strategy.cycle, 1000 + cycle)
            ctx.set(strategy.i_bbo.valid, cycle == 0)
            ctx.set(strategy.i_bbo.payload, {"slot": 0, "bid_price": 99_0000, "ask_price": 101_0000})
            if ctx.get(gate.o_order.valid):
                seen.append((cycle, ctx.get(gate.o_order.payload.price)))
            await ctx.tick()

    simulator = Simulator(m)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    assert seen == [(STRATEGY_LATENCY + LATENCY, 101_0010)]
    print(f"\nBBO update to checked order: {seen[0][0]} cycles (strategy {STRATEGY_LATENCY} + risk gate {LATENCY})")
