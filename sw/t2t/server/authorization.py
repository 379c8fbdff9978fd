"""Who may do what on a shared card: the authorized-clients file, the roles, and the write policy.

The authorized file (YAML) lists each client's CURVE public key with a user name and a role::

    clients:
      - user: alice
        role: trader
        public: "<40 characters of Z85, the content of alice.pub>"

Roles:

* ``monitor`` reads only (registers, the slot table, depth, the server's copy of the order/reject/gap logs, the
  rules and positions it knows);
* ``trader`` also writes what trading needs day to day: the threshold rules and arming (the whole ``strategy``
  block), the pair rule (``pair``), the symbol slots (``book.symbol``, ``book.slot``, the view selectors ``book.slot_view`` and
  ``book.depth_select``, ``itch.subscribe``) and the feed settings (``feed``, and commits the ``feed`` group);
  nothing of ``risk``;
* ``risk`` writes everything: risk limits, positions, the kill switch and its rearm, ``control.*``, the order
  encoder's settings, clearing latency figures and degraded flags.

A refusal is a :class:`Refused` whose message a person can read ("role trader may not write control.status").
"""

from dataclasses import dataclass

import yaml

from .keys import KeyFileError, check_z85_key

__all__ = ["ROLES", "ROLE_WRITE_ALLOW", "AuthorizedFileError", "Client", "Refused", "WritePolicy",
           "load_authorized"]

#: What each role may write: block names or ``block.register`` paths; ``*`` is everything.
ROLE_WRITE_ALLOW = {
    "monitor": frozenset(),
    "trader": frozenset({"feed", "id.scratch", "strategy", "pair", "book.symbol", "book.slot", "book.slot_view",
                         "book.depth_select", "itch.subscribe"}),
    "risk": frozenset({"*"}),
}
ROLES = tuple(ROLE_WRITE_ALLOW)


class AuthorizedFileError(ValueError):
    """The authorized-clients file is malformed; the message names the entry."""


class Refused(Exception):
    """A request the caller's role does not allow."""


@dataclass(frozen=True)
class Client:
    user: str
    role: str
    public: str


def load_authorized(path):
    """``{public key: Client}`` from an authorized-clients file; raises :class:`AuthorizedFileError`."""
    try:
        with open(path) as authorized_file:
            content = yaml.safe_load(authorized_file)
    except FileNotFoundError:
        raise AuthorizedFileError(f"{path}: no such file") from None
    except yaml.YAMLError as error:
        raise AuthorizedFileError(f"{path}: bad YAML ({error})") from None
    if not isinstance(content, dict) or not isinstance(content.get("clients"), list):
        raise AuthorizedFileError(f"{path}: expected a 'clients:' list of {{user, role, public}}")
    clients = {}
    for index, entry in enumerate(content["clients"]):
        where = f"{path}: client {index + 1}"
        if not isinstance(entry, dict) or set(entry) != {"user", "role", "public"}:
            raise AuthorizedFileError(f"{where}: expected exactly the keys user, role and public")
        user, role = entry["user"], entry["role"]
        if not isinstance(user, str) or not user:
            raise AuthorizedFileError(f"{where}: user must be a non-empty name")
        if role not in ROLE_WRITE_ALLOW:
            raise AuthorizedFileError(f"{where} ({user}): role must be one of {', '.join(ROLES)}, not {role!r}")
        try:
            public = check_z85_key(entry["public"], f"{where} ({user})")
        except KeyFileError as error:
            raise AuthorizedFileError(str(error)) from None
        if public in clients:
            raise AuthorizedFileError(f"{where} ({user}): same key as user {clients[public].user}")
        clients[public] = Client(user, role, public)
    return clients


class WritePolicy:
    """Decides whether a role may write a register, or commit groups, on a given register map."""

    def __init__(self, regmap, allow=ROLE_WRITE_ALLOW):
        self.regmap = regmap
        self.allow = allow

    def may_write(self, role, reg):
        allowed = self.allow[role]
        return "*" in allowed or reg.path in allowed or reg.block in allowed

    def check_write(self, role, reg, value):
        """Raise :class:`Refused` unless ``role`` may write ``value`` to ``reg`` (a register of the map)."""
        if reg.path == self.regmap.commit_register and "*" not in self.allow[role]:
            groups = [name for name, field in self.regmap.commit_groups.items() if value >> field.offset & 1]
            known_bits = sum(1 << field.offset for field in self.regmap.commit_groups.values())
            if value & ~known_bits or not groups:
                raise Refused(f"role {role} may not write {reg.path} except to commit a group")
            self.check_commit(role, groups)
            return
        if not self.may_write(role, reg):
            raise Refused(f"role {role} may not write {reg.path}")

    def check_commit(self, role, groups):
        for group in groups:
            denied = [reg.path for reg in self.regmap.group_members(group) if not self.may_write(role, reg)]
            if denied or not self.allow[role]:
                reason = f" (it holds {', '.join(denied)})" if denied else ""
                raise Refused(f"role {role} may not commit group {group}{reason}")
