"""RiskGateModel on hand cases, check by check."""

import pytest

from t2t.trade.reference import BUCKET_DELAY, TOKEN_DELAY, RejectReason, RiskGateModel, RiskLimits

BUY, SELL = 0, 1
LIMITS = RiskLimits(max_shares=1000, max_notional=1000 * 100_0000, collar_ticks=100, bucket_capacity=2,
                    refill_cycles=10, duplicate_window=50, max_rejects=3, reject_window=100)


def order(slot=0, side=BUY, shares=100, price=100_0000):
    return {"slot": slot, "locate": 7, "side": side, "shares": shares, "price": price}


def gate(**changes):
    model = RiskGateModel(2, RiskLimits(**{**LIMITS.fields(), **changes}))
    model.set_position(0, 0, 500)
    model.on_bbo(0, 99_0000, 100_0000)
    return model


def test_order_within_limits_then_accepted_and_takes_a_token():
    model = gate()
    assert model.submit(20, order()) == RejectReason.NONE
    assert model.tokens == 1 and model.counters["accepted"] == 1


def test_bucket_starts_empty_fills_one_token_per_period_up_to_capacity_and_is_checked_at_the_decision():
    model = gate()
    assert model.submit(9 - BUCKET_DELAY, order()) == RejectReason.RATE_LIMIT
    assert model.submit(10 - BUCKET_DELAY, order(shares=1)) == RejectReason.NONE
    assert model.submit(11 - BUCKET_DELAY, order(shares=2)) == RejectReason.RATE_LIMIT
    assert model.submit(1000, order(shares=3)) == RejectReason.NONE
    assert model.submit(1000, order(shares=4)) == RejectReason.NONE
    assert model.submit(1000, order(shares=5)) == RejectReason.RATE_LIMIT


@pytest.mark.parametrize("changes, item, reason", [
    ({"max_shares": 99}, order(), RejectReason.MAX_SHARES),
    ({"max_notional": 100 * 100_0000 - 1}, order(), RejectReason.MAX_NOTIONAL),
    ({"collar_ticks": 0}, order(price=100_0001), RejectReason.PRICE_COLLAR),
    ({"collar_ticks": 0}, order(side=SELL, price=98_9999), RejectReason.PRICE_COLLAR),
    ({}, order(shares=501), RejectReason.POSITION_LIMIT),
    ({}, order(slot=1), RejectReason.NO_REFERENCE),
    ({}, order(slot=2), RejectReason.RESTRICTED),
])
def test_each_limit_then_its_reason(changes, item, reason):
    model = gate(**changes)
    assert model.submit(100, item) == reason
    assert model.rejects[-1]["reason"] == reason and model.counters[f"rejected_{reason.name.lower()}"] == 1


def test_at_each_limit_then_accepted():
    model = gate(max_shares=500, max_notional=500 * 100_0100, collar_ticks=100)
    assert model.submit(100, order(shares=500, price=100_0100)) == RejectReason.NONE


def test_pending_orders_count_against_the_limit_until_the_host_writes_the_position():
    model = gate(refill_cycles=1, bucket_capacity=100)
    assert [model.submit(100 + n, order(shares=200, price=100_0000 + n)) for n in range(3)] == [
        RejectReason.NONE, RejectReason.NONE, RejectReason.POSITION_LIMIT]
    assert model.submit(110, order(side=SELL, shares=500, price=99_0000)) == RejectReason.NONE
    model.set_position(0, 400, 500)
    assert model.submit(120, order(shares=100)) == RejectReason.NONE
    assert model.submit(121, order(shares=1, price=100_0001)) == RejectReason.POSITION_LIMIT


def test_duplicate_only_within_the_window_and_of_the_last_accepted_order():
    model = gate(refill_cycles=1, bucket_capacity=100)
    assert model.submit(100, order()) == RejectReason.NONE
    assert model.submit(149, order()) == RejectReason.DUPLICATE
    assert model.submit(150, order()) == RejectReason.NONE


def test_rejects_within_the_window_trip_the_kill_switch_until_rearm():
    model = gate(max_shares=10, refill_cycles=1)
    for cycle in (100, 150, 250, 260):     # the window restarts at 250: 250, 260 are two within it
        model.submit(cycle, order())
    assert not model.killed
    model.submit(270, order())
    assert model.killed
    assert model.submit(280, order(shares=5)) == RejectReason.KILLED
    model.rearm()
    assert model.submit(290, order(shares=5)) == RejectReason.NONE


def test_host_kill_level_then_sticky_until_rearm_after_release():
    model = gate()
    model.set_kill(True)
    model.rearm()
    assert model.submit(100, order()) == RejectReason.KILLED
    model.set_kill(False)
    assert model.submit(101, order()) == RejectReason.KILLED
    model.rearm()
    assert model.submit(102, order()) == RejectReason.NONE


def test_reasons_read_as_text():
    assert all(reason.text for reason in RejectReason)


def test_limits_out_of_range_then_refused():
    with pytest.raises(ValueError):
        RiskLimits(max_shares=-1)
    with pytest.raises(ValueError):
        RiskLimits(max_notional=1 << 64)


def test_bucket_checked_at_the_handshake_and_token_taken_after_the_decision():
    # One token per 10 cycles, capacity 2: full at cycle 20. An order taken at 29 is checked with 2 tokens; its token
    # goes at the end of cycle 29 + TOKEN_DELAY, after the refill due then (capped), so 1 is left afterwards...
    model = gate(refill_cycles=10, bucket_capacity=2)
    assert model.submit(29, order()) == RejectReason.NONE
    assert model.tokens == 1
    # ...whereas an order the gateware decided later (it waited for the divider) takes its token then: the refills
    # before its decision were capped, the bucket is full again before it is taken from.
    model = gate(refill_cycles=10, bucket_capacity=2)
    assert model.submit(25, order(), decided=70) == RejectReason.NONE
    assert model.tokens == 1 and model.refills_applied == 7
    assert TOKEN_DELAY == 2 and BUCKET_DELAY == 0
