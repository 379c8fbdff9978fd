"""The card server: one card shared with authenticated clients over a ZeroMQ ROUTER socket with CURVE.

Clients are authenticated by ZAP against the authorized-clients file: a key not in it never completes the
handshake, so it gets no reply at all. Each message then carries its sender's public key (ZeroMQ's
``User-Id``), which names the client and its role for :class:`CardService`.

Everything that touches the card runs in the thread that calls :meth:`CardServer.run`: one request at a time,
so requests never interleave on the card. Between requests the same thread drains the card's read-once logs
(every ``drain_interval_ms``), publishes telemetry, feeds a virtual card from a file (``player``), runs what
:meth:`CardServer.call` was given, and saves what it knows of the card's rules and positions (``state``).
"""

import concurrent.futures
import logging
import queue
import threading
import time

import zmq
from zmq.auth.thread import ThreadAuthenticator

from .logs import CardLogs, DEFAULT_KEEP
from .protocol import MAX_WIRE_BYTES, encode
from .service import CardService
from .telemetry import COUNTERS_TOPIC, LOG_TOPICS, log_message, snapshot

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
    :meth:`wait_ready` returns. With ``telemetry_bind``, a counters snapshot is published there every
    ``telemetry_interval_ms`` (0: as fast as the card can be read between requests), and the log entries as they
    are drained; its endpoint is :attr:`telemetry_endpoint`. ``state`` (a :class:`~.shadow.StateFile`) keeps what
    the server knows of the card's rules and positions across restarts; :attr:`state_note` says why a saved
    state was not used. ``player`` (a :class:`~.player.FeedPlayer`) feeds a virtual card.
    """

    def __init__(self, card, server_keypair, clients, bind="tcp://127.0.0.1:5555", audit=None,
                 telemetry_bind=None, telemetry_interval_ms=500, drain_interval_ms=100, keep=DEFAULT_KEEP,
                 state=None, player=None):
        shadow, self.state_note = state.load(card.transport.url, card) if state is not None else (None, None)
        self.service = CardService(card, audit, shadow=shadow, logs=CardLogs(keep))
        self.state = state
        self.player = player
        self.drain_interval_ms = drain_interval_ms
        self._saved_changes = None
        self._calls = queue.Queue()
        self.server_keypair = server_keypair
        self.clients = clients
        self.bind = bind
        self.endpoint = None
        self.telemetry_bind = telemetry_bind
        self.telemetry_interval_ms = telemetry_interval_ms
        self.telemetry_endpoint = None
        self.published = 0
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

    def call(self, function, timeout=30):
        """Run ``function(card)`` in the server's thread, between requests; return its result (or raise what it
        raised). For tests and tools that must touch the served card without racing the server."""
        future = concurrent.futures.Future()
        self._calls.put((function, future))
        return future.result(timeout)

    def stop(self):
        """Make :meth:`run` return (it does within ``POLL_MS``); waits for the thread :meth:`start` began."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def run(self):
        """Bind and serve until :meth:`stop`."""
        context = zmq.Context()
        authenticator = ThreadAuthenticator(context)
        socket = publisher = None
        try:
            authenticator.start()
            authenticator.configure_curve_callback(domain=ZAP_DOMAIN,
                                                   credentials_provider=_AuthorizedKeys(self.clients))
            socket = self._secured(context.socket(zmq.ROUTER))
            socket.maxmsgsize = MAX_WIRE_BYTES
            # A client that stops reading must not block the server: replies to it are dropped instead.
            socket.router_mandatory = False
            socket.sndhwm = 1000
            socket.bind(self.bind)
            self.endpoint = socket.last_endpoint.decode()
            if self.telemetry_bind:
                publisher = self._secured(context.socket(zmq.PUB))
                publisher.sndhwm = 1000  # a slow subscriber loses old snapshots, never slows the card
                publisher.bind(self.telemetry_bind)
                self.telemetry_endpoint = publisher.last_endpoint.decode()
        except Exception as error:
            self._failure = error
            self._ready.set()
            for opened in (socket, publisher):
                if opened is not None:
                    opened.close()
            authenticator.stop()
            context.term()
            return
        self._ready.set()
        try:
            self._serve(socket, publisher)
        finally:
            socket.close()
            if publisher is not None:
                publisher.close()
            authenticator.stop()
            context.term()

    def _secured(self, socket):
        """``socket`` as a CURVE server whose peers are checked by ZAP against the authorized clients."""
        socket.curve_server = True
        socket.curve_secretkey = self.server_keypair.secret.encode("ascii")
        socket.curve_publickey = self.server_keypair.public.encode("ascii")
        socket.zap_domain = ZAP_DOMAIN.encode()
        socket.linger = 0
        return socket

    def _serve(self, socket, publisher):
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        interval = self.telemetry_interval_ms / 1000
        drain_interval = self.drain_interval_ms / 1000
        now = time.monotonic()
        next_publish = next_drain = now
        self._save_state()
        while not self._stop.is_set():
            due = [next_drain]
            if publisher is not None:
                due.append(next_publish)
            if self.player is not None and not self.player.done:
                due.append(now + 0.01)
            timeout = max(0, min(POLL_MS, int((min(due) - time.monotonic()) * 1000)))
            if not self._calls.empty():
                timeout = 0
            if poller.poll(timeout):
                self._answer(socket, socket.recv_multipart(copy=False))
                self._save_state()
            self._run_calls()
            now = time.monotonic()
            if self.player is not None and not self.player.done:
                self._guarded("feeding the card", self.player.step, self.service.card)
            if now >= next_drain:
                self._guarded("draining the card's logs", self.service.drain)
                next_drain = now + drain_interval
            if publisher is not None:
                self._publish_logs(publisher)
                if now >= next_publish:
                    body = self._guarded("reading telemetry", snapshot, self.service.card, self.published,
                                         self.service.slot_map)
                    if body is not None:
                        try:
                            publisher.send_multipart([COUNTERS_TOPIC, body], zmq.NOBLOCK)
                            self.published += 1
                        except zmq.Again:
                            pass
                    next_publish = max(next_publish + interval, time.monotonic()) if interval else time.monotonic()
            else:
                self.service.take_unpublished()

    def _guarded(self, what, function, *arguments):
        """Background work must never stop the server: log a failure and carry on."""
        try:
            return function(*arguments)
        except Exception:
            log.exception("%s failed", what)
            return None

    def _run_calls(self):
        while True:
            try:
                function, future = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(function(self.service.card))
            except BaseException as error:
                future.set_exception(error)
            self._save_state()

    def _publish_logs(self, publisher):
        for name, entries in self.service.take_unpublished().items():
            try:
                publisher.send_multipart([LOG_TOPICS[name], log_message(entries)], zmq.NOBLOCK)
            except zmq.Again:
                pass

    def _save_state(self):
        if self.state is None or self.service.shadow.changes == self._saved_changes:
            return
        self._saved_changes = self.service.shadow.changes
        self._guarded("saving the state file", self.state.save, self.service.card.transport.url,
                      self.service.card, self.service.shadow)

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
