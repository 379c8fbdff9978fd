"""What the host knows the card holds but cannot read back: the committed threshold rule of each slot and each
slot's position and position limit.

The card has no per-slot read-back of its rule memory or of the risk gate's position table (the ``rule_*`` and
``position*`` registers are staging registers: a strobe copies them in). Whoever carries out every write to the card
can still know what it holds, by following the writes as the card does: :class:`CardShadow` is given each write
(:meth:`CardShadow.observe`) and keeps

* the staging registers (``strategy.rule_*``, ``risk.position_slot``/``position``/``position_limit``), read from
  the card when the shadow is attached, then followed;
* the rules staged per slot since the last ``rules_commit`` (``rule_write`` copies the staging registers);
* the committed rule of each slot (``rules_commit`` applies every staged rule) and each slot's position and limit
  (``position_write``): ``None`` while unknown.

The card server is the one writer of the card it serves, so it keeps the shadow (and gives it to clients with the
``state`` op). A CLI driving a local card keeps it in a state file next to the audit log (:class:`StateFile`).

A saved shadow is trusted again only if the card still looks as it did when it was saved: the same register map,
``id.cycles`` not gone backwards (else the card was reset and its rules are all zero), and the staging registers
still holding what the shadow says (else someone wrote rules behind the host's back). This is a guard, not a proof:
read-back registers on the card would make it one (see docs/cli.md).
"""

import json
import os
import tempfile

from ..trading import RULE_FIELDS

__all__ = ["CardShadow", "StateFile", "STAGING_REGISTERS"]

_POSITION_STAGING = ("risk.position_slot", "risk.position", "risk.position_limit")
#: Registers a shadow follows, read from the card when it is attached.
STAGING_REGISTERS = ("strategy.rule_slot", *(f"strategy.{name}" for name in RULE_FIELDS), *_POSITION_STAGING)


def _signed32(value):
    return value - (1 << 32) if value & 1 << 31 else value


class CardShadow:
    """The rules and positions a card holds, followed write by write (see the module documentation)."""

    def __init__(self, capacity, staging, rules=None, positions=None, staged=None):
        self.capacity = capacity
        self.staging = dict(staging)
        self.staged = dict(staged or {})
        self.rules = {slot: None for slot in range(capacity)}
        self.rules.update(rules or {})
        self.positions = {slot: None for slot in range(capacity)}
        self.positions.update(positions or {})
        self.changes = 0

    @classmethod
    def attach(cls, card):
        """A shadow of ``card`` as it is now: staging registers read, rules and positions unknown."""
        from ..trading import read_many
        return cls(card.read("book.slots"), read_many(card, STAGING_REGISTERS))

    # ---- following writes
    def observe(self, path, value):
        """Follow one write the card carried out. Returns what it changed that the audit log should say:
        ``[(what, before, after)]`` for committed rules (``what`` = "rules", before/after ``{slot: registers}``)
        and positions ("position", ``{slot: [position, limit]}``)."""
        if path in self.staging:
            if self.staging[path] != value:
                self.staging[path] = value
                self.changes += 1
            return []
        if path == "strategy.rule_write":
            slot = self.staging["strategy.rule_slot"]
            if slot < self.capacity:
                self.staged[slot] = {name: self.staging[f"strategy.{name}"] for name in RULE_FIELDS}
                self.changes += 1
            return []
        if path == "strategy.rules_commit":
            if not self.staged:
                return []
            before = {slot: self.rules.get(slot) for slot in sorted(self.staged)}
            self.rules.update(self.staged)
            after = {slot: self.rules[slot] for slot in sorted(self.staged)}
            self.staged = {}
            self.changes += 1
            return [("rules", before, after)]
        if path == "risk.position_write":
            slot = self.staging["risk.position_slot"]
            if slot >= self.capacity:
                return []
            before = self.positions.get(slot)
            after = [_signed32(self.staging["risk.position"]), self.staging["risk.position_limit"]]
            self.positions[slot] = after
            self.changes += 1
            return [("position", {slot: before}, {slot: after})]
        return []

    def forget(self):
        """Everything unknown again (e.g. after the card was reset under the host)."""
        self.rules = {slot: None for slot in range(self.capacity)}
        self.positions = {slot: None for slot in range(self.capacity)}
        self.staged = {}
        self.changes += 1

    # ---- saving and trusting again
    def to_dict(self):
        return {"capacity": self.capacity, "staging": self.staging,
                "staged": {str(slot): rule for slot, rule in self.staged.items()},
                "rules": {str(slot): rule for slot, rule in self.rules.items()},
                "positions": {str(slot): position for slot, position in self.positions.items()}}

    @classmethod
    def from_dict(cls, data):
        def by_slot(mapping):
            return {int(slot): value for slot, value in (mapping or {}).items()}
        return cls(int(data["capacity"]), data["staging"], by_slot(data.get("rules")), by_slot(data.get("positions")),
                   by_slot(data.get("staged")))

    def snapshot(self, card):
        """What to save: the shadow, and what :meth:`why_stale` checks the card against later."""
        return {"map_hash": card.regmap.hash, "cycles": card.read("id.cycles"), "shadow": self.to_dict()}

    @classmethod
    def restore(cls, card, saved):
        """``(shadow, reason)``: the saved shadow if the card still matches it (reason ``None``), else a freshly
        attached one and why the saved one was dropped."""
        try:
            shadow = cls.from_dict(saved["shadow"])
            reason = None
            if saved.get("map_hash") != card.regmap.hash:
                reason = "the card's register map changed"
            elif card.read("id.cycles") < int(saved.get("cycles", 0)):
                reason = "the card was reset"
            else:
                from ..trading import read_many
                staging = read_many(card, STAGING_REGISTERS)
                if any(shadow.staging.get(path) != value for path, value in staging.items()):
                    reason = "rule or position registers were written by someone else"
        except (KeyError, TypeError, ValueError, AttributeError):
            reason = "the saved state is unreadable"
        if reason is None:
            return shadow, None
        return cls.attach(card), reason


class StateFile:
    """A JSON file of shadows, one per card URL: what a CLI driving local cards knows they hold."""

    def __init__(self, path):
        self.path = str(path)

    def _read(self):
        try:
            with open(self.path, encoding="utf-8") as file:
                content = json.load(file)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}
        return content.get("cards", {}) if isinstance(content, dict) else {}

    def load(self, url, card):
        """``(shadow, note)`` for the card at ``url``: the saved one if still trustworthy, else a fresh one and
        a note saying why the rules are not known."""
        saved = self._read().get(url)
        if saved is None:
            return CardShadow.attach(card), None
        shadow, reason = CardShadow.restore(card, saved)
        return shadow, reason and f"{self.path}: not used for {url} ({reason})"

    def save(self, url, card, shadow):
        cards = self._read()
        cards[url] = shadow.snapshot(card)
        directory = os.path.dirname(os.path.abspath(self.path))
        with tempfile.NamedTemporaryFile("w", dir=directory, prefix=".t2t-state-", delete=False,
                                         encoding="utf-8") as file:
            json.dump({"version": 1, "cards": cards}, file, indent=1, sort_keys=True)
            temporary = file.name
        os.replace(temporary, self.path)
