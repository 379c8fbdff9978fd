"""Fuzzing the card server on 127.0.0.1: random bytes, random JSON shapes and huge messages.

Every malformed request must get an error reply with a reason (or, above the wire limit, a dropped
connection), the server must keep serving, and a normal client must still work afterwards.
"""

import json
import random
import time

import pytest
import zmq

from t2t.card import Card
from t2t.server import CardServer, Client, new_keypair
from t2t.server.protocol import MAX_REQUEST_BYTES, MAX_WIRE_BYTES, OPS
from t2t.transport.remote import RemoteCard
from t2t_sim.virtual_card import VirtualCard

SEED = 20261124
REQUESTS = 4000
WINDOW = 100
TIME_LIMIT_S = 30
NAMES = ["id.scratch", "id.magic", "control.commit", "control.status", "feed.session", "feed.dst_port_a", "no.such",
         "", "id.", ".scratch", "orders.log", "risk.reject", "moldudp64.gap", "strategy.rule_write",
         "strategy.rules_commit", "book.depth_select", "risk.control"]
TRADING_FIELDS = ["slot", "levels", "log", "since", "last"]


def _random_scalar(rng):
    return rng.choice([
        lambda: rng.randrange(-2**70, 2**70), lambda: rng.randrange(0, 0x1000, 4), lambda: rng.random() * 1e9,
        lambda: rng.choice(NAMES), lambda: None, lambda: rng.choice([True, False]), lambda: "x" * rng.randrange(50),
        lambda: float("nan"), lambda: 2**rng.randrange(200),
    ])()


def _random_value(rng, depth=0):
    if depth > 3 or rng.random() < 0.4:
        return _random_scalar(rng)
    if rng.random() < 0.5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {rng.choice(["op", "id", "registers", "writes", "groups", "x", *TRADING_FIELDS]): _random_value(rng, depth + 1)
            for _ in range(rng.randrange(5))}


def _random_request(rng):
    """Mostly near-valid requests, so the fuzz reaches the checks behind the parser."""
    kind = rng.randrange(7)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    if kind == 1:
        return json.dumps(_random_value(rng)).encode()
    message = {"op": rng.choice([*OPS, "reboot", 7]),
               "id": rng.choice([rng.randrange(2**31)] * 4 + ["id", None])}
    if kind == 2:
        message["op"] = rng.choice(["read"] * 3 + [message["op"]])
        message["registers"] = [rng.choice([rng.choice(NAMES), rng.randrange(0, 0x500, rng.choice([1, 4, 4])),
                                            rng.choice(NAMES), _random_scalar(rng)]) for _ in range(rng.randrange(4))]
    elif kind == 3:
        message["op"] = rng.choice(["write"] * 3 + [message["op"]])
        message["writes"] = [[rng.choice([rng.choice(NAMES), rng.randrange(0, 0x500, 4), _random_scalar(rng)]),
                              rng.choice([rng.randrange(2**rng.choice([1, 16, 32])), _random_scalar(rng)])]
                             for _ in range(rng.randrange(4))]
    elif kind == 4:
        message["groups"] = [rng.choice(["feed", "nope", 3, None]) for _ in range(rng.randrange(3))]
    elif kind == 5:
        message["op"] = rng.choice(["depth", "log", "slots", "state", message["op"]])
        for field in rng.sample(TRADING_FIELDS, rng.randrange(4)):
            message[field] = rng.choice([rng.randrange(-2, 300), rng.choice(["orders", "rejects", "gaps", "fills"]),
                                         _random_scalar(rng)])
    else:
        message[rng.choice(["registers", "writes", "groups", "extra"])] = _random_value(rng)
    return json.dumps(message).encode()


@pytest.fixture(scope="module")
def setup():
    server_keys, alice, rita = new_keypair(), new_keypair(), new_keypair()
    clients = {alice.public: Client("alice", "trader", alice.public), rita.public: Client("rita", "risk", rita.public)}
    with Card(VirtualCard()) as card:
        server = CardServer(card, server_keys, clients, bind="tcp://127.0.0.1:*")
        server.start()
        yield server, server_keys, alice, rita
        server.stop()


def _dealer(context, server, server_keys, client):
    socket = context.socket(zmq.DEALER)
    socket.linger = 0
    socket.curve_secretkey, socket.curve_publickey = client.secret.encode(), client.public.encode()
    socket.curve_serverkey = server_keys.public.encode()
    socket.connect(server.endpoint)
    return socket


def _replies(socket, count):
    replies = []
    for _ in range(count):
        assert socket.poll(5000), "the server stopped answering"
        replies.append(json.loads(socket.recv()))
    return replies


def test_the_server_survives_fuzzing_and_still_serves_a_normal_client(setup):
    server, server_keys, alice, rita = setup
    rng = random.Random(SEED)
    context = zmq.Context()
    fuzzer = _dealer(context, server, server_keys, alice)
    bystander = Card(RemoteCard(server.endpoint, rita, server_keys.public, timeout_ms=2000))
    start, sent, refused, answered = time.monotonic(), 0, 0, 0
    try:
        while sent < REQUESTS:
            batch = [_random_request(rng) for _ in range(WINDOW)]
            for payload in batch:
                fuzzer.send(payload)
            # Another client is served while the fuzzer's requests are queued.
            assert bystander.read("id.magic") == bystander.regmap.magic
            for reply in _replies(fuzzer, len(batch)):
                assert isinstance(reply["ok"], bool)
                if not reply["ok"]:
                    assert isinstance(reply["error"], str) and reply["error"]
                    assert "internal server error" not in reply["error"]
                    refused += 1
                else:
                    answered += 1
            sent += len(batch)
            assert time.monotonic() - start < TIME_LIMIT_S
        for frames in ([b"a", b"b"], [b""], [b"{}"] * 5):
            fuzzer.send_multipart(frames)
        for size in (MAX_REQUEST_BYTES + 1, MAX_WIRE_BYTES // 2):
            fuzzer.send(b'{"op": "read", "registers": [' + b"1," * (size // 2) + b"1]}")
        replies = _replies(fuzzer, 5)
        sent += 5
        assert [reply["ok"] for reply in replies] == [False] * 5
        assert "at most 65536" in replies[-1]["error"]

        # Above the wire limit ZeroMQ drops the sender's connection: no reply, but the server carries on.
        oversized = _dealer(context, server, server_keys, alice)
        oversized.send(b" " * (MAX_WIRE_BYTES + 1))
        sent += 1
        assert not oversized.poll(300)
        oversized.close()
    finally:
        fuzzer.close()
        bystander.close()
        context.term()
    print(f"fuzz: {sent} requests, {refused} refused, {answered} carried out, {time.monotonic() - start:.1f} s")
    assert sent >= REQUESTS and refused > sent // 2 and answered >= 40

    with Card(RemoteCard(server.endpoint, rita, server_keys.public, timeout_ms=2000)) as card:
        card.write("id.scratch", 0xC0FFEE)
        assert card.read("id.scratch") == 0xC0FFEE
        assert card.read("id.map_hash") == card.regmap.hash32
