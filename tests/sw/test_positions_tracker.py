"""Position tracker: P&L against hand-computed cases, order states, refusals, limits, kill switch, REDUCING mode,
flattening and value at risk."""

import logging
from fractions import Fraction

import numpy as np
import pytest

from t2t.positions import (TRANSITIONS, IllegalTransition, OrderEvent, OrderState, Position, PositionLimits,
                           PositionTracker, ReturnHistory, TrackerMode, dollars, historical_var, next_state, ticks)
from t2t.trade import ouch

# Prices in Price(4) ticks: $10.00 is 100_000.
D10_00, D10_30, D10_50, D10_40, D10_41, D10_10, D10_05 = 100_000, 103_000, 105_000, 104_000, 104_100, 101_000, 100_500


def enter(token, side, shares, price, stock="AAPL", tif=0):
    return ouch.EnterOrder(token=token, side=side, shares=shares, stock=stock, price=price, time_in_force=tif,
                           firm="", display="Y", capacity="P", intermarket_sweep="N", minimum_quantity=0,
                           cross_type="N", customer_type="N")


def accepted(order, timestamp=1, reference=1):
    return ouch.Accepted(timestamp=timestamp, token=order.token, side=order.side, shares=order.shares,
                         stock=order.stock, price=order.price, time_in_force=order.time_in_force, firm=order.firm,
                         display=order.display, order_reference=reference, capacity=order.capacity,
                         intermarket_sweep=order.intermarket_sweep, minimum_quantity=order.minimum_quantity,
                         cross_type=order.cross_type, order_state="L", bbo_weight=" ")


def executed(token, shares, price, match, timestamp=2):
    return ouch.Executed(timestamp=timestamp, token=token, shares=shares, price=price, liquidity_flag="R",
                         match_number=match)


def canceled(token, shares, timestamp=3, reason="I"):
    return ouch.Canceled(timestamp=timestamp, token=token, decrement_shares=shares, reason=reason)


class Session:
    """A tracker plus helpers that send an order and fill it."""

    def __init__(self, tracker=None, **options):
        self.tracker = tracker or PositionTracker(**options)
        self.number = 0
        self.match = 0

    def trade(self, side, shares, price, stock="AAPL", fills=None):
        """Send, accept and fill an order (``fills``: list of (shares, price), default one full fill)."""
        self.number += 1
        order = enter(f"TEST{self.number:010d}", side, shares, price, stock)
        assert self.tracker.order_sent(order, self.number * 10)
        assert self.tracker.on_message(accepted(order, self.number * 10 + 1))
        for part_shares, part_price in fills or [(shares, price)]:
            self.match += 1
            outcome = self.tracker.on_message(executed(order.token, part_shares, part_price, self.match,
                                                       self.number * 10 + 2))
            assert outcome, outcome.reason
        return order


# --- P&L by hand ------------------------------------------------------------------------------------------------


def test_position_average_cost_realized_unrealized_and_flip_by_hand():
    session = Session()
    tracker = session.tracker
    session.trade("B", 100, D10_00)
    session.trade("B", 200, D10_30)
    position = tracker.positions["AAPL"]
    # 100 x 10.00 + 200 x 10.30 = $3,060.00 for 300 shares: average $10.20.
    assert (position.net_shares, position.cost, position.realized) == (300, 30_600_000, 0)
    assert position.average_price == 102_000

    session.trade("S", 150, D10_50)
    # 150 shares of cost 3,060 x 150/300 = $1,530.00 sold for $1,575.00: +$45.00 realized.
    assert (position.net_shares, position.cost, position.realized) == (150, 15_300_000, 450_000)
    tracker.mark("AAPL", D10_40, D10_41, 100)
    # A long marks at the bid: 150 x 10.40 - 1,530.00 = +$30.00.
    assert tracker.unrealized == 300_000
    assert tracker.total_pnl == 750_000
    assert (tracker.gross_exposure, tracker.net_exposure) == (15_600_000, 15_600_000)

    session.trade("S", 250, D10_10)
    # Flip through zero: 150 closed at 10.10 (-$15.00), 100 opened short at 10.10.
    assert (position.net_shares, position.cost, position.realized) == (-100, 10_100_000, 300_000)
    assert position.average_price == D10_10
    tracker.mark("AAPL", 100_400, D10_05, 200)
    # A short marks at the ask: 1,010.00 - 100 x 10.05 = +$5.00.
    assert tracker.unrealized == 50_000
    assert (tracker.gross_exposure, tracker.net_exposure) == (10_050_000, -10_050_000)

    session.trade("B", 100, D10_00)
    # Short 100 at 10.10 bought back at 10.00: +$10.00; flat.
    assert (position.net_shares, position.cost, position.realized) == (0, 0, 400_000)
    assert position.average_price is None
    assert tracker.unrealized == 0 and tracker.realized == 400_000
    assert dollars(tracker.total_pnl) == 40.0
    assert (position.bought, position.sold, position.fills) == (400, 400, 5)
    assert [fill.net_shares for fill in tracker.fills] == [100, 300, 150, -100, 0]


