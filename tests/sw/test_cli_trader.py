"""The trader's commands on the virtual card: symbols, thresholds, risk, arm/kill, latency, book, orders, rejects.

Each ``t2t --card sim`` opens a fresh virtual card, so most tests here share one card across commands (as a PCIe
card is shared by the commands a trader types) by handing the CLI that card; a few run on a fresh ``--card sim``.
"""

import csv
import io
import json
import textwrap

import pytest

from t2t import trading
from t2t.card import Card
from t2t.cli import regs as regs_module
from t2t.cli.main import main
from t2t.feed.generator import write_session
from t2t.server.player import FeedPlayer
from t2t_sim.virtual_card import VirtualCard

SYMBOLS = ("AAPL", "MSFT", "AMZN", "NVDA", "TSLA", "GOOGL", "META", "INTC")


class _Shared:
    """The shared card as the CLI opens it: closing it leaves it open for the next command."""

    def __init__(self, card):
        self._card = card

    def __getattr__(self, name):
        return getattr(self._card, name)

    def close(self):
        pass


@pytest.fixture(scope="module")
def card():
    with Card(VirtualCard()) as card:
        yield card


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trader")
    (folder / "symbols.yaml").write_text("".join(f"{symbol}: {i + 1}\n" for i, symbol in enumerate(SYMBOLS)))
    (folder / "nine.yaml").write_text("".join(f"{symbol}: {i + 1}\n" for i, symbol in enumerate(SYMBOLS + ("QQQ",))))
    (folder / "thresholds.yaml").write_text(textwrap.dedent("""\
        symbols:
          AAPL: {buy_below: 10000.00, shares: 10, cooldown_cycles: 2000}
          MSFT: {sell_above: 1.00, shares: 20, cooldown_cycles: 2000}
        """))
    (folder / "risk.yaml").write_text(textwrap.dedent("""\
        max_shares_per_order: 1000
        max_notional_per_order: 1000000.00
        collar_ticks: 100000
        max_orders: {burst: 1000, refill_cycles: 10}
        kill_after: {rejects: 60000, window_cycles: 1000}
        positions: {AAPL: 5000, default: 100000}
        restricted: [MSFT]
        """))
    write_session(folder / "day.itch", seed=7, symbols=SYMBOLS, messages=6000)
    return folder


@pytest.fixture
def t2t(card, files, monkeypatch, capsys):
    """Run ``t2t ARGS...`` on the shared card; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(regs_module, "open_card", lambda url, check=True: _Shared(card))
    monkeypatch.setenv("T2T_STATE", str(files / "state.json"))

    def run(*arguments):
        capsys.readouterr()
        code = main(["--card", "sim", *map(str, arguments)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


def test_symbols_load_assigns_slots_in_file_order_and_show_reads_them_back(t2t, files, card):
    code, out, _ = t2t("symbols", "load", files / "symbols.yaml")
    assert code == 0 and "loaded 8 symbol(s)" in out
    code, out, _ = t2t("--json", "symbols", "show")
    shown = json.loads(out)
    assert code == 0 and shown["capacity"] == 8
    assert [(s["slot"], s["symbol"], s["locate"]) for s in shown["slots"]] == [
        (i, symbol, i + 1) for i, symbol in enumerate(SYMBOLS)]
    code, out, _ = t2t("symbols", "load", files / "symbols.yaml")
    assert code == 0 and "nothing changes" in out


def test_more_symbols_than_slots_is_refused_naming_those_left_out(t2t, files, card):
    before = trading.read_slots(card)
    code, _, err = t2t("symbols", "load", files / "nine.yaml")
    assert code == 2
    assert f"{files / 'nine.yaml'}:9: QQQ: no slot left: the card has 8 slots" in err
    assert trading.read_slots(card) == before


def test_symbols_from_an_itch_file_learn_the_locates_of_its_directory(t2t, files, card):
    code, _, err = t2t("symbols", "load", "--from-itch", files / "day.itch")
    assert code == 2 and "8 symbols" not in err and "left out" not in err or code == 0
    code, out, _ = t2t("--json", "symbols", "load", "--from-itch", files / "day.itch", "--only", "MSFT,AAPL",
                       "--dry-run")
    assert code == 0 and json.loads(out)["slots"] == [[0, "MSFT", 2], [1, "AAPL", 1]]
    assert trading.read_slots(card).symbols == list(SYMBOLS), "--dry-run changed nothing"
    code, _, err = t2t("symbols", "load", "--from-itch", files / "day.itch", "--only", "AAPL,NOPE")
    assert code == 2 and "no stock locate for NOPE" in err


def _rules_on_card(card):
    """What the card's staging registers hold (the rule memory itself cannot be read)."""
    return trading.read_thresholds(card)


