"""ThresholdStrategyModel on hand cases, rule by rule."""

import pytest

from t2t.trade.reference import StrategyRule, ThresholdStrategyModel


def bbo(slot=0, bid=0, ask=0, degraded=0):
    return {"slot": slot, "locate": 5, "bid_price": bid, "ask_price": ask, "degraded": degraded,
            "timestamp": 1, "stamp": 2}


def strategy(rule):
    model = ThresholdStrategyModel(2)
    model.stage(0, rule)
    model.commit()
    return model


def test_strategy_buys_at_ask_plus_offset_and_sells_at_bid_minus_offset_floored():
    model = strategy(StrategyRule(enable=True, buy_threshold=100, sell_threshold=200, shares=5, offset=3))
    assert model.on_bbo(0, bbo(ask=100))["price"] == 103
    assert model.on_bbo(1, bbo(bid=201))["price"] == 198
    model = strategy(StrategyRule(enable=True, sell_threshold=1, shares=5, offset=30))
    assert model.on_bbo(0, bbo(bid=20))["price"] == 1


def test_strategy_staged_rule_waits_for_commit():
    model = ThresholdStrategyModel(2)
    model.stage(0, StrategyRule(enable=True, buy_threshold=100, shares=1))
    assert model.on_bbo(0, bbo(ask=90)) is None
    model.commit()
    assert model.on_bbo(1, bbo(ask=90)) is not None


def test_strategy_no_trade_conditions_counted_in_order():
    model = strategy(StrategyRule(enable=True, buy_threshold=100, shares=1))
    assert model.on_bbo(0, bbo(bid=95, ask=90, degraded=1), halted=True) is None
    assert model.on_bbo(1, bbo(bid=95, ask=90), halted=True) is None
    assert model.on_bbo(2, bbo(bid=90, ask=90)) is None
    assert {name: value for name, value in model.counters.items() if value} == {
        "suppressed_degraded": 1, "suppressed_halted": 1, "suppressed_crossed": 1}


def test_strategy_cooldown_counts_cycles_from_the_signal():
    model = strategy(StrategyRule(enable=True, buy_threshold=100, shares=1, cooldown=5))
    fired = [model.on_bbo(cycle, bbo(ask=100)) is not None for cycle in range(12)]
    assert fired == [True, False, False, False, False, True, False, False, False, False, True, False]


def test_rule_out_of_range_then_refused():
    with pytest.raises(ValueError):
        StrategyRule(offset=1 << 16)
    with pytest.raises(ValueError):
        StrategyRule(buy_threshold=-1)


def test_orders_are_single_legs_and_pair_legs_say_which_one_more_follows():
    from t2t.trade.reference import PairRule, PairStrategyModel
    model = strategy(StrategyRule(enable=True, buy_threshold=100, shares=5))
    assert model.on_bbo(0, bbo(ask=100))["more_legs"] == 0
    pair = PairStrategyModel()
    pair.stage(PairRule(enable=True, slot_a=0, slot_b=1, upper=10, lower=-10, shares_a=1, shares_b=1))
    pair.commit()
    pair.on_bbo(0, bbo(slot=1, bid=99, ask=100))
    legs = pair.on_bbo(1, bbo(slot=0, bid=200, ask=201))
    assert [leg["more_legs"] for leg in legs] == [1, 0]
