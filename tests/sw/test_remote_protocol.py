"""The card server's request format and write policy, without a network or a card."""

import json

import pytest

from t2t.regmap import load_packaged_regmap
from t2t.server.authorization import Refused, WritePolicy
from t2t.server.protocol import MAX_BATCH, MAX_REQUEST_BYTES, ProtocolError, parse_request


def _request(**message):
    return parse_request(json.dumps(message).encode())


def test_a_well_formed_read_parses():
    request = _request(op="read", id=7, registers=["id.scratch", 0x200])
    assert (request.id, request.op, request.args) == (7, "read", {"registers": ["id.scratch", 0x200]})


@pytest.mark.parametrize("payload, reason", [
    (b"\xff\xfe garbage", "not JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"op": "read", "id": "x", "registers": [1]}', "'id' must be an integer"),
    (b'{"op": "reboot"}', "unknown op \"reboot\""),
    (b'{"op": "dump", "extra": 1}', "takes no field"),
    (b'{"op": "read"}', "needs 'registers'"),
    (b'{"op": "read", "registers": []}', "non-empty list"),
    (b'{"op": "read", "registers": [1.5]}', "register names or non-negative addresses"),
    (b'{"op": "read", "registers": [-4]}', "register names or non-negative addresses"),
    (b'{"op": "read", "registers": [true]}', "register names or non-negative addresses"),
    (b'{"op": "write", "writes": [["id.scratch", 1.0]]}', "non-negative integer] pairs"),
    (b'{"op": "write", "writes": [["id.scratch"]]}', "non-negative integer] pairs"),
    (b'{"op": "commit", "groups": [1]}', "list of names"),
    (b"[" * 20000 + b"]" * 20000, "nested too deeply"),
])
def test_malformed_requests_are_refused_with_a_reason(payload, reason):
    with pytest.raises(ProtocolError, match=reason):
        parse_request(payload)


def test_an_error_keeps_the_request_id_for_the_reply():
    with pytest.raises(ProtocolError) as caught:
        parse_request(b'{"op": "nope", "id": 42}')
    assert caught.value.request_id == 42


def test_oversized_requests_and_batches_are_refused():
    with pytest.raises(ProtocolError, match="at most 65536"):
        parse_request(b" " * (MAX_REQUEST_BYTES + 1))
    with pytest.raises(ProtocolError, match=f"at most {MAX_BATCH} per request"):
        _request(op="read", registers=[0] * (MAX_BATCH + 1))


@pytest.fixture(scope="module")
def policy():
    return WritePolicy(load_packaged_regmap())


@pytest.mark.parametrize("role, path, value, allowed", [
    ("monitor", "id.scratch", 1, False),
    ("trader", "id.scratch", 1, True),
    ("trader", "feed.dst_port_a", 1, True),
    ("trader", "control.status", 1, False),
    ("trader", "control.commit", 1, True),   # bit 0 commits the feed group, all of whose members trader may write
    ("trader", "control.commit", 0x80, False),
    ("monitor", "control.commit", 1, False),
    ("risk", "control.status", 1, True),
    ("risk", "control.commit", 0xFFFFFFFF, True),
])
def test_write_policy_by_role(policy, role, path, value, allowed):
    reg = policy.regmap[path]
    if allowed:
        policy.check_write(role, reg, value)
    else:
        with pytest.raises(Refused, match=f"role {role} may not"):
            policy.check_write(role, reg, value)


def test_a_refusal_names_the_role_and_the_register(policy):
    with pytest.raises(Refused, match="^role trader may not write control.status$"):
        policy.check_write("trader", policy.regmap["control.status"], 1)
