"""``t2t serve`` in a subprocess sharing the virtual card, and the ``t2t`` commands against it over ``tcp://``."""

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest
import yaml

from t2t.cli.main import main
from t2t.server.keys import load_public_key

STARTUP_LIMIT_S = 180  # a gateware change elsewhere makes the server build the virtual card first
ROLES = {"alice": "trader", "rita": "risk"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Key files for the server, two authorized users and a stranger; the server's authorized file."""
    directory = tmp_path_factory.mktemp("site")
    for name in ("server", "eve", *ROLES):
        assert main(["keys", "new", name, "--dir", str(directory)]) == 0
    clients = [{"user": user, "role": role, "public": load_public_key(directory / f"{user}.pub")}
               for user, role in ROLES.items()]
    (directory / "authorized.yaml").write_text(yaml.safe_dump({"clients": clients}))
    return directory


@pytest.fixture(scope="module")
def served(site):
    """A running ``t2t serve --card sim``; yields its endpoint, then stops it with SIGTERM."""
    command = [sys.executable, "-m", "t2t.cli.main", "serve", "--card", "sim", "--bind", "tcp://127.0.0.1:*",
               "--server-key", str(site / "server.key"), "--authorized", str(site / "authorized.yaml"),
               "--audit-log", str(site / "audit.jsonl")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready, _, _ = select.select([process.stdout], [], [], STARTUP_LIMIT_S)
        line = process.stdout.readline() if ready else ""
        assert line.startswith("serving sim"), (line, process.poll())
        endpoint = line.split(" on ")[1].split()[0]
        yield process, endpoint
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def t2t(capsys, site, endpoint, user, *arguments):
    capsys.readouterr()
    code = main(["--card", endpoint, "--key", str(site / f"{user}.key"), "--server-pub",
                 str(site / "server.pub"), *arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _without_cycles(dump):
    return [line for line in dump.splitlines() if "id.cycles" not in line]


def test_regs_dump_over_tcp_prints_what_it_prints_on_sim(capsys, site, served):
    _, endpoint = served
    assert main(["--card", "sim", "regs", "dump"]) == 0
    on_sim = capsys.readouterr().out
    code, over_tcp, _ = t2t(capsys, site, endpoint, "alice", "regs", "dump")
    assert code == 0
    assert _without_cycles(over_tcp) == _without_cycles(on_sim)


def test_a_session_trader_sets_is_refused_control_risk_clears_and_audit_shows_it(capsys, site, served):
    _, endpoint = served
    assert t2t(capsys, site, endpoint, "alice", "regs", "set", "feed.dst_port_a", "1000", "--commit")[:2] == \
        (0, "feed.dst_port_a = 0x03e8 (committed group feed)\n")
    code, _, err = t2t(capsys, site, endpoint, "alice", "regs", "set", "control.status", "3")
    assert code == 1 and "role trader may not write control.status" in err
    assert t2t(capsys, site, endpoint, "rita", "regs", "set", "control.status", "3")[0] == 0
    code, out, _ = t2t(capsys, site, endpoint, "rita", "--json", "regs", "get", "feed.dst_port_a")
    assert code == 0 and json.loads(out) == {"feed.dst_port_a": 1000}

    assert main(["audit", "--log", str(site / "audit.jsonl")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "alice" in table[1] and "feed.dst_port_a" in table[1] and table[1].split()[-2:] == ["0x676d", "0x03e8"]
    assert "control.commit (feed)" in table[2]
    assert "rita" in table[3] and "control.status" in table[3]
    assert main(["audit", "--log", str(site / "audit.jsonl"), "--json"]) == 0
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["user"], e["register"]) for e in entries] == [
        ("alice", "feed.dst_port_a"), ("alice", "control.commit"), ("rita", "control.status")]


def test_an_unknown_key_exits_3_saying_refused_or_unreachable(capsys, site, served):
    _, endpoint = served
    start = time.monotonic()
    code, _, err = t2t(capsys, site, endpoint + "?timeout_ms=300", "eve", "status")
    assert code == 3 and "server refused or unreachable" in err
    assert time.monotonic() - start < 2


def test_a_tcp_card_without_keys_is_a_clear_error(capsys, served, monkeypatch):
    monkeypatch.delenv("T2T_KEY", raising=False)
    monkeypatch.delenv("T2T_SERVER_PUB", raising=False)
    assert main(["--card", served[1], "status"]) == 3
    assert "--key FILE.key --server-pub FILE.pub" in capsys.readouterr().err


def test_serve_refuses_a_malformed_authorized_file(tmp_path, site, capsys):
    bad = tmp_path / "authorized.yaml"
    bad.write_text("clients:\n  - {user: x, role: admin, public: nope}\n")
    assert main(["serve", "--card", "sim", "--server-key", str(site / "server.key"), "--authorized", str(bad),
                 "--audit-log", str(tmp_path / "a.jsonl")]) == 2
    assert "role must be one of monitor, trader, risk" in capsys.readouterr().err


def test_serve_stops_cleanly_on_sigterm(served):
    process, _ = served
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    assert process.stdout.read().startswith("stopped after")
