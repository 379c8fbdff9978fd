"""The Python reference strategy and risk gate run over what a simulated card's taps recorded.

Shared by the end-to-end checks on the virtual card (``tests/e2e/test_trading_models_on_virtual_card.py``) and on
the cocotb testbench (``tests/cocotb/cocotb_end_to_end.py``): both record every BBO update the strategy took and
every order the risk gate took, with the cycle of each handshake, and ask the models what the card should have
done. Updates and orders are dicts of the gateware's ``BboUpdate`` / ``OrderRequest`` fields plus ``cycle``.
"""

from t2t.trade.reference import RejectReason, RiskGateModel, RiskLimits, StrategyRule, ThresholdStrategyModel

__all__ = ["ORDER_FIELDS", "halts_by_time", "strategy_rule", "risk_limits", "strategy_model_orders",
           "risk_model_decisions", "accepted_rows", "order_log_rows", "reject_rows", "reject_log_rows"]

#: The fields of an order the strategy model predicts exactly.
ORDER_FIELDS = ("slot", "locate", "side", "shares", "price", "time_in_force", "timestamp", "stamp")


def halts_by_time(messages, locates):
    """``[(timestamp_ns, locate, halted)]`` of the trading actions (H) of followed stocks among ``messages``
    (decoded ITCH messages, in feed order)."""
    return [(m.timestamp_ns, m.locate, m.trading_state != "T") for m in messages
            if m.type == "H" and m.locate in locates]


def strategy_rule(rule):
    """The reference model's rule for a thresholds file's rule (:class:`t2t.config.trading.SymbolThresholds`)."""
    return StrategyRule(enable=rule.enabled, buy_threshold=rule.buy_below or 0, sell_threshold=rule.sell_above or 0,
                        shares=rule.shares, offset=rule.offset_ticks, time_in_force=rule.time_in_force,
                        cooldown=rule.cooldown_cycles, one_shot=rule.one_shot)


def risk_limits(risk):
    """The reference model's limits for a risk file (:class:`t2t.config.trading.RiskConfig`)."""
    return RiskLimits(
        max_shares=risk.max_shares_per_order, max_notional=risk.max_notional_ticks, collar_ticks=risk.collar_ticks,
        bucket_capacity=risk.bucket_capacity, refill_cycles=risk.refill_cycles,
        duplicate_window=risk.duplicate_window_cycles, max_rejects=risk.max_rejects,
        reject_window=risk.reject_window_cycles)


def _stage_thresholds(model, thresholds, slot_map):
    # As t2t.trading.load_thresholds: every slot of the map gets its rule, or a disabled one.
    for slot, symbol, _ in slot_map.entries:
        rule = thresholds.symbols.get(symbol)
        model.stage(slot, strategy_rule(rule) if rule else StrategyRule())
    model.commit()


def strategy_model_orders(thresholds, slot_map, bbo_updates, halts=(), changes=()):
    """The reference threshold strategy over the BBO updates the card's strategy took (at their cycles).

    ``halts`` as from :func:`halts_by_time` (a halt applies to updates from its timestamp on); ``changes`` is a
    list of ``(update index, thresholds config)``: a whole thresholds load committed before that update (the
    card's ``rules_commit`` of :func:`t2t.trading.load_thresholds`, done while no update was in flight).
    Returns ``(model, orders)``.
    """
    model = ThresholdStrategyModel(len(slot_map.entries) or 1)
    _stage_thresholds(model, thresholds, slot_map)
    pending_changes = sorted(changes, key=lambda change: change[0])
    halted, pending = {}, list(halts)
    orders = []
    for index, update in enumerate(bbo_updates):
        while pending_changes and pending_changes[0][0] <= index:
            _stage_thresholds(model, pending_changes.pop(0)[1], slot_map)
        while pending and pending[0][0] <= update["timestamp"]:
            _, locate, state = pending.pop(0)
            halted[locate] = state
        order = model.on_bbo(update["cycle"], update, halted.get(update["locate"], False))
        if order is not None:
            orders.append(order)
    return model, orders


def risk_model_decisions(risk, slot_map, bbo_updates, gate_orders, *, cycle_offset=0, symbols=8):
    """The reference risk gate over the orders the card's gate took, at the cycles it took them, with the BBO
    updates it saw (an update applies to orders taken from the next cycle on). ``cycle_offset`` is subtracted from
    the recorded cycles to give the gate's own cycle count (cycle 0 the first after reset). Returns
    ``(model, decisions)``: one :class:`RejectReason` per order (``NONE`` when accepted)."""
    model = RiskGateModel(symbols, risk_limits(risk))
    restricted = set()
    for slot, symbol, _ in slot_map.entries:
        model.set_position(slot, 0, risk.position_limits.get(symbol, risk.default_position_limit))
        if symbol in risk.restricted:
            restricted.add(slot)
    model.set_restricted(restricted)
    updates = iter(bbo_updates)
    update = next(updates, None)
    decisions = []
    for order in gate_orders:
        while update is not None and update["cycle"] < order["cycle"]:
            model.on_bbo(update["slot"], update["bid_price"], update["ask_price"])
            update = next(updates, None)
        decisions.append(model.submit(order["cycle"] - cycle_offset, order))
    return model, decisions


def accepted_rows(gate_orders, decisions):
    """``(locate, side, shares, price, timestamp)`` of the orders the model accepts, comparable with
    :class:`t2t.trading.OrderLogRow` through :func:`order_log_rows`."""
    return [(o["locate"], "S" if o["side"] else "B", o["shares"], o["price"], o["timestamp"])
            for o, reason in zip(gate_orders, decisions) if reason == RejectReason.NONE]


def order_log_rows(rows):
    """:class:`t2t.trading.OrderLogRow` entries as in :func:`accepted_rows`."""
    return [(o.locate, o.side, o.shares, o.price, o.timestamp_ns) for o in rows]


def reject_rows(model_rejects):
    """The model's reject records as ``(locate, side, shares, price, reason)``, comparable with
    :class:`t2t.trading.RejectRow` through :func:`reject_log_rows`."""
    return [(r["locate"], "S" if r["side"] else "B", r["shares"], r["price"], r["reason"].name.lower())
            for r in model_rejects]


def reject_log_rows(rows):
    """:class:`t2t.trading.RejectRow` entries as in :func:`reject_rows`."""
    return [(r.locate, r.side, r.shares, r.price, r.reason) for r in rows]
