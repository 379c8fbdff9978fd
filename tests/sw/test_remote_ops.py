"""The card server's trading ops without a card: parsing, the log buffer, and the shadow of rules and positions."""

import json

import pytest

from t2t.server.logs import LogBuffer
from t2t.server.protocol import ProtocolError, parse_request
from t2t.server.shadow import CardShadow, StateFile, STAGING_REGISTERS
from t2t.trading import GapRow, RejectRow


def request(**message):
    return parse_request(json.dumps(message).encode())


def test_the_trading_ops_parse_with_their_optional_arguments():
    assert request(op="slots").args == {}
    assert request(op="state", id=3).id == 3
    assert request(op="depth", slot=2).args == {"slot": 2}
    assert request(op="depth", slot=2, levels=32).args == {"slot": 2, "levels": 32}
    assert request(op="log", log="orders").args == {"log": "orders"}
    assert request(op="log", log="rejects", since=5, last=0).args == {"log": "rejects", "since": 5, "last": 0}


@pytest.mark.parametrize("message, reason", [
    ({"op": "depth"}, "needs 'slot'"),
    ({"op": "depth", "slot": 256}, "'slot' must be an integer from 0 to 255"),
    ({"op": "depth", "slot": True}, "'slot' must be an integer"),
    ({"op": "depth", "slot": 1, "levels": 0}, "'levels' must be an integer from 1 to 32"),
    ({"op": "log", "log": "fills"}, "'log' must be one of orders, rejects, gaps"),
    ({"op": "log", "log": ["orders"]}, "'log' must be one of"),
    ({"op": "log", "log": "orders", "since": -1}, "'since' must be an integer"),
    ({"op": "log", "log": "orders", "limit": 3}, "takes no field(s) 'limit'"),
    ({"op": "slots", "slot": 1}, "takes no field(s) 'slot'"),
])
def test_malformed_trading_ops_are_refused_with_the_reason(message, reason):
    with pytest.raises(ProtocolError) as refused:
        parse_request(json.dumps(message).encode())
    assert reason in str(refused.value)


def _reject(i):
    return RejectRow(slot=0, locate=1, symbol="AAPL", side="B", shares=i, price=100, reason="killed")


def test_the_log_buffer_numbers_entries_keeps_the_last_and_counts_what_a_reader_missed():
    log = LogBuffer(keep=3)
    assert log.select() == ([], 0)
    added = log.append([_reject(i) for i in range(5)])
    assert [entry["seq"] for entry in added] == [1, 2, 3, 4, 5]
    entries, dropped = log.select()
    assert [entry["shares"] for entry in entries] == [2, 3, 4] and dropped == 0
    assert log.select(since=2) == (entries, 1)   # seq 2 is gone
    assert log.select(since=4)[0] == entries[1:] and log.select(since=4)[1] == 0
    assert log.select(since=6) == ([], 0)        # nothing new yet
    assert [entry["seq"] for entry in log.select(last=1)[0]] == [5]
    assert log.select(last=0)[0] == []
    log.append([GapRow(first=10, count=2)])
    assert log.select(since=6)[0] == [{"seq": 6, "first": 10, "count": 2}]


def _staging():
    return dict.fromkeys(STAGING_REGISTERS, 0)


def _stage(shadow, slot, shares):
    shadow.observe("strategy.rule_slot", slot)
    shadow.observe("strategy.rule_flags", 1)
    shadow.observe("strategy.rule_buy_threshold", 1000)
    shadow.observe("strategy.rule_shares", shares)
    shadow.observe("strategy.rule_write", 1)


def test_the_shadow_follows_staged_rules_until_the_commit_applies_them_all():
    shadow = CardShadow(4, _staging())
    assert shadow.rules == {0: None, 1: None, 2: None, 3: None}
    _stage(shadow, 1, 100)
    _stage(shadow, 3, 300)
    assert shadow.rules[1] is None and sorted(shadow.staged) == [1, 3]
    [(what, before, after)] = shadow.observe("strategy.rules_commit", 1)
    assert what == "rules" and before == {1: None, 3: None}
    assert after[1]["rule_shares"] == 100 and after[3]["rule_shares"] == 300
    assert shadow.rules[1]["rule_buy_threshold"] == 1000 and shadow.rules[0] is None
    assert shadow.observe("strategy.rules_commit", 1) == []  # nothing staged: nothing changes
    _stage(shadow, 9, 1)                                      # no such slot: ignored
    assert shadow.staged == {}


def test_the_shadow_follows_position_writes_as_signed_shares():
    shadow = CardShadow(2, _staging())
    shadow.observe("risk.position_slot", 1)
    shadow.observe("risk.position", (-25) & 0xFFFFFFFF)
    shadow.observe("risk.position_limit", 500)
    [(what, before, after)] = shadow.observe("risk.position_write", 1)
    assert (what, before, after) == ("position", {1: None}, {1: [-25, 500]})
    assert CardShadow.from_dict(json.loads(json.dumps(shadow.to_dict()))).positions == {0: None, 1: [-25, 500]}


class FakeCard:
    """Just what restoring a shadow reads: the map hash, id.cycles and the staging registers."""

    class regmap:
        hash = "abc"

    class transport:
        url = "fake"

    def __init__(self, cycles, staging):
        self.cycles, self.staging = cycles, staging

    def read(self, path):
        return self.cycles if path == "id.cycles" else (8 if path == "book.slots" else self.staging[path])


def test_a_saved_shadow_is_trusted_only_while_the_card_still_matches_it(tmp_path):
    shadow = CardShadow(8, _staging())
    _stage(shadow, 0, 100)
    shadow.observe("strategy.rules_commit", 1)
    state = StateFile(tmp_path / "state.json")
    state.save("fake", FakeCard(1000, shadow.staging), shadow)

    restored, note = state.load("fake", FakeCard(5000, dict(shadow.staging)))
    assert note is None and restored.rules[0]["rule_shares"] == 100

    reset, note = state.load("fake", FakeCard(10, dict.fromkeys(STAGING_REGISTERS, 0)))
    assert "the card was reset" in note and reset.rules[0] is None

    meddled = dict(shadow.staging, **{"strategy.rule_shares": 7})
    other, note = state.load("fake", FakeCard(5000, meddled))
    assert "written by someone else" in note and other.rules[0] is None

    (tmp_path / "state.json").write_text("{not json")
    fresh, note = state.load("fake", FakeCard(5000, dict(shadow.staging)))
    assert note is None and fresh.rules[0] is None
