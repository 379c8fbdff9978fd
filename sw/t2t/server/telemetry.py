"""Telemetry: the card server publishes the card's counters on a ZeroMQ PUB socket, so monitors and risk tools
subscribe without touching the card (nor sending it a single request).

Each message is two frames: a topic (``counters``) and a JSON object ``{"seq", "cycles", "counters": {name:
value}}`` where the counters are every read-only register of the map but the identity ones. The PUB socket is
secured with the server's CURVE key and the same authorized-clients check as requests.
"""

import json

import zmq

__all__ = ["COUNTERS_TOPIC", "counter_paths", "snapshot", "subscribe"]

COUNTERS_TOPIC = b"counters"
_IDENTITY = {"id.magic", "id.version", "id.map_hash", "id.cycles"}


def counter_paths(regmap):
    """The registers a counters snapshot holds: every read-only register but the identity ones, in map order."""
    return [reg.path for reg in regmap if reg.access == "ro" and reg.path not in _IDENTITY]


def snapshot(card, sequence):
    """One telemetry message body (bytes) read from ``card`` now."""
    message = {"seq": sequence, "cycles": card.read("id.cycles"),
               "counters": {path: card.read(path) for path in counter_paths(card.regmap)}}
    return json.dumps(message, separators=(",", ":")).encode()


def subscribe(endpoint, keypair, server_public, timeout_ms=5000, context=None):
    """Yield ``(topic, message)`` from a server's telemetry endpoint; raise TimeoutError after a silence."""
    context = context or zmq.Context.instance()
    socket = context.socket(zmq.SUB)
    socket.curve_secretkey = keypair.secret.encode("ascii")
    socket.curve_publickey = keypair.public.encode("ascii")
    socket.curve_serverkey = server_public.encode("ascii")
    socket.linger = 0
    socket.setsockopt(zmq.SUBSCRIBE, b"")
    socket.connect(endpoint)
    try:
        while True:
            if not socket.poll(timeout_ms):
                raise TimeoutError(f"no telemetry from {endpoint} in {timeout_ms} ms (is the server publishing, "
                                   f"and your key authorized?)")
            topic, body = socket.recv_multipart()
            yield topic, json.loads(body)
    finally:
        socket.close()
