"""What the card server does with one request from one authenticated client, independent of the network.

:meth:`CardService.handle` validates the request, checks the caller's role, runs it on the card and returns
the reply object; it never raises, so one client's bad request cannot stop the server or other clients.
Writes are all checked before any is applied: a request is refused as a whole.
"""

import logging

from ..card import CardError
from ..transport import TransportError
from .authorization import Refused, WritePolicy
from .protocol import ProtocolError, parse_request

__all__ = ["CardService"]

log = logging.getLogger(__name__)


class _Failed(Exception):
    """A request that cannot be carried out; the message is the reason for the client."""


class CardService:
    """Serves requests on an opened :class:`t2t.card.Card`; ``audit`` is an :class:`AuditLog` or ``None``.

    Not thread-safe, like the card: call :meth:`handle` from one thread.
    """

    def __init__(self, card, audit=None, policy=None):
        self.card = card
        self.regmap = card.regmap
        self.audit = audit
        self.policy = policy or WritePolicy(card.regmap)

    def handle(self, client, payload):
        """The reply object for request ``payload`` (bytes) from ``client`` (a :class:`Client`)."""
        request_id = None
        try:
            request = parse_request(payload)
            request_id = request.id
            result = getattr(self, f"_op_{request.op}")(client, **request.args)
            return {"id": request_id, "ok": True, **result}
        except ProtocolError as error:
            return {"id": getattr(error, "request_id", request_id), "ok": False, "error": str(error)}
        except (_Failed, Refused, CardError, TransportError) as error:
            return {"id": request_id, "ok": False, "error": str(error)}
        except Exception:
            log.exception("request from %s failed unexpectedly", client.user)
            return {"id": request_id, "ok": False, "error": "internal server error (see the server's log)"}

    # ---- resolving names and addresses
    def _register(self, name):
        try:
            return self.regmap[name]
        except KeyError as error:
            raise _Failed(error.args[0]) from None

    def _word(self, address):
        if address % 4 or address >= 1 << self.regmap.address_width:
            raise _Failed(f"{address:#x} is not a register address (a multiple of 4 below "
                          f"{1 << self.regmap.address_width:#x})")
        return self.regmap.by_word_address.get(address)

    def _register_writes(self, writes):
        """``[(register, value)]`` for the request's writes; the words of a wide register joined in one value."""
        result = []
        index = 0
        while index < len(writes):
            target, value = writes[index]
            if isinstance(target, str):
                reg = self._register(target)
            else:
                located = self._word(target)
                if located is None:
                    raise _Failed(f"address {target:#06x} is not in the register map")
                reg, word = located
                if value >> 32:
                    raise _Failed(f"{value:#x} does not fit a 32-bit word (address {target:#06x})")
                if reg.words > 1:
                    if word != 0:
                        raise _Failed(f"{reg.path} is {reg.words} words wide: write its words in one request, "
                                      f"from {reg.address:#06x} up")
                    words = writes[index:index + reg.words]
                    if [address for address, _ in words] != list(reg.word_addresses) or \
                            any(word_value >> 32 for _, word_value in words):
                        raise _Failed(f"{reg.path} is {reg.words} words wide: write all its words in one "
                                      f"request, from {reg.address:#06x} up")
                    value = sum(word_value << (32 * i) for i, (_, word_value) in enumerate(words))
                    index += reg.words - 1
                value &= (1 << reg.width) - 1
            if reg.access == "ro":
                raise _Failed(f"{reg.path} is read-only")
            if value >> reg.width:
                raise _Failed(f"{value} does not fit {reg.path} ({reg.width} bits)")
            result.append((reg, value))
            index += 1
        return result

    def _readable(self, reg):
        return reg.access != "strobe"

    # ---- ops
    def _op_identify(self, client):
        return {"map_hash": self.regmap.hash, "map_hash32": self.regmap.hash32, "card": self.card.transport.url,
                "user": client.user, "role": client.role}

    def _op_read(self, client, registers):
        values = []
        for target in registers:
            if isinstance(target, str):
                reg = self._register(target)
                if not self._readable(reg):
                    raise _Failed(f"{reg.path} is write-only (a strobe)")
                values.append(self.card.read(reg.path))
            else:
                self._word(target)
                values.append(self.card.transport.read32(target))
        return {"values": values}

    def _op_write(self, client, writes):
        changes = self._register_writes(writes)
        for reg, value in changes:
            self.policy.check_write(client.role, reg, value)
        for done, (reg, value) in enumerate(changes):
            try:
                before = self.card.read(reg.path) if self._readable(reg) else None
                self.card.write(reg.path, value)
                after = self.card.read(reg.path) if self._readable(reg) else None
            except TransportError as error:
                raise _Failed(f"{error} (after {done} of {len(changes)} writes)") from None
            extra = {"groups": self._groups_of(value)} if reg.path == self.regmap.commit_register else {}
            self._record(client, "write", reg.path, value, before, after, **extra)
        return {"count": len(changes)}

    def _op_commit(self, client, groups):
        for group in groups:
            if group not in self.regmap.commit_groups:
                raise _Failed(f"no commit group {group!r}; groups: {', '.join(self.regmap.commit_groups)}")
        self.policy.check_commit(client.role, groups)
        self.card.commit(*groups)
        bits = sum(1 << self.regmap.commit_groups[group].offset for group in set(groups))
        self._record(client, "commit", self.regmap.commit_register, bits, None, None, groups=self._groups_of(bits))
        return {"groups": groups}

    def _op_dump(self, client):
        return {"values": self.card.dump()}

    def _groups_of(self, bits):
        return [name for name, field in self.regmap.commit_groups.items() if bits >> field.offset & 1]

    def _record(self, client, op, register, value, before, after, **extra):
        if self.audit is not None:
            self.audit.record(client.user, client.role, op, register, value, before, after, **extra)