def test_partial_fills_move_the_order_and_the_average_price():
    session = Session()
    order = session.trade("B", 300, D10_30, fills=[(100, 102_900), (200, D10_30)])
    record = session.tracker.orders[order.token]
    assert record.state is OrderState.FILLED
    assert (record.filled, record.filled_notional) == (300, 100 * 102_900 + 200 * D10_30)
    assert session.tracker.positions["AAPL"].average_price == Fraction(100 * 102_900 + 200 * D10_30, 300)
    states = []
    tracker = session.tracker
    second = enter("PARTIAL0000001", "S", 300, D10_30)
    tracker.order_sent(second)
    tracker.on_message(accepted(second))
    states.append(tracker.orders[second.token].state)
    tracker.on_message(executed(second.token, 100, D10_30, 900))
    states.append(tracker.orders[second.token].state)
    tracker.on_message(canceled(second.token, 50))
    states.append(tracker.orders[second.token].state)
    assert tracker.orders[second.token].open_shares == 150
    tracker.on_message(canceled(second.token, 150))
    states.append(tracker.orders[second.token].state)
    assert states == [OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED, OrderState.PARTIALLY_FILLED,
                      OrderState.CANCELED]
    assert tracker.orders[second.token].open_shares == 0
    assert tracker.positions["AAPL"].net_shares == 200


def test_integer_average_cost_keeps_the_total_exact():
    position = Position("X")
    position.apply_fill(1, 1, 10_000)
    position.apply_fill(1, 2, 10_001)
    # Cost 30,002 for 3 shares; selling 1 releases 30,002 // 3 = 10,000 of it.
    assert position.apply_fill(-1, 1, 10_000) == 0
    assert position.cost == 20_002
    assert position.apply_fill(-1, 2, 10_000) == -2
    assert (position.net_shares, position.cost, position.realized) == (0, 0, -2)


def test_short_position_from_flat_and_marks_with_one_side_missing():
    position = Position("X")
    position.apply_fill(-1, 100, 50_000)
    assert (position.net_shares, position.cost) == (-100, 5_000_000)
    assert position.unrealized(49_000, 49_500) == 5_000_000 - 4_950_000
    # No ask: a short marks at the bid; no BBO at all: at the last trade price.
    assert position.unrealized(49_000, 0) == 5_000_000 - 4_900_000
    assert position.unrealized(0, 0) == 0
    assert ticks("12.3456") == 123_456 and ticks(1000) == 10_000_000


# --- Order state machine ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(OrderState))
@pytest.mark.parametrize("event", list(OrderEvent))
def test_state_machine_table(state, event):
    if (state, event) in TRANSITIONS:
        assert next_state(state, event) is TRANSITIONS[state, event]
    else:
        with pytest.raises(IllegalTransition):
            next_state(state, event, "TOKEN")


def test_final_states_have_no_way_out():
    for (state, _event) in TRANSITIONS:
        assert not state.final
    assert {state for state in OrderState if state.final} == {OrderState.FILLED, OrderState.CANCELED,
                                                              OrderState.REJECTED}


