"""The card server's telemetry: counters published on a PUB socket, for authorized subscribers only."""

import json
import threading

import pytest

from t2t.card import Card
from t2t.cli.main import main
from t2t.feed.netframe import build_udp_frame
from t2t.server import CardServer, Client, new_keypair, write_keypair
from t2t.server.telemetry import counter_paths, subscribe
from t2t_sim.virtual_card import VirtualCard


@pytest.fixture(scope="module")
def keys():
    return {name: new_keypair() for name in ("server", "mona", "eve")}


@pytest.fixture(scope="module")
def served(keys):
    clients = {keys["mona"].public: Client("mona", "monitor", keys["mona"].public)}
    with Card(VirtualCard()) as card:
        # Frames on feed A before serving: the counters then have something to show.
        for _ in range(3):
            card.transport.push_frame(0, build_udp_frame(b"x" * 30, dst_ip="233.54.12.111", dst_port=26477))
        card.transport.run_until_rx_drained()
        server = CardServer(card, keys["server"], clients, bind="tcp://127.0.0.1:*",
                            telemetry_bind="tcp://127.0.0.1:*", telemetry_interval_ms=20)
        server.start()
        yield server, card
        server.stop()


def test_an_authorized_subscriber_receives_counter_snapshots(served, keys):
    server, card = served
    messages = []
    for topic, message in subscribe(server.telemetry_endpoint, keys["mona"], keys["server"].public):
        assert topic == b"counters"
        messages.append(message)
        if len(messages) == 3:
            break
    assert [m["seq"] for m in messages] == sorted(m["seq"] for m in messages)
    assert set(messages[-1]["counters"]) == set(counter_paths(card.regmap))
    assert messages[-1]["counters"]["rx_a.accepted"] == 3
    assert messages[-1]["cycles"] > messages[0]["cycles"]


def test_an_unknown_key_gets_no_telemetry(served, keys):
    server, _ = served
    with pytest.raises(TimeoutError, match="no telemetry"):
        next(subscribe(server.telemetry_endpoint, keys["eve"], keys["server"].public, timeout_ms=500))


def test_monitor_cli_prints_snapshots_as_json(served, keys, tmp_path, capsys):
    server, _ = served
    for name in ("mona", "server"):
        write_keypair(tmp_path, name, keys[name])
    code = main(["--key", str(tmp_path / "mona.key"), "--server-pub", str(tmp_path / "server.pub"), "--json",
                 "monitor", "--telemetry", server.telemetry_endpoint, "--count", "2"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["counters"]["rx_a.frames"] == 3


def test_counters_cli_reads_every_counter_by_name(capsys):
    assert main(["--card", "sim", "--json", "counters"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["counters"]["rx_a.frames"] == 0 and "rx_b.wrong_port" in output["counters"]
