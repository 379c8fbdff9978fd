"""Reading YAML with line numbers, and typed field readers that collect problems instead of stopping at the first.

The file is parsed to PyYAML's node tree (``yaml.compose``), never to Python floats: every scalar keeps its text
and its line, so a price is parsed exactly and a problem names the line it is on.
"""

import decimal
import re
from dataclasses import dataclass

import yaml

__all__ = ["ConfigError", "Problem", "Reader", "compose_file", "PRICE_SCALE", "MAX_PRICE_TICKS", "parse_price",
           "format_price"]

#: Price(4): four implied decimals.
PRICE_SCALE = 10_000
#: ITCH's largest Price(4): $200,000.0000.
MAX_PRICE_TICKS = 2_000_000_000
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_INTEGER = re.compile(r"^[0-9][0-9_]*$")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    field: str
    message: str

    def __str__(self):
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class ConfigError(ValueError):
    """A configuration file is refused; ``problems`` lists everything wrong with it."""

    def __init__(self, problems):
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(f"refused ({count} problem{'s' if count != 1 else ''}; nothing was sent to the card):\n"
                         + "\n".join(f"  {p}" for p in self.problems))


def compose_file(path):
    """The YAML node tree of ``path``; a syntax error becomes a :class:`ConfigError` with its line."""
    try:
        with open(path) as file:
            node = yaml.compose(file)
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), 0, "(file)", "no such file")]) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        raise ConfigError([Problem(str(path), mark.line + 1 if mark else 0, "(syntax)",
                                   str(error.problem or error))]) from None
    if node is None:
        raise ConfigError([Problem(str(path), 1, "(file)", "empty file")])
    return node


def parse_price(text, allow_zero=False, maximum=MAX_PRICE_TICKS):
    """Dollars (``"101.35"``) to Price(4) ticks, exactly; raise ValueError saying what is wrong."""
    text = str(text).strip()
    if not _DECIMAL.match(text):
        raise ValueError(f"{text!r} is not a price in dollars like 101.35")
    ticks = decimal.Decimal(text) * PRICE_SCALE
    if ticks != ticks.to_integral_value():
        raise ValueError(f"{text} has more than 4 decimals (Price(4))")
    ticks = int(ticks)
    if ticks == 0 and not allow_zero:
        raise ValueError("a price must be above zero")
    if ticks > maximum:
        raise ValueError(f"{text} is above the largest allowed, {format_price(maximum)}")
    return ticks


def format_price(ticks):
    """Price(4) ticks as dollars with four decimals, by integer arithmetic (``1895000`` -> ``"189.5000"``)."""
    sign = "-" if ticks < 0 else ""
    ticks = abs(ticks)
    return f"{sign}{ticks // PRICE_SCALE}.{ticks % PRICE_SCALE:04d}"


class Reader:
    """Typed access to a node tree that records a :class:`Problem` for each bad field and carries on."""

    def __init__(self, path):
        self.path = str(path)
        self.problems = []

    def problem(self, node, field, message):
        self.problems.append(Problem(self.path, node.start_mark.line + 1 if node is not None else 0, field,
                                     message))

    def mapping(self, node, field, allowed=None, required=()):
        """``{key: (key_node, value_node)}`` of a mapping node, checking unknown and missing keys."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, field, "expected a mapping")
            return {}
        entries = {}
        for key_node, value_node in node.value:
            key = key_node.value
            where = f"{field}.{key}" if field else key
            if key in entries:
                self.problem(key_node, where, "given twice")
            elif allowed is not None and key not in allowed:
                self.problem(key_node, where, f"unknown field (expected one of: {', '.join(sorted(allowed))})")
            else:
                entries[key] = (key_node, value_node)
        for key in required:
            if key not in entries:
                self.problem(node, f"{field}.{key}" if field else key, "missing")
        return entries

    def scalar_text(self, node, field):
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, field, "expected a single value")
            return None
        return node.value.strip()

    def integer(self, node, field, minimum=0, maximum=2**32 - 1):
        text = self.scalar_text(node, field)
        if text is None:
            return None
        if not _INTEGER.match(text):
            self.problem(node, field, f"{text!r} is not a whole number")
            return None
        value = int(text.replace("_", ""))
        if not minimum <= value <= maximum:
            self.problem(node, field, f"{value} is outside {minimum}..{maximum}")
            return None
        return value

    def boolean(self, node, field):
        text = self.scalar_text(node, field)
        if text is None:
            return None
        if text.lower() in ("true", "yes", "on"):
            return True
        if text.lower() in ("false", "no", "off"):
            return False
        self.problem(node, field, f"{text!r} is not true or false")
        return None

    def price(self, node, field, allow_zero=False, maximum=MAX_PRICE_TICKS):
        """An amount in dollars (``101.35``) as Price(4) ticks, exactly, or None (problem recorded)."""
        text = self.scalar_text(node, field)
        if text is None:
            return None
        try:
            return parse_price(text, allow_zero, maximum)
        except ValueError as error:
            self.problem(node, field, str(error))
            return None

    def text(self, node, field, pattern=None, what=None):
        value = self.scalar_text(node, field)
        if value is not None and pattern is not None and not re.match(pattern, value):
            self.problem(node, field, f"{value!r} is not {what}")
            return None
        return value

    def check(self):
        if self.problems:
            raise ConfigError(self.problems)
