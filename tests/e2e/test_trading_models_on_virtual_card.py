"""End to end through the Verilated card: on a long generated session, the orders the strategy sends equal the
Python reference strategy's, and the risk gate's decisions equal the reference risk model's, order for order and
cycle for cycle (the card's BBO and order taps give the cycle each update and order was taken)."""

import pytest

from t2t.config.strategy import load_strategy
from t2t.feed.binaryfile import iter_messages
from t2t.feed.generator import write_session
from t2t_sim.replay import Replay
from t2t_sim.trading_models import (ORDER_FIELDS, accepted_rows, halts_by_time, order_log_rows, reject_log_rows,
                                    reject_rows, risk_model_decisions, strategy_model_orders)

MESSAGES = 60_000


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


def test_the_session_is_long_and_trades(replayed):
    _, result = replayed
    assert result.messages == MESSAGES
    assert len(result.bbo_updates) > 5_000
    assert len(result.gate_orders) >= 5, "the sample strategy must trade this session for the check to mean much"
    assert result.orders and result.rejects


def test_strategy_orders_equal_the_reference_strategy(strategy, replayed):
    path, result = replayed
    halts = halts_by_time(iter_messages(path), {locate for _, _, locate in result.slot_map.entries})
    model, expected = strategy_model_orders(strategy.thresholds, result.slot_map, result.bbo_updates, halts)
    observed = [{name: order[name] for name in ORDER_FIELDS} for order in result.gate_orders]
    expected = [{name: order[name] for name in ORDER_FIELDS} for order in expected]
    first = next((i for i, (a, b) in enumerate(zip(observed, expected)) if a != b), None)
    assert first is None, f"order {first}: card {observed[first]} model {expected[first]}"
    assert len(observed) == len(expected)


def test_risk_gate_decisions_equal_the_reference_risk_model(strategy, replayed):
    from t2t.trade.reference import RejectReason
    from t2t_sim.virtual_card import RESET_CYCLES

    _, result = replayed
    assert result.counters.get("risk.reject_log_dropped", 0) == 0 and result.counters["orders.log_dropped"] == 0
    model, decisions = risk_model_decisions(strategy.risk, result.slot_map, result.bbo_updates, result.gate_orders,
                                            cycle_offset=RESET_CYCLES)
    assert accepted_rows(result.gate_orders, decisions) == order_log_rows(result.orders)
    assert reject_rows(model.rejects) == reject_log_rows(result.rejects)
    reasons = {reason for reason in decisions if reason != RejectReason.NONE}
    assert len(reasons) >= 2, f"the session should exercise several checks, got {reasons}"
