"""Journal and recovery: a host restarted mid-session gets its positions back from the journal, without losing or
doubling a fill, even when the exchange replays reports it had already counted."""

import json

import pytest

from t2t.positions import JournalError, OrderState, PositionLimits, PositionTracker, TrackerMode, read_journal
from t2t.positions import bench
from t2t.trade import ouch

from test_positions_tracker import accepted, canceled, enter, executed


def session_reports():
    """A morning: (order, reports with their SoupBinTCP sequence numbers) in the order they happen."""
    buy = enter("BUY00000000001", "B", 500, 1_000_000)
    sell = enter("SELL0000000001", "S", 300, 2_000_000, stock="MSFT")
    flip = enter("FLIP0000000001", "S", 800, 1_010_000)
    events = [
        ("order", buy), ("report", accepted(buy, 10), 1), ("report", executed(buy.token, 200, 1_000_000, 101, 11), 2),
        ("order", sell), ("report", accepted(sell, 12), 3),
        ("report", executed(buy.token, 300, 1_000_100, 102, 13), 4),
        ("report", executed(sell.token, 100, 2_000_000, 103, 14), 5),
        ("report", canceled(sell.token, 200, 15), 6),
        ("order", flip), ("report", accepted(flip, 16), 7),
        ("report", executed(flip.token, 600, 1_010_000, 104, 17), 8),
        ("report", executed(flip.token, 200, 1_009_900, 105, 18), 9),
    ]
    return events


def play(tracker, events):
    outcomes = []
    for event in events:
        if event[0] == "order":
            outcomes.append(tracker.order_sent(event[1], 0))
        else:
            outcomes.append(tracker.on_message(event[1], sequence=event[2]))
    return outcomes


def state_of(tracker):
    return ({symbol: (p.net_shares, p.cost, p.realized, p.bought, p.sold) for symbol, p in tracker.positions.items()},
            {token: (o.state, o.filled, o.canceled, o.filled_notional) for token, o in tracker.orders.items()},
            [(fill.token, fill.match_number, fill.shares, fill.price) for fill in tracker.fills],
            tracker.realized, tracker.last_sequence)


@pytest.mark.parametrize("cut", [1, 3, 6, 8, 10, 11])
def test_restart_mid_session_recovers_exactly_and_refuses_replayed_fills(tmp_path, cut):
    events = session_reports()
    reference = PositionTracker()
    play(reference, events)

    path = tmp_path / "journal.jsonl"
    first = PositionTracker(journal=path)
    assert all(play(first, events[:cut]))
    before = state_of(first)
    first.close()

    pushed = []
    second = PositionTracker(journal=path, on_position=lambda symbol, net: pushed.append((symbol, net)))
    assert state_of(second) == before
    assert sorted(pushed) == sorted((symbol, p.net_shares) for symbol, p in first.positions.items())
    # Orders sent while the host was down are registered first (from the card's order log); then the exchange
    # replays the session from its start after the reconnect: everything already counted is refused (by sequence
    # number, and fills also by match number), the rest is applied once.
    for event in events[cut:]:
        if event[0] == "order":
            assert second.order_sent(event[1], 0)
    reports = [event for event in events if event[0] == "report"]
    outcomes = play(second, reports)
    assert sum(1 for outcome in outcomes if outcome) == sum(1 for event in events[cut:] if event[0] == "report")
    assert all("duplicate" in outcome.reason for outcome in outcomes if not outcome)
    # A second replay changes nothing.
    assert not any(play(second, reports))
    assert state_of(second) == state_of(reference)
    second.close()
    third = PositionTracker(journal=path)
    assert state_of(third) == state_of(reference)
    third.close()


def test_duplicate_fill_after_restart_without_sequence_numbers_is_refused_by_match_number(tmp_path):
    path = tmp_path / "journal.jsonl"
    events = session_reports()[:6]
    tracker = PositionTracker(journal=path)
    play(tracker, [event[:2] + (None,) if event[0] == "report" else event for event in events])
    tracker.close()
    restarted = PositionTracker(journal=path)
    assert restarted.positions["AAPL"].net_shares == 500
    duplicate = executed("BUY00000000001", 300, 1_000_100, 102, 13)
    outcome = restarted.on_message(duplicate)
    assert not outcome and "match number 102 already counted" in outcome.reason
    assert restarted.positions["AAPL"].net_shares == 500 and len(restarted.fills) == 2
    # Refused reports are not journaled: a second restart sees the same two fills.
    restarted.close()
    assert len(PositionTracker(journal=path).fills) == 2