def test_tracker_refuses_illegal_unknown_and_duplicate_reports_and_logs_them(caplog):
    tracker = PositionTracker()
    order = enter("ORDER000000001", "B", 100, D10_00)
    tracker.order_sent(order)
    caplog.set_level(logging.WARNING, logger="t2t.positions")
    refusals = [
        tracker.on_message(executed(order.token, 100, D10_00, 1)),                 # fill before Accepted
        tracker.on_message(executed("UNKNOWN0000001", 100, D10_00, 2)),             # unknown token
        tracker.on_message(canceled(order.token, 100)),                            # cancel before Accepted
    ]
    assert tracker.on_message(accepted(order))
    refusals += [
        tracker.on_message(accepted(order)),                                       # second Accepted
        tracker.on_message(executed(order.token, 101, D10_00, 3)),                 # overfill
        tracker.on_message(ouch.Rejected(timestamp=5, token=order.token, reason="H")),  # reject after accept
    ]
    assert tracker.on_message(executed(order.token, 60, D10_00, 4))
    refusals += [
        tracker.on_message(executed(order.token, 10, D10_00, 4)),                  # match number seen
        tracker.on_message(canceled(order.token, 41)),                             # more than open
    ]
    assert tracker.on_message(canceled(order.token, 40))
    refusals += [
        tracker.on_message(executed(order.token, 10, D10_00, 5)),                  # fill after cancel
        tracker.on_message(canceled(order.token, 1)),                              # cancel after cancel
    ]
    assert not any(refusals)
    assert len(tracker.refused) == len(refusals) == 10
    assert "is not allowed in state NEW" in refusals[0].reason
    assert "unknown order token" in refusals[1].reason
    assert "duplicate fill" in refusals[6].reason
    assert len([record for record in caplog.records if record.name == "t2t.positions"]) == 10
    assert tracker.positions["AAPL"].net_shares == 60 and len(tracker.fills) == 1
    assert tracker.orders[order.token].state is OrderState.CANCELED
    # Not execution reports: ignored, not refused.
    assert not tracker.on_message(ouch.SystemEvent(timestamp=1, event_code="S"))
    assert len(tracker.refused) == 10


def test_duplicate_sequence_numbers_and_tokens_are_refused():
    tracker = PositionTracker()
    order = enter("ORDER000000001", "S", 100, D10_00)
    assert tracker.order_sent(order)
    assert not tracker.order_sent(order)
    assert tracker.on_message(accepted(order), sequence=1)
    assert tracker.on_message(canceled(order.token, 50), sequence=2)
    # The same partial cancel again, with its sequence number: refused, not counted twice.
    assert not tracker.on_message(canceled(order.token, 50), sequence=2)
    assert tracker.orders[order.token].open_shares == 50
    assert tracker.last_sequence == 2


def test_rejected_order_and_adopted_accepted():
    tracker = PositionTracker()
    order = enter("ORDER000000001", "B", 100, D10_00)
    tracker.order_sent(order)
    assert tracker.on_message(ouch.Rejected(timestamp=1, token=order.token, reason="H"))
    assert tracker.orders[order.token].state is OrderState.REJECTED
    assert tracker.orders[order.token].reject_reason == "H"
    card_order = enter("CARD0000000001", "S", 200, D10_10, "MSFT")
    assert not tracker.on_message(accepted(card_order))
    adopting = PositionTracker(adopt_unknown_accepted=True)
    assert adopting.on_message(accepted(card_order))
    assert adopting.orders[card_order.token].state is OrderState.ACCEPTED
    assert adopting.on_message(executed(card_order.token, 200, D10_10, 7))
    assert adopting.positions["MSFT"].net_shares == -200


def test_client_and_server_packets():
    tracker = PositionTracker()
    order = enter("ORDER000000001", "B", 100, D10_00)
    stream = ouch.encode_packet(ouch.UnsequencedData(ouch.encode_message(order)))
    stream += ouch.encode_packet(ouch.ClientHeartbeat())
    assert [bool(outcome) for outcome in tracker.on_client_packet(stream, 5)] == [True]
    packet = ouch.encode_packet(ouch.SequencedData(ouch.encode_message(accepted(order))))
    assert tracker.on_server_packet(packet, sequence=1)
    assert not tracker.on_server_packet(ouch.encode_packet(ouch.ServerHeartbeat()))
    fill = ouch.encode_packet(ouch.SequencedData(ouch.encode_message(executed(order.token, 100, D10_00, 1))))
    assert tracker.on_server_packet(fill, sequence=2).fill.net_shares == 100


def test_on_position_hook_gets_every_fill():
    pushed = []
    session = Session(on_position=lambda symbol, net: pushed.append((symbol, net)))
    session.trade("B", 300, D10_00, fills=[(100, D10_00), (200, D10_00)])
    session.trade("S", 50, D10_00, stock="MSFT")
    assert pushed == [("AAPL", 100), ("AAPL", 300), ("MSFT", -50)]


