"""Append-only journal of what the position tracker applied, one JSON object per line.

A record is written (and flushed to the operating system; fsynced too with ``fsync=True``) before the tracker
applies it, so a host that restarts finds every report it had counted. Records (``"k"`` is the kind):

* ``{"k": "journal", "version": 1}`` first;
* ``{"k": "order", "t": ns, "order": {EnterOrder fields}}``: an order sent;
* ``{"k": "report", "t": ns, "seq": n or null, "msg": {"type": letter, OUCH message fields}}``: an execution
  report the tracker accepted (Accepted, Executed, Canceled, Rejected), with its SoupBinTCP sequence number;
* ``{"k": "mode", "t": ns, "mode": "REDUCING" or "NORMAL", "why": text}``: a limit breach or a re-arm.

Reading tolerates a last line cut short by a crash (it is dropped: that record was never applied, and the exchange
replays the report after a reconnect); opening the journal to append cuts it off the file. A damaged line anywhere
else raises :class:`JournalError`.
"""

import dataclasses
import json
import os
import pathlib

from ..trade import ouch

__all__ = ["Journal", "JournalError", "read_journal", "message_record", "message_from_record", "JOURNAL_VERSION"]

JOURNAL_VERSION = 1
_MESSAGES = {cls.TYPE: cls for cls in (ouch.Accepted, ouch.Executed, ouch.Canceled, ouch.Rejected)}


class JournalError(ValueError):
    """A journal that cannot be read back (the message says which line and why)."""


_FIELDS = {}


def message_record(message):
    """An OUCH message object as a JSON-able dict (its fields plus ``type``)."""
    cls = type(message)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(item.name for item in dataclasses.fields(cls))
    record = {name: getattr(message, name) for name in names}
    record["type"] = cls.TYPE
    return record


def message_from_record(record, classes=None):
    """The OUCH message object of a :func:`message_record` dict."""
    record = dict(record)
    letter = record.pop("type")
    cls = (classes or _MESSAGES).get(letter)
    if cls is None:
        raise JournalError(f"journal holds an OUCH message of type {letter!r} it does not know")
    return cls(**record)


def read_journal(path):
    """The records of a journal, in order (see the module doc for the torn last line)."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete = raw.endswith(b"\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        last = number == len(lines) or (number == len(lines) - 1 and complete)
        try:
            record = json.loads(line)
        except ValueError as error:
            if last and not complete:
                break
            raise JournalError(f"{path}: line {number} is not JSON ({error})") from None
        if not isinstance(record, dict) or "k" not in record:
            raise JournalError(f"{path}: line {number} is not a journal record")
        records.append(record)
    if records and records[0].get("k") == "journal" and records[0].get("version") != JOURNAL_VERSION:
        raise JournalError(f"{path}: journal version {records[0].get('version')}, this host reads "
                           f"{JOURNAL_VERSION}")
    return records


class Journal:
    """Appends records to ``path`` (created with its header line if new or empty)."""

    def __init__(self, path, *, fsync=False):
        self.path = pathlib.Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if not fresh:
            raw = self.path.read_bytes()
            if not raw.endswith(b"\n"):
                # A crash cut the last record short; reading dropped it, and so does the file.
                with open(self.path, "r+b") as stream:
                    stream.truncate(raw.rfind(b"\n") + 1)
        self._file = open(self.path, "ab")
        if fresh:
            self.append({"k": "journal", "version": JOURNAL_VERSION})

    def append(self, record):
        self._file.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self):
        if not self._file.closed:
            self._file.close()

    @property
    def closed(self):
        return self._file.closed
