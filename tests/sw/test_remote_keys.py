"""Key files (``t2t keys new``) and the authorized-clients file of the card server."""

import os
import stat

import pytest
import yaml

from t2t.cli.main import main
from t2t.server.authorization import AuthorizedFileError, load_authorized
from t2t.server.keys import KeyFileError, load_keypair, load_public_key, new_keypair, write_keypair


def test_keys_new_writes_a_private_key_file_and_a_public_one(tmp_path, capsys):
    assert main(["keys", "new", "alice", "--dir", str(tmp_path)]) == 0
    assert "alice.key" in capsys.readouterr().out
    key_path, pub_path = tmp_path / "alice.key", tmp_path / "alice.pub"
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    keypair = load_keypair(key_path)
    assert load_public_key(pub_path) == keypair.public
    assert "secret" not in yaml.safe_load(pub_path.read_text())


def test_keys_new_refuses_to_overwrite_a_key(tmp_path, capsys):
    assert main(["keys", "new", "alice", "--dir", str(tmp_path)]) == 0
    before = (tmp_path / "alice.key").read_text()
    assert main(["keys", "new", "alice", "--dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "alice.key").read_text() == before


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden"])
def test_keys_new_with_a_bad_name_is_a_usage_error(tmp_path, name):
    assert main(["keys", "new", name, "--dir", str(tmp_path)]) == 2


def test_a_public_key_file_is_not_a_key_pair(tmp_path):
    _, pub_path = write_keypair(tmp_path, "bob")
    with pytest.raises(KeyFileError, match="holds no secret key"):
        load_keypair(pub_path)


def test_a_key_pair_whose_halves_differ_is_refused(tmp_path):
    first, second = new_keypair(), new_keypair()
    path = tmp_path / "mixed.key"
    path.write_text(f'public: "{first.public}"\nsecret: "{second.secret}"\n')
    with pytest.raises(KeyFileError, match="not the one of the secret key"):
        load_keypair(path)


@pytest.mark.parametrize("content", ["public: short\n", "- a list\n", "public: [\n", ""])
def test_malformed_key_files_are_refused_with_the_file_name(tmp_path, content):
    path = tmp_path / "bad.pub"
    path.write_text(content)
    with pytest.raises(KeyFileError, match="bad.pub"):
        load_public_key(path)


def _authorized(tmp_path, clients):
    path = tmp_path / "authorized.yaml"
    path.write_text(yaml.safe_dump({"clients": clients}))
    return path


def test_authorized_file_maps_keys_to_users_and_roles(tmp_path):
    alice, rita = new_keypair(), new_keypair()
    clients = load_authorized(_authorized(tmp_path, [
        {"user": "alice", "role": "trader", "public": alice.public},
        {"user": "rita", "role": "risk", "public": rita.public},
    ]))
    assert clients[alice.public].user == "alice" and clients[alice.public].role == "trader"
    assert clients[rita.public].role == "risk"


@pytest.mark.parametrize("entry, reason", [
    ({"user": "x", "role": "admin"}, "exactly the keys"),
    ({"user": "x", "role": "admin", "public": None}, "role must be one of monitor, trader, risk"),
    ({"user": "", "role": "risk", "public": None}, "non-empty name"),
    ({"user": "x", "role": "risk", "public": "too-short"}, "not a CURVE key"),
])
def test_malformed_authorized_entries_are_refused_with_a_reason(tmp_path, entry, reason):
    entry = {key: (new_keypair().public if key == "public" and value is None else value)
             for key, value in entry.items()}
    with pytest.raises(AuthorizedFileError, match=reason):
        load_authorized(_authorized(tmp_path, [entry]))


def test_the_same_key_twice_is_refused(tmp_path):
    key = new_keypair().public
    with pytest.raises(AuthorizedFileError, match="same key as user a"):
        load_authorized(_authorized(tmp_path, [{"user": "a", "role": "risk", "public": key},
                                               {"user": "b", "role": "monitor", "public": key}]))