# --- Limits, kill switch, REDUCING ------------------------------------------------------------------------------


class CardStub:
    def __init__(self, tracker_box):
        self.kills = []
        self.tracker_box = tracker_box

    def kill(self):
        tracker = self.tracker_box[0]
        # Called within the update: the fill is counted and the tracker already REDUCING.
        self.kills.append((tracker.mode, tracker.positions["AAPL"].net_shares))


def test_loss_limit_breach_kills_within_the_update_and_switches_to_reducing():
    box = []
    card = CardStub(box)
    session = Session(limits=PositionLimits.in_dollars(daily_loss=100), kill=card)
    box.append(session.tracker)
    tracker = session.tracker
    tracker.mark("AAPL", 1_000_000, 1_000_100, 1)
    session.trade("B", 100, 1_000_100)
    assert tracker.unrealized == -10_000 and tracker.mode is TrackerMode.NORMAL
    # Bid down $0.99: 100 x (99.01 - 100.01) = -$100.00, at the limit, not past it.
    assert tracker.mark("AAPL", 990_100, 990_200, 5) == []
    assert card.kills == []
    # One more tick: -$100.01, past it: the mark itself trips the kill switch.
    breaches = tracker.mark("AAPL", 990_099, 990_200, 6)
    assert [(breach.kind, breach.value, breach.limit) for breach in breaches] == [("daily_loss", 1_000_100,
                                                                                   1_000_000)]
    assert card.kills == [(TrackerMode.REDUCING, 100)]
    assert tracker.mode is TrackerMode.REDUCING and tracker.kills == 1
    assert "loss $100.01 above the limit of $100.00" in tracker.breaches[0].text
    # Later breaches do not kill again; REDUCING stays.
    tracker.mark("AAPL", 980_000, 980_100, 7)
    assert len(card.kills) == 1
    # Only risk-reducing orders: selling up to the position, never buying more nor flipping.
    assert not tracker.allows(enter("X1", "B", 1, 980_100))
    assert tracker.allows(enter("X2", "S", 100, 980_000))
    assert not tracker.allows(enter("X3", "S", 101, 980_000))
    assert not tracker.allows(enter("X4", "S", 10, 980_000, stock="MSFT"))
    working = enter("WORK0000000001", "S", 60, 980_000)
    tracker.order_sent(working)
    assert tracker.allows(enter("X5", "S", 40, 980_000))
    assert "past flat" in tracker.refusal(enter("X6", "S", 41, 980_000))
    # Flatten: the 40 shares the working sell does not cover, at the bid less the slippage, in orders of 25.
    orders = tracker.flatten_orders(max_order_shares=25, slippage_ticks=100)
    assert [(order.side, order.shares, order.stock, order.price, order.time_in_force) for order in orders] == [
        ("S", 25, "AAPL", 979_900, 0), ("S", 15, "AAPL", 979_900, 0)]
    assert [order.token for order in orders] == ["FLAT0000000001", "FLAT0000000002"]
    assert all(tracker.allows(order) for order in orders)
    assert not tracker.rearm()


def test_breaching_fill_kills_before_the_call_returns_and_flatten_flattens():
    kills = []
    session = Session(limits=PositionLimits.in_dollars(daily_loss=1_000), kill=lambda: kills.append(1))
    tracker = session.tracker
    tracker.mark("AAPL", 1_000_000, 1_000_100, 1)
    tracker.mark("MSFT", 2_000_000, 2_000_100, 1)
    session.trade("S", 300, 2_000_000, stock="MSFT")
    assert kills == []
    # Bought 1000 at $102.00 with the bid at $100.00: -$2,000.
    session.trade("B", 1_000, 1_020_000)
    assert kills == [1] and tracker.mode is TrackerMode.REDUCING
    orders = tracker.flatten_orders()
    # Largest exposure first: AAPL $100,000 long, then MSFT $60,003 short (bought back at the ask).
    assert [(order.stock, order.side, order.shares, order.price) for order in orders] == [
        ("AAPL", "S", 1_000, 1_000_000), ("MSFT", "B", 300, 2_000_100)]
    for order in orders:
        assert tracker.order_sent(order)
        tracker.on_message(accepted(order))
        tracker.on_message(executed(order.token, order.shares, order.price, 1000 + orders.index(order)))
    assert all(position.net_shares == 0 for position in tracker.positions.values())
    assert tracker.flatten_orders() == []
    # Flat, the realized loss is $2,000 on AAPL and 300 x $0.01 on MSFT (past the limit): re-arming is refused.
    assert tracker.realized == -(20_000_000 + 30_000)
    assert not tracker.rearm()


