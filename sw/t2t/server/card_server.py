"""The card server: one card shared with authenticated clients over a ZeroMQ ROUTER socket with CURVE.

Clients are authenticated by ZAP against the authorized-clients file: a key not in it never completes the
handshake, so it gets no reply at all. Each message then carries its sender's public key (ZeroMQ's
``User-Id``), which names the client and its role for :class:`CardService`.

Everything that touches the card runs in the thread that calls :meth:`CardServer.run`: one request at a time,
so requests never interleave on the card.
"""

import logging
import threading

import zmq
from zmq.auth.thread import ThreadAuthenticator

from .protocol import MAX_WIRE_BYTES, encode
from .service import CardService

__all__ = ["CardServer"]

log = logging.getLogger(__name__)

POLL_MS = 100
ZAP_DOMAIN = "t2t"


class _AuthorizedKeys:
    """The ZAP credentials provider: a client is let in when its public key is in ``clients``."""

    def __init__(self, clients):
        self.clients = clients

    def callback(self, domain, key):
        return key.decode("ascii") in self.clients


class CardServer:
    """Serves ``card`` (an opened :class:`t2t.card.Card`) at ``bind`` to ``clients`` (``{public key: Client}``).

    ``bind`` is a ZeroMQ endpoint; ``tcp://127.0.0.1:*`` picks a free port, readable as :attr:`endpoint` once
    :meth:`wait_ready` returns.
    """

    def __init__(self, card, server_keypair, clients, bind="tcp://127.0.0.1:5555", audit=None):
        self.service = CardService(card, audit)
        self.server_keypair = server_keypair
        self.clients = clients
        self.bind = bind
        self.endpoint = None
        self.requests = 0
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._failure = None
        self._thread = None

    def start(self):
        """Serve from a new background thread; return once the socket is bound (or raise why it is not)."""
        self._thread = threading.Thread(target=self.run, name="card-server", daemon=True)
        self._thread.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def join(self, timeout=None):
        """Wait for the thread :meth:`start` began to end; True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_ready(self, timeout=10):
        """Wait until the socket is bound; re-raise what stopped the server if it failed to start."""
        if not self._ready.wait(timeout):
            raise TimeoutError("the card server did not start")
        if self._failure is not None:
            raise self._failure

    def stop(self):
        """Make :meth:`run` return (it does within ``POLL_MS``); waits for the thread :meth:`start` began."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def run(self):
        """Bind and serve until :meth:`stop`."""
        context = zmq.Context()
        authenticator = ThreadAuthenticator(context)
        socket = None
        try:
            authenticator.start()
            authenticator.configure_curve_callback(domain=ZAP_DOMAIN,
                                                   credentials_provider=_AuthorizedKeys(self.clients))
            socket = context.socket(zmq.ROUTER)
            socket.curve_server = True
            socket.curve_secretkey = self.server_keypair.secret.encode("ascii")
            socket.curve_publickey = self.server_keypair.public.encode("ascii")
            socket.zap_domain = ZAP_DOMAIN.encode()
            socket.linger = 0
            socket.maxmsgsize = MAX_WIRE_BYTES
            # A client that stops reading must not block the server: replies to it are dropped instead.
            socket.router_mandatory = False
            socket.sndhwm = 1000
            socket.bind(self.bind)
            self.endpoint = socket.last_endpoint.decode()
        except Exception as error:
            self._failure = error
            self._ready.set()
            if socket is not None:
                socket.close()
            authenticator.stop()
            context.term()
            return
        self._ready.set()
        try:
            self._serve(socket)
        finally:
            socket.close()
            authenticator.stop()
            context.term()

    def _serve(self, socket):
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        while not self._stop.is_set():
            if poller.poll(POLL_MS):
                self._answer(socket, socket.recv_multipart(copy=False))

    def _answer(self, socket, frames):
        self.requests += 1
        identity, body = frames[0], frames[1:]
        client = self.clients.get(frames[-1].get("User-Id"))
        if client is None:
            # ZAP let in only known keys, so this cannot happen unless the file changed under us; say nothing.
            return
        if len(body) != 1:
            reply = {"id": None, "ok": False, "error": f"expected one frame per request, got {len(body)}"}
        else:
            reply = self.service.handle(client, body[0].bytes)
        try:
            socket.send_multipart([identity.bytes, encode(reply)], zmq.NOBLOCK)
        except zmq.Again:
            log.warning("dropped a reply to %s: the client is not reading", client.user)
