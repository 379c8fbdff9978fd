"""The card driver: named register access over any transport, checked against the host's register map."""

from .regmap import load_packaged_regmap
from .transport import TransportError, open_transport

__all__ = ["Card", "CardError", "MapMismatch", "open_card"]


class CardError(TransportError):
    """The card is not one this host can drive."""


class MapMismatch(CardError):
    """The card's register map differs from the host's."""


class Card:
    """A Tick2Trade card opened over a :class:`t2t.transport.Transport`.

    On open, checks ``id.magic`` and ``id.map_hash`` and refuses a card that is not a Tick2Trade card or whose
    register map differs from the host's (the message gives both hashes).

    Registers are named ``block.register`` as in the register map (``card.read("id.scratch")``). Values are
    integers of the register's full width: wide registers are read low word first (the card latches the rest)
    and written low word first (the last word commits the whole value).
    """

    def __init__(self, transport, regmap=None, check=True):
        self.transport = transport
        self.regmap = regmap or load_packaged_regmap()
        if check:
            self._check_identity()

    def _check_identity(self):
        magic = self.transport.read32(self.regmap["id.magic"].address)
        if magic != self.regmap.magic:
            raise CardError(f"{self.transport.url}: not a Tick2Trade card (id.magic reads {magic:#010x}, "
                            f"expected {self.regmap.magic:#010x})")
        card_hash = self.transport.read32(self.regmap["id.map_hash"].address)
        if card_hash != self.regmap.hash32:
            raise MapMismatch(f"{self.transport.url}: register map mismatch: the card reports map hash "
                              f"{card_hash:#010x}, this host was built for {self.regmap.hash32:#010x}; use the "
                              f"host software that matches the card's bitstream")

    def close(self):
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read(self, path):
        reg = self.regmap[path]
        if reg.access == "strobe":
            raise CardError(f"{path} is write-only (a strobe)")
        value = 0
        for index, address in enumerate(reg.word_addresses):
            value |= self.transport.read32(address) << (32 * index)
        return value & ((1 << reg.width) - 1)

    def write(self, path, value):
        reg = self.regmap[path]
        if reg.access == "ro":
            raise CardError(f"{path} is read-only")
        if not 0 <= value < 1 << reg.width:
            raise CardError(f"{value} does not fit {path} ({reg.width} bits)")
        for index, address in enumerate(reg.word_addresses):
            self.transport.write32(address, (value >> (32 * index)) & 0xFFFFFFFF)

    def read_field(self, path, field):
        f = self.regmap[path].field(field)
        return (self.read(path) >> f.offset) & ((1 << f.width) - 1)

    def decode(self, path, value):
        """A register value as ``{field: value or enum name}`` (empty for a register without fields)."""
        result = {}
        for field in self.regmap[path].fields:
            raw = (value >> field.offset) & ((1 << field.width) - 1)
            names = {v: k for k, v in field.enum.items()}
            result[field.name] = names.get(raw, raw)
        return result

    def commit(self, *groups):
        """Apply the staged settings of ``groups`` together, in one cycle on the card."""
        bits = 0
        for group in groups:
            if group not in self.regmap.commit_groups:
                raise CardError(f"no commit group {group!r}; groups: {', '.join(self.regmap.commit_groups)}")
            bits |= 1 << self.regmap.commit_groups[group].offset
        self.write(self.regmap.commit_register, bits)

    def dump(self):
        """Every readable register: ``{path: value}`` in address order."""
        return {reg.path: self.read(reg.path) for reg in self.regmap if reg.access != "strobe"}


def open_card(url, check=True):
    """Open the card a URL names (see :func:`t2t.transport.open_transport`)."""
    return Card(open_transport(url), check=check)
