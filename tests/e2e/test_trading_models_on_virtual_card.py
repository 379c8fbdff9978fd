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
    assert len(result.gate_orders) >= 5, "the sample strategy must trade this session for the check to mean much"
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


def risk_model_decisions(strategy, result):
    """The reference risk gate run over the orders the card's gate took, at the cycles it took them, with the
    BBO updates it saw (an update applies to orders taken from the next cycle on)."""
    from t2t.trade.reference import RiskGateModel, RiskLimits
    from t2t_sim.virtual_card import RESET_CYCLES

    risk = strategy.risk
    model = RiskGateModel(8, RiskLimits(
        max_shares=risk.max_shares_per_order, max_notional=risk.max_notional_ticks, collar_ticks=risk.collar_ticks,
        bucket_capacity=risk.bucket_capacity, refill_cycles=risk.refill_cycles,
        duplicate_window=risk.duplicate_window_cycles, max_rejects=risk.max_rejects,
        reject_window=risk.reject_window_cycles))
    restricted = set()
    for slot, symbol, _ in result.slot_map.entries:
        model.set_position(slot, 0, risk.position_limits.get(symbol, risk.default_position_limit))
        if symbol in risk.restricted:
            restricted.add(slot)
    model.set_restricted(restricted)
    updates = iter(result.bbo_updates)
    update = next(updates, None)
    decisions = []
    for order in result.gate_orders:
        while update is not None and update["cycle"] < order["cycle"]:
            model.on_bbo(update["slot"], update["bid_price"], update["ask_price"])
            update = next(updates, None)
        decisions.append(model.submit(order["cycle"] - RESET_CYCLES, order))
    return model, decisions


def test_risk_gate_decisions_equal_the_reference_risk_model(strategy, replayed):
    from t2t.trade.reference import RejectReason

    _, result = replayed
    assert result.counters.get("risk.reject_log_dropped", 0) == 0 and result.counters["orders.log_dropped"] == 0
    model, decisions = risk_model_decisions(strategy, result)
    accepted = [order for order, reason in zip(result.gate_orders, decisions) if reason == RejectReason.NONE]
    assert [(o["locate"], "S" if o["side"] else "B", o["shares"], o["price"], o["timestamp"]) for o in accepted] == [
        (o.locate, o.side, o.shares, o.price, o.timestamp_ns) for o in result.orders]
    expected_rejects = [(r["locate"], "S" if r["side"] else "B", r["shares"], r["price"], r["reason"].name.lower())
                        for r in model.rejects]
    assert expected_rejects == [(r.locate, r.side, r.shares, r.price, r.reason) for r in result.rejects]
    reasons = {reason for reason in decisions if reason != RejectReason.NONE}
    assert len(reasons) >= 2, f"the session should exercise several checks, got {reasons}"
