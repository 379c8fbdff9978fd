"""Telemetry: the card server publishes the card's counters, best bids and offers, latency and its order and
reject logs on a ZeroMQ PUB socket, so monitors and risk tools subscribe without touching the card (nor sending
it a single request).

Each message is two frames: a topic and a JSON object.

* ``counters``, every interval: ``{"seq", "cycles", "counters": {name: value}, "bbo": [{"slot", "symbol", "bid",
  "bid_shares", "ask", "ask_shares"}], "latency": {"count", "min", "max", "mean_x100", "median", "histogram"},
  "armed", "killed"}``; the counters are every read-only register of the map but the identity ones and the
  read-once logs; ``bbo`` is level 0 of each mapped slot's book (prices Price(4), 0 for an empty side).
* ``orders``, ``rejects``, ``gaps``, as the server drains them: ``{"entries": [...]}`` (as the ``log`` op gives
  them, each with its ``seq``).

The PUB socket is secured with the server's CURVE key and the same authorized-clients check as requests.
"""

import json

import zmq

from .. import trading

__all__ = ["COUNTERS_TOPIC", "LOG_TOPICS", "counter_paths", "snapshot", "log_message", "subscribe"]

COUNTERS_TOPIC = b"counters"
LOG_TOPICS = {"orders": b"orders", "rejects": b"rejects", "gaps": b"gaps"}
_IDENTITY = {"id.magic", "id.version", "id.map_hash", "id.cycles"}


def counter_paths(regmap):
    """The registers a counters snapshot holds: every read-only register but the identity ones, in map order."""
    return [reg.path for reg in regmap if reg.access == "ro" and reg.path not in _IDENTITY
            and reg.path not in trading.POP_ON_READ]


def _bbo(card, slot_map):
    rows = []
    for slot, symbol, _ in slot_map.entries:
        bids, asks = trading.depth(card, slot, levels=1)
        rows.append({"slot": slot, "symbol": symbol,
                     "bid": bids[0].price if bids else 0, "bid_shares": bids[0].shares if bids else 0,
                     "ask": asks[0].price if asks else 0, "ask_shares": asks[0].shares if asks else 0})
    return rows


def latency_dict(figures):
    return {"count": figures.count, "min": figures.min, "max": figures.max, "mean_x100": figures.mean_x100,
            "median": figures.median(), "histogram": list(figures.histogram)}


def snapshot(card, sequence, slot_map=None):
    """One ``counters`` message body (bytes) read from ``card`` now; ``slot_map`` names the slots whose BBO
    it shows (default: read from the card)."""
    slot_map = slot_map if slot_map is not None else trading.read_slots(card)
    message = {"seq": sequence, "cycles": card.read("id.cycles"),
               "counters": {path: card.read(path) for path in counter_paths(card.regmap)},
               "bbo": _bbo(card, slot_map), "latency": latency_dict(trading.latency(card)),
               "armed": trading.is_armed(card), "killed": trading.is_killed(card)}
    return json.dumps(message, separators=(",", ":")).encode()


def log_message(entries):
    """The body of an ``orders``, ``rejects`` or ``gaps`` message."""
    return json.dumps({"entries": entries}, separators=(",", ":")).encode()


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
