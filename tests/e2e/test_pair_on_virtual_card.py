"""The pair rule through the whole Verilated card, set up the way a trader does it: a ``pair:`` section in the
thresholds file, loaded by the host in the same commit as the threshold rules. On a generated session whose band
is set from the session's own spreads, the card sends both legs of every signal back to back (A first), each leg
as the reference pair model works it out from the two legs' last BBOs at the trigger, and the risk gate knows both
leg sizes before the first signal (no order needs its divider)."""

import decimal
import textwrap

import pytest

from t2t.book.reference import bbo_changes_of_binaryfile
from t2t.config import load_risk, load_thresholds
from t2t.config.schema import format_price
from t2t.feed.generator import write_session
from t2t.trade.reference import PairRule, PairStrategyModel
from t2t.card import Card
from t2t_sim.replay import Replay
from t2t_sim.virtual_card import VirtualCard

MESSAGES = 20_000
RATIO_ONE = 1 << 16
LEG_FIELDS = ("slot", "locate", "side", "shares", "price", "time_in_force", "timestamp", "stamp")


def spread_band(path, locate_a, locate_b):
    """(ratio Q16.16, upper, lower) for legs A and B of a session: the ratio of their first mid prices, and the
    85th percentile of A's rich spread and the 15th of its cheap spread over the session (Price(4) ticks)."""
    _, changes = bbo_changes_of_binaryfile(path)
    last, rich, cheap, ratio = {}, [], [], None
    for change in changes:
        if change.locate not in (locate_a, locate_b):
            continue
        last[change.locate] = (change.bid_px, change.ask_px)
        if len(last) < 2 or not all(bid and ask for bid, ask in last.values()):
            continue
        (bid_a, ask_a), (bid_b, ask_b) = last[locate_a], last[locate_b]
        if ratio is None:
            ratio = (bid_a + ask_a) * RATIO_ONE // (bid_b + ask_b)
        rich.append(bid_a - ratio * ask_b // RATIO_ONE)
        cheap.append(ask_a - ratio * bid_b // RATIO_ONE)
    rich.sort()
    cheap.sort()
    return ratio, rich[len(rich) * 85 // 100], cheap[len(cheap) * 15 // 100]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    session = folder / "session.itch"
    write_session(session, seed=31, messages=MESSAGES)
    ratio, upper, lower = spread_band(session, 1, 2)        # AAPL (locate 1) against MSFT (locate 2)
    (folder / "thresholds.yaml").write_text(textwrap.dedent(f"""\
        symbols: {{}}
        pair:
          leg_a: AAPL
          leg_b: MSFT
          ratio: {decimal.Decimal(ratio) / RATIO_ONE}
          upper: {format_price(upper)}
          lower: {format_price(lower)}
          shares_a: 100
          shares_b: 37
          cooldown_cycles: 500
        """))
    (folder / "risk.yaml").write_text(textwrap.dedent("""\
        max_shares_per_order: 1000
        max_notional_per_order: 100000000.00
        collar_ticks: 10000000
        max_orders: {burst: 1000, refill_cycles: 1}
        kill_after: {rejects: 60000, window_cycles: 1000}
        positions: {default: 1000000}
        """))
    thresholds = load_thresholds(folder / "thresholds.yaml")
    risk = load_risk(folder / "risk.yaml")
    with Card(VirtualCard()) as card:
        result = Replay(symbols=thresholds.traded_symbols, thresholds=thresholds, risk=risk, keep_transfers=True,
                        card=card).run(session)
        result.counters.update({name: card.read(name) for name in ("risk.notional_slow", "pair.signals")})
    return thresholds, result


def test_every_signal_sends_both_legs_as_the_model_works_them_out(replayed):
    thresholds, result = replayed
    pair = thresholds.pair
    assert result.slot_map.symbols == ["AAPL", "MSFT"]
    rule = PairRule(enable=True, slot_a=0, slot_b=1, ratio=pair.ratio_q16, upper=pair.upper, lower=pair.lower,
                    shares_a=pair.shares_a, shares_b=pair.shares_b, time_in_force=pair.time_in_force,
                    cooldown=0)
    orders = result.gate_orders
    assert len(orders) % 2 == 0 and len(orders) >= 20, f"{len(orders)} leg orders: the band must be crossed often"
    updates = result.bbo_updates
    for leg_a, leg_b in zip(orders[::2], orders[1::2]):
        assert (leg_a["slot"], leg_a["more_legs"], leg_b["slot"], leg_b["more_legs"]) == (0, 1, 1, 0)
        assert leg_b["cycle"] > leg_a["cycle"]
        # The trigger is the leg update whose stamp the legs carry; the legs' BBOs are the last ones of each slot
        # up to it.
        trigger = max(index for index, update in enumerate(updates)
                      if update["stamp"] == leg_a["stamp"] and update["slot"] in (0, 1)
                      and update["cycle"] < leg_a["cycle"])
        model = PairStrategyModel()
        model.stage(rule)
        model.commit()
        expected = []
        for slot in (0, 1):
            last = max(index for index in range(trigger + 1) if updates[index]["slot"] == slot)
            expected = model.on_bbo(0, updates[last])
        assert expected, f"the card signalled at update {trigger} but the model sees no signal"
        for card_leg, model_leg in zip((leg_a, leg_b), expected):
            model_leg = {**model_leg, "timestamp": updates[trigger]["timestamp"], "stamp": updates[trigger]["stamp"]}
            assert {name: card_leg[name] for name in LEG_FIELDS} == {name: model_leg[name] for name in LEG_FIELDS}
    assert result.counters["risk.accepted"] == len(orders) == 2 * result.counters["pair.signals"]


def test_both_leg_sizes_are_registered_with_the_risk_gate_before_the_first_signal(replayed):
    _, result = replayed
    assert result.gate_orders
    assert result.counters["risk.notional_slow"] == 0
