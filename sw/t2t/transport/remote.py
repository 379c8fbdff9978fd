"""A card shared by a card server (``t2t serve``), reached over ZeroMQ with CURVE: ``tcp://HOST:PORT``.

Word accesses are turned into the server's register-level requests (see :mod:`t2t.server.protocol`) so that
a wide register is read and written whole, in one request, and never interleaves with another client's
access: reading word 0 of a wide register fetches every word and keeps the later ones for the reads that
follow (as the card's own read latch does); writing the words below the last is held until the last word
comes, then all are sent together.

The client authenticates with its key pair (``--key alice.key``) and checks the server's identity with the
server's public key (``--server-pub server.pub``). Every request has a timeout, and fails with a
:class:`TransportError`: "server refused or unreachable" when no authenticated connection comes up in time (a
refused key looks exactly like no server: ZAP sends nothing back), or "no answer" when the request went out but
its reply did not come. A request is never left queued to go out after its caller has given up.
"""

import itertools
import os
import time
import urllib.parse

import zmq

from ..regmap import load_packaged_regmap
from ..server.keys import KeyFileError, load_keypair, load_public_key
from ..server.protocol import ProtocolError, decode_reply, encode
from . import BusError, CardNotFound, Transport, TransportError

__all__ = ["RemoteCard", "DEFAULT_TIMEOUT_MS"]

DEFAULT_TIMEOUT_MS = 3000


class RemoteCard(Transport):
    """The card behind a card server at ``endpoint`` (``tcp://HOST:PORT``).

    ``client_keypair`` is a :class:`t2t.server.keys.KeyPair`, ``server_public`` the server's Z85 public key.
    Opening sends ``identify``; :attr:`identity` holds the answer (user, role, map hash). Every request waits
    at most ``timeout_ms``. A refused request raises :class:`BusError` with the server's reason.
    """

    def __init__(self, endpoint, client_keypair, server_public, timeout_ms=DEFAULT_TIMEOUT_MS, regmap=None):
        self.url = endpoint
        self.timeout_ms = timeout_ms
        self.regmap = regmap or load_packaged_regmap()
        self._ids = itertools.count(1)
        self._read_latch = {}
        self._pending_words = []
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.linger = 0
        # Queue requests only on a connection whose CURVE handshake succeeded, so a request that cannot be
        # delivered fails now instead of going out later, when the caller has given up on it.
        self._socket.immediate = True
        self._socket.sndtimeo = timeout_ms
        self._socket.curve_secretkey = client_keypair.secret.encode("ascii")
        self._socket.curve_publickey = client_keypair.public.encode("ascii")
        self._socket.curve_serverkey = server_public.encode("ascii")
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as error:
            self.close()
            raise CardNotFound(f"{endpoint}: {error}") from None
        try:
            self.identity = self.request("identify")
        except TransportError:
            self.close()
            raise

    @classmethod
    def from_url(cls, url):
        """Open ``tcp://HOST:PORT[?key=FILE.key&server_pub=FILE.pub&timeout_ms=N]``.

        The key files default to ``$T2T_KEY`` and ``$T2T_SERVER_PUB``.
        """
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
            raise CardNotFound(f"{url!r} is not a card server address like tcp://127.0.0.1:5555")
        query = dict(urllib.parse.parse_qsl(parts.query))
        key_path = query.get("key") or os.environ.get("T2T_KEY")
        pub_path = query.get("server_pub") or os.environ.get("T2T_SERVER_PUB")
        if not key_path or not pub_path:
            raise CardNotFound(f"{parts.scheme}://{parts.netloc}: a card server needs your key and its public key "
                               f"(--key FILE.key --server-pub FILE.pub, or $T2T_KEY and $T2T_SERVER_PUB)")
        try:
            keypair, server_public = load_keypair(key_path), load_public_key(pub_path)
        except KeyFileError as error:
            raise CardNotFound(str(error)) from None
        try:
            timeout_ms = int(query.get("timeout_ms", DEFAULT_TIMEOUT_MS))
            if timeout_ms <= 0:
                raise ValueError
        except ValueError:
            raise CardNotFound(f"{url!r}: timeout_ms must be a positive whole number of milliseconds") from None
        return cls(f"{parts.scheme}://{parts.netloc}", keypair, server_public, timeout_ms)

    def request(self, op, **arguments):
        """Send one request and return the reply's fields; :class:`BusError` if the server refused it."""
        if self._socket is None:
            raise TransportError(f"{self.url}: closed")
        request_id = next(self._ids)
        deadline = time.monotonic() + self.timeout_ms / 1000
        try:
            self._socket.send(encode({"op": op, "id": request_id, **arguments}))
        except zmq.Again:
            raise TransportError(f"{self.url}: server refused or unreachable (no connection in "
                                 f"{self.timeout_ms} ms; check the address, your --key and --server-pub, and "
                                 f"that the server lists your key)") from None
        while True:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not self._socket.poll(remaining_ms):
                raise TransportError(f"{self.url}: no answer to {op} in {self.timeout_ms} ms (the server may "
                                     f"still carry it out)")
            try:
                reply = decode_reply(self._socket.recv())
            except ProtocolError as error:
                raise TransportError(f"{self.url}: {error}") from None
            if reply.get("id") == request_id:
                break
            # A late answer to a request that timed out earlier: not ours, keep waiting.
        if not reply["ok"]:
            raise BusError(f"{self.url}: {reply.get('error')}", response=reply.get("error"))
        return reply

    # ---- Transport
    def read32(self, address):
        located = self.regmap.by_word_address.get(address)
        if located is None or located[0].words == 1:
            return self.request("read", registers=[address])["values"][0]
        reg, word = located
        if word == 0:
            values = self.request("read", registers=list(reg.word_addresses))["values"]
            self._read_latch[reg.path] = values
            return values[0]
        latched = self._read_latch.get(reg.path)
        if latched is not None:
            return latched[word]
        return self.request("read", registers=[address])["values"][0]

    def write32(self, address, value):
        located = self.regmap.by_word_address.get(address)
        pending = self._pending_words
        if located is not None and located[0].words > 1:
            reg, word = located
            if word == len(pending) and (not pending or pending[0][0] == reg.address):
                pending.append([address, value & 0xFFFFFFFF])
                if word < reg.words - 1:
                    return
                self._pending_words = []
                self.request("write", writes=pending)
                return
        # An incomplete wide write followed by something else: send it as is, for the server to refuse.
        self._pending_words = []
        self.request("write", writes=pending + [[address, value & 0xFFFFFFFF]])

    def close(self):
        if self._socket is not None:
            self._socket.close()
            self._socket = None
            self._context.term()
