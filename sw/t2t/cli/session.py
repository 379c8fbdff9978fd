"""What the trader's commands share: opening the card with what the host knows of it, turning failures into exit
codes, and printing tables.

A card behind a card server (``tcp://``) is known by the server, which follows every write (``state`` op). A local
card (``sim``, ``pcie://``, ``file://``) is known through a state file, by default ``t2t-state.json`` next to the
audit log (``--state``, ``$T2T_STATE``): each command loads it, checks it still matches the card (see
:mod:`t2t.server.shadow`), follows its own writes and saves it.
"""

import contextlib
import os
import sys

from .. import trading
from ..card import CardError
from ..config import ConfigError
from ..server.shadow import StateFile
from ..transport import BusError, TransportError
from .errors import CliError
from .regs import open_card_for

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "EXIT_NO_CARD", "Session", "open_session", "default_state_path",
           "table", "warn", "price", "config_error"]

EXIT_FAILED, EXIT_USAGE, EXIT_NO_CARD = 1, 2, 3
DEFAULT_STATE_NAME = "t2t-state.json"


def default_state_path():
    """``$T2T_STATE``, else ``t2t-state.json`` in the folder of ``$T2T_AUDIT_LOG`` (the current one by default)."""
    if os.environ.get("T2T_STATE"):
        return os.environ["T2T_STATE"]
    audit = os.environ.get("T2T_AUDIT_LOG", "t2t-audit.jsonl")
    return os.path.join(os.path.dirname(audit), DEFAULT_STATE_NAME)


def warn(message):
    print(f"t2t: {message}", file=sys.stderr)


def price(ticks):
    """Price(4) ticks as dollars ("-" for none)."""
    return trading.format_price(ticks) if ticks else "-"


def config_error(error, path=None):
    prefix = "" if error.problems else f"{path}: "
    return CliError(f"{prefix}{error}", exit_code=EXIT_USAGE)


def table(headers, rows, right=()):
    """Rows as aligned text columns; columns named in ``right`` are right-aligned."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(header)] + [len(row[i]) for row in rows]) for i, header in enumerate(headers)]

    def line(cells):
        return "  ".join(cell.rjust(width) if header in right else cell.ljust(width)
                         for cell, width, header in zip(cells, widths, headers)).rstrip()
    return "\n".join([line(headers)] + [line(row) for row in rows])


class _ObservedCard:
    """A local card whose writes are followed by a shadow (everything else goes to the card as is)."""

    def __init__(self, card, shadow):
        self._card = card
        self._shadow = shadow

    def __getattr__(self, name):
        return getattr(self._card, name)

    def write(self, path, value):
        self._card.write(path, value)
        self._shadow.observe(path, value)

    def commit(self, *groups):
        bits = 0
        for group in groups:
            bits |= 1 << self._card.regmap.commit_groups[group].offset
        self.write(self._card.regmap.commit_register, bits)


class Session:
    """One command's card (``card``) and what the host knows it holds (:meth:`known`)."""

    def __init__(self, args):
        self.args = args
        self._raw = open_card_for(args)
        self.remote = trading.is_remote(self._raw)
        self.note = None
        self._state = self._shadow = None
        self.card = self._raw
        if not self.remote:
            self._state = StateFile(getattr(args, "state", None) or default_state_path())
            try:
                self._shadow, self.note = self._state.load(self._raw.transport.url, self._raw)
            except TransportError as error:
                self._raw.close()
                raise CliError(str(error), exit_code=EXIT_NO_CARD) from None
            self._saved_changes = self._shadow.changes
            self.card = _ObservedCard(self._raw, self._shadow)

    def known(self):
        """``{"rules": {slot: registers or None}, "positions": {slot: [position, limit] or None}, "armed",
        "killed"}``: the rules and positions the host knows the card holds (``None``: unknown)."""
        if self.remote:
            reply = self._raw.transport.request("state")
            return {"rules": {int(slot): rule for slot, rule in reply["rules"].items()},
                    "positions": {int(slot): position for slot, position in reply["positions"].items()},
                    "armed": reply["armed"], "killed": reply["killed"]}
        return {"rules": dict(self._shadow.rules), "positions": dict(self._shadow.positions),
                "armed": trading.is_armed(self._raw), "killed": trading.is_killed(self._raw)}

    def close(self):
        try:
            if self._shadow is not None and self._shadow.changes != self._saved_changes:
                try:
                    self._state.save(self._raw.transport.url, self._raw, self._shadow)
                except OSError as error:
                    warn(f"{self._state.path}: cannot save what the card holds ({error.strerror})")
        finally:
            self._raw.close()


@contextlib.contextmanager
def open_session(args):
    """A :class:`Session`; failures on the way become CLI errors with the right exit code: a card server's
    refusal (role, bad value) 1, a trading request the card cannot carry out 1, a bad file 2, no card 3."""
    session = Session(args)
    try:
        yield session
    except ConfigError as error:
        raise config_error(error) from None
    except trading.TradingError as error:
        raise CliError(str(error), exit_code=EXIT_FAILED) from None
    except BusError as error:
        raise CliError(f"refused: {error}", exit_code=EXIT_FAILED) from None
    except CardError as error:
        raise CliError(str(error), exit_code=EXIT_FAILED) from None
    except TransportError as error:
        raise CliError(str(error), exit_code=EXIT_NO_CARD) from None
    finally:
        try:
            session.close()
        except TransportError:
            pass