def test_thresholds_dry_run_shows_the_difference_and_changes_nothing_then_load_applies(t2t, files, card):
    assert t2t("symbols", "load", files / "symbols.yaml")[0] == 0
    staged = _rules_on_card(card)
    code, out, _ = t2t("thresholds", "load", files / "thresholds.yaml", "--dry-run")
    assert code == 0 and "dry run" in out and "nothing was sent" in out
    assert "disabled -> buy_below 10000.0000, 10 shares" in out
    assert _rules_on_card(card) == staged
    code, out, _ = t2t("thresholds", "load", files / "thresholds.yaml")
    assert code == 0 and "applied: 8 rule(s) in one commit (2 changed)" in out
    code, out, _ = t2t("thresholds", "load", files / "thresholds.yaml", "--dry-run")
    assert code == 0 and "dry run: 0 of 8 rule(s) would change" in out
    code, out, _ = t2t("--json", "thresholds", "show")
    rules = {row["symbol"]: row["rule"] for row in json.loads(out)["rules"]}
    assert rules["AAPL"]["buy_below"] == "10000.0000" and rules["AAPL"]["shares"] == 10
    assert rules["MSFT"]["sell_above"] == "1.0000" and not rules["AMZN"]["enabled"]


def test_a_bad_thresholds_file_is_refused_whole_with_file_line_and_field(t2t, files, card, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("symbols:\n  AAPL: {buy_below: 10.00001, shares: 5}\n  ZZZZ: {buy_below: 1.00, shares: 1}\n")
    staged = _rules_on_card(card)
    code, _, err = t2t("thresholds", "load", bad)
    assert code == 2
    assert f"{bad}:2: symbols.AAPL.buy_below: 10.00001 has more than 4 decimals" in err
    assert f"{bad}:3: symbols.ZZZZ: unknown symbol 'ZZZZ'" in err
    assert "nothing was sent to the card" in err
    assert _rules_on_card(card) == staged


def test_thresholds_set_changes_one_rule_and_keeps_the_others(t2t, files):
    assert t2t("thresholds", "load", files / "thresholds.yaml")[0] == 0
    code, out, _ = t2t("thresholds", "set", "AAPL", "--shares", "7", "--offset-ticks", "100")
    assert code == 0 and "shares 10 -> 7" in out and "offset_ticks 0 -> 100" in out
    code, out, _ = t2t("thresholds", "show")
    lines = {line.split()[1]: line for line in out.splitlines()[1:9]}
    assert "7 shares, offset 100 ticks" in lines["AAPL"] and "20 shares" in lines["MSFT"]
    assert t2t("thresholds", "set", "AAPL", "--buy-below", "5.00", "--sell-above", "4.00")[0] == 2
    code, _, err = t2t("thresholds", "set", "QQQ", "--shares", "1")
    assert code == 2 and "QQQ has no symbol slot on the card" in err
    assert t2t("thresholds", "set", "AAPL", "--buy-below", "1.000001")[2].endswith("more than 4 decimals (Price(4))\n")
    assert t2t("thresholds", "set", "AAPL", "--shares", "10", "--offset-ticks", "0")[0] == 0


def test_a_rule_the_host_does_not_know_must_be_given_whole(t2t, files):
    (files / "state.json").unlink()
    code, out, _ = t2t("thresholds", "show")
    assert code == 0 and "unknown" in out
    code, _, err = t2t("thresholds", "set", "AAPL", "--shares", "3")
    assert code == 2 and "not known to this host" in err
    assert t2t("thresholds", "load", files / "thresholds.yaml")[0] == 0
    assert "unknown" not in t2t("thresholds", "show")[1]


def test_a_reset_card_is_not_trusted_with_rules_it_no_longer_holds(t2t, files, monkeypatch, capsys):
    assert t2t("thresholds", "load", files / "thresholds.yaml")[0] == 0
    with Card(VirtualCard()) as fresh:  # the same URL ("sim"), but just reset
        monkeypatch.setattr(regs_module, "open_card", lambda url, check=True: _Shared(fresh))
        capsys.readouterr()
        assert main(["--card", "sim", "thresholds", "show"]) == 0
        captured = capsys.readouterr()
        assert "not used for sim (the card was reset)" in captured.err
        # Mapping the slots disables their rules (a slot's stock changed): from then on they are known again.
        assert main(["--card", "sim", "symbols", "load", str(files / "symbols.yaml")]) == 0
        assert main(["--card", "sim", "--json", "thresholds", "show"]) == 0
        rules = json.loads(capsys.readouterr().out.splitlines()[-1])["rules"]
    assert [rule["rule"]["enabled"] for rule in rules] == [False] * 8


def test_risk_load_dry_run_then_load_then_show(t2t, files, card):
    assert t2t("thresholds", "load", files / "thresholds.yaml")[0] == 0
    code, out, _ = t2t("risk", "load", files / "risk.yaml", "--dry-run")
    assert code == 0 and "dry run" in out
    code, out, _ = t2t("risk", "load", files / "risk.yaml")
    assert code == 0 and "applied" in out
    assert card.read("risk.max_shares") == 1000 and card.read("risk.restricted") == 0b10
    code, out, _ = t2t("risk", "load", files / "risk.yaml", "--dry-run")
    assert "dry run: 0 limit(s) would change" in out
    code, out, _ = t2t("--json", "risk", "show")
    shown = json.loads(out)
    assert shown["limits"]["max_notional_per_order"] == 1_000_000 * 10_000 and shown["restricted"] == ["MSFT"]
    assert shown["positions"]["AAPL"] == {"position": 0, "limit": 5000}
    code, out, _ = t2t("risk", "show")
    assert "max_notional_per_order    1000000.0000" in out and "restricted                MSFT" in out


def test_arm_disarm_kill_rearm(t2t, card):
    assert t2t("arm")[1].startswith("strategy ARMED")
    assert trading.is_armed(card)
    code, out, _ = t2t("kill")
    assert code == 0 and "KILLED" in out and trading.is_killed(card)
    assert json.loads(t2t("--json", "rearm")[1]) == {"armed": True, "killed": False}
    assert "disarmed" in t2t("disarm")[1] and not trading.is_armed(card)


def test_orders_rejects_latency_and_book_after_market_data(t2t, files, card):
    assert t2t("symbols", "load", files / "symbols.yaml")[0] == 0
    assert t2t("thresholds", "load", files / "thresholds.yaml")[0] == 0
    assert t2t("risk", "load", files / "risk.yaml")[0] == 0
    assert t2t("arm")[0] == 0
    code, _, err = t2t("symbols", "load", files / "symbols.yaml", "--only", "MSFT")
    assert code == 1 and "the strategy is armed" in err
    player = FeedPlayer(files / "day.itch")
    while not player.done:
        player.step(card)
    assert t2t("disarm")[0] == 0

    code, out, _ = t2t("latency")
    assert code == 0 and "orders measured" in out and "histogram (cycles: orders)" in out
    figures = json.loads(t2t("--json", "latency")[1])
    assert figures["count"] > 0 and sum(figures["histogram"]) == figures["count"]
    assert figures["min"] <= figures["median"] <= figures["max"]

    code, out, err = t2t("orders", "tail", "-n", "3", "--csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert code == 0 and rows[0] == list(trading.ORDER_CSV_COLUMNS) and len(rows) == 4
    assert all(row[3] == "AAPL" and row[4] == "B" and row[5] == "10" for row in rows[1:])
    assert "older orders taken off the card's log and not shown" in err
    assert t2t("orders", "tail")[1].strip() == "no orders in the card's log", "the log was drained"

    code, out, _ = t2t("--json", "rejects", "tail", "-n", "0")
    rejects = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and rejects and {(r["symbol"], r["reason"]) for r in rejects} == {("MSFT", "restricted")}

    code, out, _ = t2t("book", "AAPL", "--levels", "3")
    assert code == 0 and out.startswith("AAPL (slot 0, locate 1)") and "bid" in out and "ask" in out
    book = json.loads(t2t("--json", "book", "AAPL")[1])
    bids, asks = [level["price"] for level in book["bids"]], [level["price"] for level in book["asks"]]
    assert bids and asks and bids == sorted(set(bids), reverse=True) and asks == sorted(set(asks))
    assert t2t("book", "QQQ")[0] == 2


def test_commands_on_a_fresh_virtual_card(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("T2T_STATE", str(tmp_path / "state.json"))
    assert main(["--card", "sim", "symbols", "show"]) == 0
    assert "no symbol slot in use (the card has 8)" in capsys.readouterr().out
    assert main(["--card", "sim", "--json", "latency"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 0
    assert main(["--card", "sim", "orders", "tail"]) == 0
    assert "no orders" in capsys.readouterr().out
    assert main(["--card", "sim", "thresholds", "load", "configs/thresholds.yaml"]) == 2
    assert "the card follows no stock yet" in capsys.readouterr().err
    assert main(["--card", "sim", "symbols", "load", "configs/symbols.yaml"]) == 0
    assert main(["--card", "sim", "--json", "kill"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"armed": False, "killed": True}
