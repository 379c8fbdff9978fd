"""The card server sharing the virtual card: the Card driver over ``tcp://``, roles, refusals and the audit log."""

import pytest
import zmq

from t2t.card import Card
from t2t.server import AuditLog, CardServer, Client, new_keypair, read_audit
from t2t.transport import BusError, TransportError
from t2t.transport.remote import RemoteCard
from t2t_sim.virtual_card import VirtualCard

ROLES = {"mona": "monitor", "alice": "trader", "rita": "risk"}


@pytest.fixture(scope="module")
def keys():
    return {name: new_keypair() for name in ("server", "eve", *ROLES)}


@pytest.fixture(scope="module")
def audit_path(tmp_path_factory):
    return tmp_path_factory.mktemp("audit") / "audit.jsonl"


@pytest.fixture(scope="module")
def server(keys, audit_path):
    clients = {keys[user].public: Client(user, role, keys[user].public) for user, role in ROLES.items()}
    audit = AuditLog(audit_path)
    with Card(VirtualCard()) as card:
        server = CardServer(card, keys["server"], clients, bind="tcp://127.0.0.1:*", audit=audit)
        server.start()
        yield server
        server.stop()
    audit.close()


@pytest.fixture(scope="module")
def connect(server, keys):
    opened = []

    def connect(user, timeout_ms=2000):
        card = Card(RemoteCard(server.endpoint, keys[user], keys["server"].public, timeout_ms=timeout_ms))
        opened.append(card)
        return card

    yield connect
    for card in opened:
        card.close()


def test_the_card_driver_opens_a_remote_card_and_checks_its_map(connect):
    card = connect("mona")
    assert card.read("id.magic") == card.regmap.magic
    assert card.transport.identity["map_hash"] == card.regmap.hash
    assert (card.transport.identity["user"], card.transport.identity["role"]) == ("mona", "monitor")


def test_a_trader_writes_and_commits_feed_settings(connect):
    alice, mona = connect("alice"), connect("mona")
    alice.write("feed.dst_port_a", 31337)
    alice.write("feed.session", int.from_bytes(b"SESSION001", "big"))
    alice.commit("feed")
    assert mona.read("feed.dst_port_a") == 31337
    assert mona.read("feed.session").to_bytes(10, "big") == b"SESSION001"


def test_wide_register_words_of_two_clients_never_interleave(connect):
    alice, rita, mona = connect("alice"), connect("rita"), connect("mona")
    first, middle, last = alice.regmap["feed.session"].word_addresses
    alice.transport.write32(first, 0x11111111)
    rita.write("feed.session", 0x2222_22222222_22222222)
    alice.transport.write32(middle, 0x11111111)
    alice.transport.write32(last, 0x1111)
    assert mona.read("feed.session") == 0x1111_11111111_11111111


def test_dump_over_tcp_matches_named_reads(connect):
    mona = connect("mona")
    values = mona.transport.request("dump")["values"]
    assert values["id.magic"] == mona.regmap.magic
    assert values["feed.dst_port_b"] == mona.read("feed.dst_port_b")


@pytest.mark.parametrize("user, path, reason", [
    ("mona", "id.scratch", "role monitor may not write id.scratch"),
    ("alice", "control.status", "role trader may not write control.status"),
    ("mona", "feed.dst_port_a", "role monitor may not write feed.dst_port_a"),
])
def test_a_write_outside_the_role_is_refused_with_the_reason(connect, user, path, reason):
    card = connect(user)
    before = card.read(path)
    with pytest.raises(BusError, match=reason):
        card.write(path, 1)
    assert card.read(path) == before


def test_a_monitor_may_not_commit(connect):
    with pytest.raises(BusError, match="role monitor may not commit group feed"):
        connect("mona").commit("feed")


def test_risk_writes_control(connect):
    connect("rita").write("control.status", 3)


def test_bad_requests_get_reasons_and_leave_the_connection_usable(connect):
    alice = connect("alice")
    for arguments, reason in (({"registers": ["id.nosuch"]}, "no register named 'id.nosuch'"),
                              ({"registers": [0x2]}, "not a register address"),
                              ({"registers": ["control.commit"]}, "write-only")):
        with pytest.raises(BusError, match=reason):
            alice.transport.request("read", **arguments)
    with pytest.raises(BusError, match="feed.session is 3 words wide"):
        alice.transport.request("write", writes=[[alice.regmap["feed.session"].address, 1]])
    with pytest.raises(BusError, match="is read-only"):
        alice.transport.request("write", writes=[["id.magic", 1]])
    with pytest.raises(BusError, match="does not fit feed.dst_port_a"):
        alice.transport.request("write", writes=[["feed.dst_port_a", 1 << 16]])
    with pytest.raises(BusError, match="role trader may not write control.status"):
        # Refused as a whole: the allowed first write is not applied either.
        alice.transport.request("write", writes=[["id.scratch", 0xBAD], ["control.status", 1]])
    assert alice.read("id.scratch") != 0xBAD


def test_an_unknown_client_key_gets_no_answer(server, keys):
    with pytest.raises(TransportError, match="server refused or unreachable"):
        RemoteCard(server.endpoint, keys["eve"], keys["server"].public, timeout_ms=300)


def test_a_wrong_server_key_gets_no_answer(server, keys):
    with pytest.raises(TransportError, match="server refused or unreachable"):
        RemoteCard(server.endpoint, keys["alice"], keys["eve"].public, timeout_ms=300)


def test_the_audit_log_records_every_change_with_before_and_after(connect, audit_path):
    rita = connect("rita")
    rita.write("id.scratch", 0x1234)
    before_count = len(read_audit(audit_path))
    rita.write("id.scratch", 0x5678)
    alice = connect("alice")
    alice.commit("feed")
    alice.transport.request("commit", groups=["feed"])
    entries = read_audit(audit_path)[before_count:]
    assert [(e["user"], e["role"], e["op"], e["register"]) for e in entries] == [
        ("rita", "risk", "write", "id.scratch"), ("alice", "trader", "write", "control.commit"),
        ("alice", "trader", "commit", "control.commit")]
    assert (entries[0]["value"], entries[0]["before"], entries[0]["after"]) == (0x5678, 0x1234, 0x5678)
    assert entries[1]["groups"] == entries[2]["groups"] == ["feed"]
    assert all(isinstance(e["time"], str) for e in entries)


def test_refused_writes_are_not_in_the_audit_log(connect, audit_path):
    before = read_audit(audit_path)
    with pytest.raises(BusError):
        connect("mona").write("id.scratch", 7)
    assert read_audit(audit_path) == before


def test_nothing_listening_is_refused_or_unreachable(keys):
    with pytest.raises(TransportError, match="server refused or unreachable"):
        RemoteCard("tcp://127.0.0.1:9", keys["alice"], keys["server"].public, timeout_ms=200)


def test_a_server_that_never_answers_times_out_with_a_clear_error(keys):
    context = zmq.Context()
    silent = context.socket(zmq.ROUTER)
    silent.linger = 0
    silent.curve_server = True
    silent.curve_secretkey = keys["server"].secret.encode()
    port = silent.bind_to_random_port("tcp://127.0.0.1")
    try:
        with pytest.raises(TransportError, match="no answer to identify in 200 ms"):
            RemoteCard(f"tcp://127.0.0.1:{port}", keys["alice"], keys["server"].public, timeout_ms=200)
    finally:
        silent.close()
        context.term()
