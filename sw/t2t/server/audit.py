"""The append-only audit log of every change the card server makes, as JSON lines.

One line per register written or group committed::

    {"time": "2026-11-24T23:01:02.345678+00:00", "user": "alice", "role": "trader", "op": "write",
     "register": "feed.dst_port_a", "value": 1000, "before": 26477, "after": 1000}

``before`` and ``after`` are the register's value read just before and just after the change; for a write-only
strobe, what it acts on (``risk.control``: ``risk.status``; ``book.slot``: the slot's ``{slot, symbol, locate,
valid}``), else ``null``. For a commit, ``value`` is the bits written to the commit register and ``groups`` names
them. Changes the card cannot show in a register get an entry of their own, after the write that made them:

* ``"op": "rules"`` (on ``strategy.rules_commit``): ``before`` and ``after`` are ``{slot: rule}`` of the slots the
  commit changed (the rule as a thresholds file says it; ``null``: not known to the server), ``symbols`` names them;
* ``"op": "position"`` (on ``risk.position_write``): ``{slot: [position, limit]}``.

Times are UTC, ISO 8601 with microseconds.
"""

import datetime
import json

__all__ = ["AuditLog", "AuditLogError", "read_audit"]


class AuditLogError(ValueError):
    """The audit log cannot be read; the message names the line."""


class AuditLog:
    """Appends entries to ``path``; each is flushed before the change is acknowledged to the client."""

    def __init__(self, path):
        self.path = path
        self._file = open(path, "a", encoding="utf-8")

    def record(self, user, role, op, register, value, before, after, flush=True, **extra):
        entry = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds"),
                 "user": user, "role": role, "op": op, "register": register, "value": value,
                 "before": before, "after": after, **extra}
        self._file.write(json.dumps(entry) + "\n")
        if flush:
            self._file.flush()
        return entry

    def flush(self):
        """Write out entries recorded with ``flush=False`` (the server does before it replies)."""
        self._file.flush()

    def close(self):
        self._file.close()


def read_audit(path):
    """Every entry of an audit log, oldest first."""
    entries = []
    with open(path, encoding="utf-8") as log:
        for number, line in enumerate(log, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                raise AuditLogError(f"{path}:{number}: not a JSON line") from None
            if not isinstance(entry, dict):
                raise AuditLogError(f"{path}:{number}: not an audit entry")
            entries.append(entry)
    return entries