def test_journal_records_and_torn_last_line(tmp_path):
    path = tmp_path / "journal.jsonl"
    tracker = PositionTracker(journal=path)
    play(tracker, session_reports()[:3])
    tracker.close()
    records = read_journal(path)
    assert [record["k"] for record in records] == ["journal", "order", "report", "report"]
    assert records[3]["msg"] == {"type": "E", "timestamp": 11, "token": "BUY00000000001", "shares": 200,
                                 "price": 1_000_000, "liquidity_flag": "R", "match_number": 101}
    assert records[3]["seq"] == 2
    # A crash in the middle of writing a record: the torn line is dropped, the next record starts a new line.
    with open(path, "ab") as stream:
        stream.write(b'{"k":"report","t":13,"seq":4,"msg":{"type":"E","times')
    restarted = PositionTracker(journal=path)
    assert restarted.positions["AAPL"].net_shares == 200
    assert restarted.on_message(executed("BUY00000000001", 300, 1_000_100, 102, 13), sequence=4)
    restarted.close()
    assert PositionTracker(journal=path).positions["AAPL"].net_shares == 500


def test_damaged_journal_line_is_an_error(tmp_path):
    path = tmp_path / "journal.jsonl"
    tracker = PositionTracker(journal=path)
    play(tracker, session_reports()[:3])
    tracker.close()
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:20]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(JournalError, match="line 3"):
        PositionTracker(journal=path)
    # A journal holding the same fill twice cannot be applied again either.
    lines = path.read_text().splitlines()
    lines[2] = lines[3]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(JournalError, match="cannot be applied again"):
        PositionTracker(journal=path)


def test_recovered_reducing_mode_kills_again(tmp_path):
    path = tmp_path / "journal.jsonl"
    kills = []
    tracker = PositionTracker(PositionLimits.in_dollars(daily_loss=10), kill=lambda: kills.append("first"),
                              journal=path)
    tracker.mark("AAPL", 990_000, 990_100, 0)
    order = enter("BUY00000000001", "B", 100, 1_000_000)
    tracker.order_sent(order)
    tracker.on_message(accepted(order))
    tracker.on_message(executed(order.token, 100, 1_000_000, 1))
    assert tracker.mode is TrackerMode.REDUCING and kills == ["first"]
    tracker.close()
    assert [record.get("mode") for record in read_journal(path) if record["k"] == "mode"] == ["REDUCING"]
    restarted = PositionTracker(PositionLimits.in_dollars(daily_loss=10), kill=lambda: kills.append("again"),
                                journal=path)
    assert restarted.mode is TrackerMode.REDUCING and kills == ["first", "again"]
    assert restarted.orders[order.token].state is OrderState.FILLED


def test_journal_line_is_json_per_record(tmp_path):
    path = tmp_path / "journal.jsonl"
    tracker = PositionTracker(journal=path)
    order = enter("BUY00000000001", "B", 100, 1_000_000)
    tracker.order_sent(order, 7)
    tracker.close()
    lines = path.read_bytes().splitlines()
    assert json.loads(lines[1]) == {"k": "order", "t": 7, "order": {
        "token": "BUY00000000001", "side": "B", "shares": 100, "stock": "AAPL", "price": 1_000_000,
        "time_in_force": 0, "firm": "", "display": "Y", "capacity": "P", "intermarket_sweep": "N",
        "minimum_quantity": 0, "cross_type": "N", "customer_type": "N"}}
    assert isinstance(ouch.EnterOrder(**json.loads(lines[1])["order"]), ouch.EnterOrder)


def test_benchmark_functions_return_numbers():
    assert bench.fills_per_s(fills=300) > 0
    assert 0 < bench.breach_to_kill_ms(repeats=3) < 1_000
