"""The card server's wire format: one JSON object per ZeroMQ message, each way.

A request is ``{"op": OP, "id": N, ...arguments}`` (``id`` optional, any integer, echoed in the reply). Ops:

=============  ==========================================  ============================================
op             arguments                                   reply (besides ``"ok": true``)
=============  ==========================================  ============================================
``identify``   none                                        ``map_hash`` (SHA-256 hex), ``map_hash32``,
                                                           ``card``, ``user``, ``role``
``read``       ``registers``: list of names or addresses   ``values``: list of integers, same order
``write``      ``writes``: list of ``[name or address,      ``count`` of registers written
               value]``, applied in order
``commit``     ``groups``: list of commit group names       ``groups``
``dump``       none                                        ``values``: ``{name: value}``, address order
                                                           (the pop-on-read logs show 0: the server
                                                           drains them, see below)
``slots``      none                                        ``slots``: ``[[slot, symbol, locate], ...]``,
                                                           ``capacity``
``depth``      ``slot``; ``levels`` (optional, 1-32,        ``bids``, ``asks``: ``[[price, shares,
               default 8)                                  orders], ...]`` best first
``log``        ``log``: orders, rejects or gaps;           ``entries`` (dicts with ``seq``), ``next``
               ``since`` (seq, optional), ``last``          (the seq the next entry will get),
               (count, optional)                           ``dropped`` (entries from ``since`` no
                                                           longer kept)
``state``      none                                        ``rules``, ``positions``: ``{slot: ...}``
                                                           (``null`` where unknown), ``staged``,
                                                           ``armed``, ``killed``
=============  ==========================================  ============================================

``slots`` and ``depth`` select a view and read it within one request, so no other client's select comes in
between. ``orders.log``, ``risk.reject`` and ``moldudp64.gap`` are read-once queues on the card: only the server
reads them (refused to clients, by name or address); ``log`` serves its copy to every role.

A register named ``block.register`` reads and writes its full width; an address (an integer byte address,
a multiple of 4) reads or writes one 32-bit word. Words of a wide register written by address must all be
in one request, lowest first, so that two clients' words never interleave. Values are non-negative integers.

A failure is ``{"id": N, "ok": false, "error": REASON}``. A request of more than :data:`MAX_REQUEST_BYTES`
bytes, or with more than :data:`MAX_BATCH` entries, is refused with a reason; one larger than
:data:`MAX_WIRE_BYTES` makes the server drop the connection (ZeroMQ's ``MAXMSGSIZE``).
"""

import json
from dataclasses import dataclass

__all__ = ["MAX_REQUEST_BYTES", "MAX_WIRE_BYTES", "MAX_BATCH", "MAX_DEPTH_LEVELS", "LOG_NAMES", "OPS", "ProtocolError", "Request",
           "parse_request", "encode", "decode_reply"]

MAX_REQUEST_BYTES = 64 * 1024
MAX_WIRE_BYTES = 1024 * 1024
MAX_BATCH = 4096
MAX_DEPTH_LEVELS = 32
LOG_NAMES = ("orders", "rejects", "gaps")

#: Each op's arguments and their kind; a kind ending in ``?`` is optional.
OPS = {
    "identify": {},
    "read": {"registers": "targets"},
    "write": {"writes": "target_values"},
    "commit": {"groups": "names"},
    "dump": {},
    "slots": {},
    "depth": {"slot": "slot", "levels": "levels?"},
    "log": {"log": "log_name", "since": "count?", "last": "count?"},
    "state": {},
}


class ProtocolError(ValueError):
    """A request that is not well formed; the message says why."""


@dataclass(frozen=True)
class Request:
    """A well-formed request: ``args`` holds exactly the op's arguments, checked for type."""
    id: int | None
    op: str
    args: dict


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_target(value):
    return isinstance(value, str) or (_is_int(value) and value >= 0)


def _check_list(value, name, check, what):
    if not isinstance(value, list) or not value:
        raise ProtocolError(f"'{name}' must be a non-empty list of {what}")
    if len(value) > MAX_BATCH:
        raise ProtocolError(f"'{name}' has {len(value)} entries; at most {MAX_BATCH} per request")
    for entry in value:
        if not check(entry):
            raise ProtocolError(f"'{name}' must be a list of {what}; got {json.dumps(entry)[:60]}")
    return value


def _target_value(entry):
    return isinstance(entry, list) and len(entry) == 2 and _is_target(entry[0]) and _is_int(entry[1]) \
        and entry[1] >= 0


_ARGUMENT_CHECKS = {
    "targets": lambda value, name: _check_list(value, name, _is_target,
                                               "register names or non-negative addresses"),
    "target_values": lambda value, name: _check_list(value, name, _target_value,
                                                     "[name or address, non-negative integer] pairs"),
    "names": lambda value, name: _check_list(value, name, lambda entry: isinstance(entry, str), "names"),
    "slot": lambda value, name: _check_range(value, name, 0, 255),
    "levels": lambda value, name: _check_range(value, name, 1, MAX_DEPTH_LEVELS),
    "count": lambda value, name: _check_range(value, name, 0, 2**63 - 1),
    "log_name": lambda value, name: _check_choice(value, name, LOG_NAMES),
}


def _check_range(value, name, low, high):
    if not _is_int(value) or not low <= value <= high:
        raise ProtocolError(f"'{name}' must be an integer from {low} to {high}")
    return value


def _check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ProtocolError(f"'{name}' must be one of {', '.join(choices)}")
    return value


def parse_request(payload):
    """A :class:`Request` from one message's bytes; raises :class:`ProtocolError` with the reason.

    The request's ``id`` is recovered as soon as it is readable, so an error reply can echo it: the
    :class:`ProtocolError` carries it as ``request_id``.
    """
    if len(payload) > MAX_REQUEST_BYTES:
        raise ProtocolError(f"request of {len(payload)} bytes; at most {MAX_REQUEST_BYTES}")
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("request is not JSON (expected one UTF-8 JSON object per message)") from None
    except RecursionError:
        raise ProtocolError("request is nested too deeply") from None
    if not isinstance(message, dict):
        raise ProtocolError("request must be a JSON object")
    request_id = message.get("id")
    if request_id is not None and not _is_int(request_id):
        raise ProtocolError("'id' must be an integer")
    try:
        op = message.get("op")
        if not isinstance(op, str) or op not in OPS:
            raise ProtocolError(f"unknown op {json.dumps(op)[:40]}; ops: {', '.join(OPS)}")
        expected = OPS[op]
        unknown = set(message) - set(expected) - {"op", "id"}
        if unknown:
            raise ProtocolError(f"op {op} takes no field(s) {', '.join(sorted(map(repr, unknown)))[:200]}")
        args = {}
        for name, kind in expected.items():
            optional = kind.endswith("?")
            if name not in message:
                if optional:
                    continue
                raise ProtocolError(f"op {op} needs '{name}'")
            args[name] = _ARGUMENT_CHECKS[kind.rstrip("?")](message[name], name)
    except ProtocolError as error:
        error.request_id = request_id
        raise
    return Request(request_id, op, args)


def encode(message):
    return json.dumps(message, separators=(",", ":")).encode()


def decode_reply(payload):
    """A reply's JSON object; raises :class:`ProtocolError` if it is not one."""
    try:
        reply = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("the server's reply is not JSON") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ProtocolError("the server's reply is not a reply object")
    return reply
