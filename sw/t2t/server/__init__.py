"""The card server: one card shared with several authenticated clients over ZeroMQ (``t2t serve``).

The server opens the card once (through :class:`t2t.card.Card`, so the register map is checked) and answers
JSON requests on a ROUTER socket secured with CURVE; clients reach it with the ``tcp://`` transport
(:class:`t2t.transport.remote.RemoteCard`). Modules, one job each:

* :mod:`.keys` - the CURVE key files (``t2t keys new``);
* :mod:`.authorization` - the authorized-clients file, the roles and what each may write;
* :mod:`.protocol` - the request and reply format (documented there);
* :mod:`.service` - carrying out one request on the card;
* :mod:`.audit` - the append-only log of changes (``t2t audit``);
* :mod:`.logs` - the card's read-once logs (orders, rejects, gaps), drained by the server alone, kept for clients;
* :mod:`.shadow` - the rules and positions the card cannot show, followed write by write (and a state file);
* :mod:`.telemetry` - counters, BBO, latency and the logs on a PUB socket (``t2t monitor``);
* :mod:`.player` - an ITCH file fed into a served virtual card (``t2t serve --play``);
* :mod:`.card_server` - the ZeroMQ loop and client authentication.
"""

from .audit import AuditLog, read_audit
from .authorization import ROLES, Client, load_authorized
from .card_server import CardServer
from .keys import KeyPair, load_keypair, load_public_key, new_keypair, write_keypair

__all__ = ["AuditLog", "read_audit", "ROLES", "Client", "load_authorized", "CardServer", "KeyPair",
           "load_keypair", "load_public_key", "new_keypair", "write_keypair"]
