"""What the card server does with one request from one authenticated client, independent of the network.

:meth:`CardService.handle` validates the request, checks the caller's role, runs it on the card and returns
the reply object; it never raises, so one client's bad request cannot stop the server or other clients.
Writes are all checked before any is applied: a request is refused as a whole.

The service is the single consumer of the card's pop-on-read logs (:mod:`.logs`) and follows every write in a
:class:`~.shadow.CardShadow`, so it knows the rules and positions the card cannot show (``state`` op).
"""

import logging

from .. import trading
from ..card import CardError
from ..transport import TransportError
from .authorization import Refused, WritePolicy
from .logs import CardLogs
from .protocol import ProtocolError, parse_request
from .shadow import CardShadow

__all__ = ["CardService"]

log = logging.getLogger(__name__)


class _Failed(Exception):
    """A request that cannot be carried out; the message is the reason for the client."""


class CardService:
    """Serves requests on an opened :class:`t2t.card.Card`; ``audit`` is an :class:`AuditLog` or ``None``.

    Not thread-safe, like the card: call :meth:`handle` from one thread.
    """

    def __init__(self, card, audit=None, policy=None, shadow=None, logs=None):
        self.card = card
        self.regmap = card.regmap
        self.audit = audit
        self.policy = policy or WritePolicy(card.regmap)
        self.shadow = shadow or CardShadow.attach(card)
        self.logs = logs or CardLogs()
        self._pop_words = {address for path in trading.POP_ON_READ if path in self.regmap.registers
                           for address in self.regmap[path].word_addresses}
        self._slot_map = None
        #: Log entries drained but not yet published on telemetry: ``{log name: [entries]}``.
        self.unpublished = {}

    # ---- the card's logs and slot table, kept by the server
    @property
    def slot_map(self):
        if self._slot_map is None:
            self._slot_map = trading.read_slots(self.card)
        return self._slot_map

    def drain(self):
        """Take every queued entry off the card's logs into the server's copy; returns the new ones."""
        new = self.logs.drain(self.card, self.slot_map)
        for name, entries in new.items():
            self.unpublished.setdefault(name, []).extend(entries)
        return new

    def take_unpublished(self):
        new, self.unpublished = self.unpublished, {}
        return new

    def handle(self, client, payload):
        """The reply object for request ``payload`` (bytes) from ``client`` (a :class:`Client`)."""
        request_id = None
        try:
            request = parse_request(payload)
            request_id = request.id
            try:
                result = getattr(self, f"_op_{request.op}")(client, **request.args)
            finally:
                if self.audit is not None:
                    self.audit.flush()
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
        for target in registers:
            reg = self._register(target) if isinstance(target, str) else (self._word(target) or (None,))[0]
            if reg is not None and reg.path in trading.POP_ON_READ:
                raise _Failed(f"{reg.path} is a read-once queue that the card server drains for everyone: "
                              f"ask for its copy (`t2t orders tail`, `t2t rejects tail`; op log)")
            if isinstance(target, str) and not self._readable(reg):
                raise _Failed(f"{reg.path} is write-only (a strobe)")
        values = []
        for target in registers:
            if isinstance(target, str):
                values.append(self.card.read(target))
            else:
                values.append(self.card.transport.read32(target))
        return {"values": values}

    def _op_write(self, client, writes):
        changes = self._register_writes(writes)
        for reg, value in changes:
            self.policy.check_write(client.role, reg, value)
        for done, (reg, value) in enumerate(changes):
            try:
                before = self._before_after(reg, value)
                self.card.write(reg.path, value)
                after = self._before_after(reg, value)
            except TransportError as error:
                raise _Failed(f"{error} (after {done} of {len(changes)} writes)") from None
            extra = {"groups": self._groups_of(value)} if reg.path == self.regmap.commit_register else {}
            self._record(client, "write", reg.path, value, before, after, **extra)
            if reg.path == "book.slot":
                self._slot_map = None
            for what, effect_before, effect_after in self.shadow.observe(reg.path, value):
                self._record_effect(client, what, reg.path, effect_before, effect_after)
        return {"count": len(changes)}

    def _before_after(self, reg, value):
        """What the audit log shows before and after a write to ``reg`` (nothing without an audit log)."""
        if self.audit is None:
            return None
        if self._readable(reg):
            return self.card.read(reg.path)
        if reg.path == "risk.control":
            return self.card.read("risk.status")
        if reg.path == "book.slot":
            return self._slot_view((value >> self.regmap["book.slot"].field("slot").offset) & 0xFF)
        return None

    def _slot_view(self, slot):
        selected = self.card.read("book.slot_view")
        self.card.write("book.slot_view", slot)
        view = self.card.decode("book.slot_view_locate", self.card.read("book.slot_view_locate"))
        symbol = self.card.read("book.slot_view_symbol").to_bytes(8, "little").decode("ascii", "replace").rstrip()
        self.card.write("book.slot_view", selected)
        return {"slot": slot, "symbol": symbol, "locate": view["locate"], "valid": bool(view["valid"])}

    def _record_effect(self, client, what, register, before, after):
        if self.audit is None:
            return
        symbols = {str(slot): self.slot_map.symbol_of_slot(slot) for slot in after}
        if what == "rules":
            before = {str(slot): trading.describe_rule(rule) for slot, rule in before.items()}
            after = {str(slot): trading.describe_rule(rule) for slot, rule in after.items()}
        else:
            before = {str(slot): value for slot, value in before.items()}
            after = {str(slot): value for slot, value in after.items()}
        self._record(client, what, register, None, before, after, symbols=symbols)

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
        self.drain()
        values = {}
        for reg in self.regmap:
            if reg.access == "strobe":
                continue
            # The server has just drained the read-once queues: as the card stands, they are empty.
            values[reg.path] = 0 if reg.path in trading.POP_ON_READ else self.card.read(reg.path)
        return {"values": values}

    def _op_slots(self, client):
        self._slot_map = None
        return {"slots": [list(entry) for entry in self.slot_map.entries],
                "capacity": trading.slot_capacity(self.card)}

    def _op_depth(self, client, slot, levels=8):
        capacity = trading.slot_capacity(self.card)
        if slot >= capacity:
            raise _Failed(f"slot {slot} does not exist (the card has {capacity} slots: 0-{capacity - 1})")
        bids, asks = trading.depth(self.card, slot, levels)
        return {"bids": [[level.price, level.shares, level.orders] for level in bids],
                "asks": [[level.price, level.shares, level.orders] for level in asks]}

    def _op_log(self, client, log, since=None, last=None):
        self.drain()
        entries, dropped = self.logs.select(log, since, last)
        return {"log": log, "entries": entries, "next": self.logs.buffers[log].next_seq, "dropped": dropped}

    def _op_state(self, client):
        shadow = self.shadow
        return {"rules": {str(slot): rule for slot, rule in shadow.rules.items()},
                "positions": {str(slot): position for slot, position in shadow.positions.items()},
                "staged": sorted(shadow.staged),
                "armed": trading.is_armed(self.card), "killed": trading.is_killed(self.card)}

    def _groups_of(self, bits):
        return [name for name, field in self.regmap.commit_groups.items() if bits >> field.offset & 1]

    def _record(self, client, op, register, value, before, after, **extra):
        if self.audit is not None:
            self.audit.record(client.user, client.role, op, register, value, before, after, flush=False, **extra)
