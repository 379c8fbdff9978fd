"""CURVE key files for the card server and its clients.

A key pair is two small YAML files written by ``t2t keys new NAME``:

* ``NAME.key`` (file mode 0600) holds both halves, ``public: "..."`` and ``secret: "..."``;
* ``NAME.pub`` holds only ``public: "..."``, to hand to the other side.

Keys are the 40-character Z85 text of :func:`zmq.curve_keypair`. A file that is not in this shape raises
:class:`KeyFileError` naming the file and what is wrong.
"""

import os
import stat
from dataclasses import dataclass

import yaml
import zmq

__all__ = ["KeyFileError", "KeyPair", "new_keypair", "write_keypair", "load_keypair", "load_public_key",
           "check_z85_key"]

Z85_KEY_LENGTH = 40
_Z85_ALPHABET = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")


class KeyFileError(ValueError):
    """A key file is missing or malformed."""


@dataclass(frozen=True)
class KeyPair:
    public: str
    secret: str

    def __repr__(self):
        return f"KeyPair(public={self.public!r}, secret=<hidden>)"


def check_z85_key(text, where):
    """``text`` if it is a 40-character Z85 CURVE key, else :class:`KeyFileError`."""
    if not isinstance(text, str) or len(text) != Z85_KEY_LENGTH or not set(text) <= _Z85_ALPHABET:
        raise KeyFileError(f"{where}: not a CURVE key (expected {Z85_KEY_LENGTH} characters of Z85 text)")
    return text


def new_keypair():
    public, secret = zmq.curve_keypair()
    return KeyPair(public.decode("ascii"), secret.decode("ascii"))


def write_keypair(directory, name, keypair=None):
    """Write ``NAME.key`` (0600, created exclusively) and ``NAME.pub`` in ``directory``; return both paths.

    Refuses (:class:`FileExistsError`) to overwrite an existing key file.
    """
    keypair = keypair or new_keypair()
    key_path = os.path.join(directory, f"{name}.key")
    pub_path = os.path.join(directory, f"{name}.pub")
    for path in (key_path, pub_path):
        if os.path.exists(path):
            raise FileExistsError(f"{path} already exists; remove it first to make a new key")
    header = f"# CURVE key pair {name!r} for the Tick2Trade card server (made by `t2t keys new`)\n"
    # O_EXCL and mode 0600 at creation: the secret is never readable by others, not even briefly.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as key_file:
        key_file.write(f"{header}# SECRET: keep this file private.\n"
                       f"public: \"{keypair.public}\"\nsecret: \"{keypair.secret}\"\n")
    with open(pub_path, "x") as pub_file:
        pub_file.write(f"{header}# Public half: give it to the other side.\npublic: \"{keypair.public}\"\n")
    return key_path, pub_path


def _load(path):
    try:
        with open(path) as key_file:
            content = yaml.safe_load(key_file)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except OSError as error:
        raise KeyFileError(f"{path}: {error.strerror}") from None
    except yaml.YAMLError:
        raise KeyFileError(f"{path}: not a key file (bad YAML)") from None
    if not isinstance(content, dict):
        raise KeyFileError(f"{path}: not a key file (expected 'public:' and, for a .key file, 'secret:')")
    return content


def load_keypair(path):
    """The :class:`KeyPair` of a ``.key`` file."""
    content = _load(path)
    if "secret" not in content:
        raise KeyFileError(f"{path}: holds no secret key (a .pub file? use the .key file)")
    keypair = KeyPair(check_z85_key(content.get("public"), f"{path}: public"),
                      check_z85_key(content["secret"], f"{path}: secret"))
    if zmq.curve_public(keypair.secret.encode("ascii")).decode("ascii") != keypair.public:
        raise KeyFileError(f"{path}: the public key is not the one of the secret key")
    return keypair


def load_public_key(path):
    """The public key of a ``.pub`` (or ``.key``) file."""
    return check_z85_key(_load(path).get("public"), f"{path}: public")