def test_position_and_gross_exposure_limits_and_rearm():
    kills = []
    limits = PositionLimits(max_position=500, symbol_max_position={"MSFT": 100},
                            max_gross_exposure=ticks(60_000))
    session = Session(limits=limits, kill=lambda: kills.append(1))
    tracker = session.tracker
    tracker.mark("AAPL", 1_000_000, 1_000_100, 1)
    tracker.mark("MSFT", 2_000_000, 2_000_100, 1)
    assert tracker.allows(enter("A", "B", 500, 1_000_100))
    assert "limit is 500" in tracker.refusal(enter("A", "B", 501, 1_000_100))
    assert "limit is 100" in tracker.refusal(enter("M", "S", 101, 2_000_000, stock="MSFT"))
    session.trade("B", 400, 1_000_100)
    # $40,000 held; another 200 MSFT at $200 would take the gross exposure to $80,000.
    assert "gross exposure" in tracker.refusal(enter("M", "B", 100, 2_000_100, stock="MSFT"))
    # An order the pre-trade check would refuse that fills anyway (the card sent it) trips the limit.
    session.trade("B", 101, 1_000_100)
    assert [breach.kind for breach in tracker.breaches] == ["position"] and kills == [1]
    assert tracker.breaches[0].text == "position AAPL 501 shares above the limit of 500"
    session.trade("S", 201, 1_000_000)
    assert tracker.rearm() and tracker.mode is TrackerMode.NORMAL
    session.trade("S", 100, 2_000_000, stock="MSFT")
    tracker.mark("MSFT", 4_100_000, 4_100_100, 2)
    # $30,000 AAPL + $41,001 MSFT short: above $60,000.
    assert [breach.kind for breach in tracker.breaches][-1] == "gross_exposure" and kills == [1, 1]


def test_kill_argument_must_be_callable_or_have_kill():
    with pytest.raises(TypeError):
        PositionTracker(kill=42)


# --- Value at risk ----------------------------------------------------------------------------------------------


def test_historical_var_by_hand():
    returns = np.array([[0.01], [-0.02], [0.005], [-0.01], [0.0]])
    result = historical_var([10_000.0], returns, confidence=0.8)
    # Scenario P&Ls 100, -200, 50, -100, 0; the lower 20 % quantile is -200.
    assert result.var == pytest.approx(200.0)
    assert result.expected_shortfall == pytest.approx(200.0)
    assert result.scenarios == 5
    assert historical_var([0.0], returns).var == 0.0


def test_return_history_buckets_and_tracker_var():
    history = ReturnHistory(bucket_ns=100)
    for timestamp, price in ((0, 100.0), (50, 101.0), (150, 99.0), (260, 99.0), (390, 110.0)):
        history.record(timestamp, "A", price)
    history.record(395, "B", 50.0)
    assert history.prices(["A"]).ravel().tolist() == [101.0, 99.0, 99.0, 110.0]
    assert np.allclose(history.returns(["A"]).ravel(), [99 / 101 - 1, 0.0, 110 / 99 - 1])
    assert history.returns(["B"]).ravel().tolist() == [0.0, 0.0, 0.0]

    tracker = PositionTracker(var_bucket_ns=1_000)
    session = Session(tracker)
    for step, bid in enumerate((1_000_000, 990_000, 1_010_000, 1_000_000, 950_000)):
        tracker.mark("AAPL", bid, bid + 100, step * 1_000)
    session.trade("B", 100, 950_100)
    result = tracker.value_at_risk(0.95)
    exposure = dollars(100 * 950_000)
    mids = np.array([1_000_050, 990_050, 1_010_050, 1_000_050, 950_050], dtype=float)
    worst = (mids[1:] / mids[:-1] - 1).min() * exposure
    assert result.var == pytest.approx(-worst)
    assert result.scenarios == 4 and result.horizon_ns == 1_000
    assert "VaR 95%" in result.text()
