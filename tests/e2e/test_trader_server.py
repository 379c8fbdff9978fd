"""A trading session through ``t2t serve``: the trader's commands over tcp:// with CURVE, each role's refusals,
the server as the single reader of the order and reject logs, telemetry, the audit log and the server's state.

The server runs in this process (a thread) on a virtual card that it feeds from an ITCH file once the strategy is
armed (``--play --play-when-armed``), so orders really flow.
"""

import json
import textwrap
import time

import pytest

from t2t import trading
from t2t.card import Card
from t2t.cli.main import main
from t2t.feed.binaryfile import iter_raw_messages, write_binaryfile
from t2t.feed.generator import write_session
from t2t.server import AuditLog, CardServer, Client, new_keypair, read_audit, write_keypair
from t2t.server.player import FeedPlayer
from t2t.server.shadow import StateFile
from t2t.server.telemetry import subscribe
from t2t_sim.virtual_card import VirtualCard

ROLES = {"mona": "monitor", "alice": "trader", "rita": "risk"}
SYMBOLS = ("AAPL", "MSFT", "AMZN", "NVDA")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("session")
    keys = {name: new_keypair() for name in ("server", *ROLES)}
    for name, keypair in keys.items():
        write_keypair(folder, name, keypair)
    (folder / "symbols.yaml").write_text("".join(f"{s}: {i + 1}\n" for i, s in enumerate(SYMBOLS)))
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
        positions: {default: 100000}
        restricted: [MSFT]
        """))
    # One session in three parts: played when the strategy is armed, then on demand (continuing the sequence).
    write_session(folder / "session.itch", seed=11, symbols=SYMBOLS, messages=7000)
    raw = list(iter_raw_messages(folder / "session.itch"))
    for name, part in (("day.itch", raw[:4000]), ("later.itch", raw[4000:5500]), ("last.itch", raw[5500:])):
        write_binaryfile(folder / name, part)
    return folder, keys


@pytest.fixture(scope="module")
def served(site):
    folder, keys = site
    clients = {keys[user].public: Client(user, role, keys[user].public) for user, role in ROLES.items()}
    audit = AuditLog(folder / "audit.jsonl")
    player = FeedPlayer(folder / "day.itch", wait_armed=True)
    with Card(VirtualCard()) as card:
        server = CardServer(card, keys["server"], clients, bind="tcp://127.0.0.1:*", audit=audit,
                            telemetry_bind="tcp://127.0.0.1:*", telemetry_interval_ms=50, drain_interval_ms=20,
                            state=StateFile(folder / "state.json"), player=player)
        server.start()
        yield server, player, card
        server.stop()
    audit.close()


@pytest.fixture
def t2t(site, served, capsys):
    folder, _ = site
    server = served[0]

    def run(user, *arguments):
        capsys.readouterr()
        code = main(["--card", server.endpoint, "--key", str(folder / f"{user}.key"), "--server-pub",
                     str(folder / "server.pub"), *map(str, arguments)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


def _audit(site):
    return read_audit(site[0] / "audit.jsonl")


def test_a_monitor_may_look_but_not_map_symbols(t2t, site):
    folder, _ = site
    code, _, err = t2t("mona", "symbols", "load", folder / "symbols.yaml")
    assert code == 1 and "role monitor may not write book.symbol" in err
    assert t2t("alice", "symbols", "load", folder / "symbols.yaml")[0] == 0
    code, out, _ = t2t("mona", "--json", "symbols", "show")
    assert code == 0 and [row["symbol"] for row in json.loads(out)["slots"]] == list(SYMBOLS)


def test_a_thresholds_dry_run_sends_nothing(t2t, site, served):
    folder, _ = site
    audit, requests_state = len(_audit(site)), t2t("mona", "--json", "thresholds", "show")[1]
    code, out, _ = t2t("alice", "thresholds", "load", folder / "thresholds.yaml", "--dry-run")
    assert code == 0 and "dry run: 2 of 4 rule(s) would change" in out
    assert len(_audit(site)) == audit, "nothing was written to the card"
    assert t2t("mona", "--json", "thresholds", "show")[1] == requests_state


def test_a_bad_file_is_refused_whole_before_anything_reaches_the_card(t2t, site, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("symbols:\n  AAPL: {buy_below: 10.00, shares: 5}\n  TSLA: {buy_below: 1.00, shares: 1}\n"
                   "  MSFT: {sell_above: 2.00, shares: 0}\n")
    audit = len(_audit(site))
    code, _, err = t2t("alice", "thresholds", "load", bad)
    assert code == 2
    assert f"{bad}:3: symbols.TSLA: unknown symbol 'TSLA'" in err
    assert f"{bad}:4: symbols.MSFT.shares: 0 is outside 1.." in err
    assert len(_audit(site)) == audit


def test_the_trader_loads_rules_and_the_audit_log_says_what_changed(t2t, site):
    folder, _ = site
    code, out, _ = t2t("alice", "thresholds", "load", folder / "thresholds.yaml")
    assert code == 0 and "applied: 4 rule(s) in one commit" in out
    [entry] = [e for e in _audit(site) if e["op"] == "rules"][-1:]
    assert (entry["user"], entry["role"], entry["register"]) == ("alice", "trader", "strategy.rules_commit")
    assert entry["symbols"] == {"0": "AAPL", "1": "MSFT", "2": "AMZN", "3": "NVDA"}
    assert entry["before"]["0"] == {**entry["after"]["2"], "time_in_force": "ioc"}  # disabled by symbols load
    assert entry["after"]["0"]["buy_below"] == "10000.0000" and entry["after"]["1"]["sell_above"] == "1.0000"
    code, out, _ = t2t("mona", "thresholds", "show")
    assert code == 0 and "buy_below 10000.0000, 10 shares" in out and "unknown" not in out
    assert t2t("alice", "thresholds", "set", "MSFT", "--shares", "25")[0] == 0
    code, out, _ = t2t("mona", "audit", "--log", folder / "audit.jsonl")
    assert "slot 1 MSFT: sell_above 1.0000, 20 shares, ioc, cooldown 2000 cycles -> " \
           "sell_above 1.0000, 25 shares, ioc, cooldown 2000 cycles" in out


@pytest.mark.parametrize("user, command, reason", [
    ("mona", ["arm"], "role monitor may not write strategy.control"),
    ("mona", ["thresholds", "set", "AAPL", "--shares", "1"], "role monitor may not write strategy.rule_slot"),
    ("alice", ["risk", "load", "RISK"], "role trader may not write risk.max_shares"),
    ("alice", ["kill"], "role trader may not write risk.control"),
    ("mona", ["rearm"], "role monitor may not write risk.control"),
])
def test_each_role_is_refused_what_it_may_not_do_and_nothing_changes(t2t, site, user, command, reason):
    folder, _ = site
    command = [str(folder / "risk.yaml") if part == "RISK" else part for part in command]
    audit = _audit(site)
    code, _, err = t2t(user, *command)
    assert code == 1 and "refused" in err and reason in err
    assert _audit(site) == audit


def test_risk_loads_limits_kills_and_rearms(t2t, site, served):
    folder, _ = site
    _, _, card = served
    code, out, _ = t2t("rita", "risk", "load", folder / "risk.yaml", "--dry-run")
    assert code == 0 and "dry run" in out
    assert t2t("rita", "risk", "load", folder / "risk.yaml")[0] == 0
    code, out, _ = t2t("mona", "--json", "risk", "show")
    shown = json.loads(out)
    assert shown["limits"]["max_shares_per_order"] == 1000 and shown["restricted"] == ["MSFT"]
    assert shown["positions"]["AAPL"] == {"position": 0, "limit": 100000}
    code, out, _ = t2t("rita", "kill")
    assert code == 0 and "KILLED" in out
    kill = _audit(site)[-1]
    assert (kill["user"], kill["register"], kill["before"], kill["after"]) == ("rita", "risk.control", 0, 1)
    assert json.loads(t2t("mona", "--json", "risk", "show")[1])["killed"] is True
    assert t2t("rita", "rearm")[0] == 0
    assert json.loads(t2t("mona", "--json", "risk", "show")[1])["killed"] is False


def test_orders_flow_once_armed_and_every_client_sees_the_same_log(t2t, served):
    server, player, _ = served
    assert t2t("alice", "arm")[0] == 0
    deadline = time.monotonic() + 120
    while not player.done and time.monotonic() < deadline:
        time.sleep(0.1)
    assert player.done
    time.sleep(0.2)  # a drain after the last packet
    first = [json.loads(line) for line in t2t("mona", "--json", "orders", "tail", "-n", "0")[1].splitlines()]
    assert first and [entry["seq"] for entry in first] == list(range(1, len(first) + 1))
    assert {(e["symbol"], e["side"], e["shares"]) for e in first} == {("AAPL", "B", 10)}
    again = [json.loads(line) for line in t2t("alice", "--json", "orders", "tail", "-n", "0")[1].splitlines()]
    assert again == first, "reading the server's copy takes nothing off it"
    code, out, _ = t2t("mona", "orders", "tail", "-n", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["token", "time", "symbol", "side", "shares", "price", "latency"]
    assert len(lines) == 3 and lines[-1].startswith(first[-1]["token"])
    code, out, _ = t2t("mona", "rejects", "tail", "--csv")
    assert code == 0 and out.splitlines()[0] == ",".join(trading.REJECT_CSV_COLUMNS)
    rejects = out.splitlines()[1:]
    assert rejects and all(line.startswith("MSFT,2,S,25,") and line.endswith(",restricted") for line in rejects)
    code, _, err = t2t("rita", "regs", "get", "orders.log")
    assert code == 1 and "read-once queue that the card server drains" in err

    code, out, _ = t2t("mona", "latency")
    assert code == 0 and f"orders measured  {len(first)}" in out and "ns" in out
    code, out, _ = t2t("mona", "book", "AAPL")
    assert code == 0 and "AAPL (slot 0, locate 1)" in out


def test_follow_prints_new_orders_as_the_server_drains_them(t2t, site, served):
    folder, _ = site
    server, _, _ = served
    server, player, _ = served
    before = json.loads(t2t("mona", "--json", "orders", "tail", "-n", "1")[1])["seq"]
    later = FeedPlayer(folder / "later.itch", first_sequence=player.next_sequence)

    def play(card):
        while not later.done:
            later.step(card)
    server.call(play)
    code, out, _ = t2t("mona", "--json", "orders", "tail", "-n", "0", "--follow", "--duration", "0.3",
                       "--interval", "0.1")
    seqs = [json.loads(line)["seq"] for line in out.splitlines()]
    assert code == 0 and seqs[-1] > before and seqs == sorted(set(seqs))


def test_telemetry_carries_bbo_latency_and_the_orders_as_drained(site, served):
    folder, keys = site
    server, player, _ = served
    topics = {}
    later = FeedPlayer(folder / "last.itch", first_sequence=player.next_sequence + 1500)
    for topic, message in subscribe(server.telemetry_endpoint, keys["mona"], keys["server"].public):
        topics.setdefault(topic, message)
        if topic == b"counters" and len(topics) == 1:
            server.call(lambda card: [later.step(card) for _ in range(200) if not later.done])
        if b"orders" in topics and b"counters" in topics:
            break
    snapshot = topics[b"counters"]
    assert [row["symbol"] for row in snapshot["bbo"]] == list(SYMBOLS)
    assert snapshot["latency"]["count"] > 0 and snapshot["armed"] is True and snapshot["killed"] is False
    assert "orders.log" not in snapshot["counters"]
    assert topics[b"orders"]["entries"][0]["symbol"] == "AAPL"


def test_the_monitor_view_shows_bbo_orders_and_latency(site, served, capsys):
    folder, _ = site
    server, _, _ = served
    capsys.readouterr()
    assert main(["--key", str(folder / "mona.key"), "--server-pub", str(folder / "server.pub"), "monitor",
                 "--telemetry", server.telemetry_endpoint, "--count", "1"]) == 0
    view = capsys.readouterr().out
    assert "strategy ARMED    kill switch off" in view
    assert "AAPL" in view and "latency " in view and "orders:" in view and "last orders" in view


def test_a_restarted_server_still_knows_the_rules(site, served):
    folder, keys = site
    server, _, card = served
    rules = server.call(lambda card: dict(server.service.shadow.rules))
    clients = {keys["mona"].public: Client("mona", "monitor", keys["mona"].public)}
    again = CardServer(card, keys["server"], clients, bind="tcp://127.0.0.1:*", state=StateFile(folder / "state.json"))
    assert again.state_note is None and again.service.shadow.rules == rules
    assert rules[0]["rule_buy_threshold"] == 100_000_000
