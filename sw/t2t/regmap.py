"""The register map: parsed from its YAML source, resolved to addresses, hashed, and described to the host.

The YAML file (``hw/t2t_gateware/regs/regmap.yaml``) is the single source. :func:`parse_regmap` turns it into a
resolved, validated plain-data description (blocks -> registers -> fields, with byte addresses and word counts);
the gateware register bank is elaborated from that description, and ``t2t/regmap_data.py`` holds a generated copy
so the host needs neither the YAML file nor the gateware package at run time.

The map's identity is the SHA-256 of the canonical JSON of the resolved description; its low 32 bits are what
the card reports in ``id.map_hash``.
"""

import hashlib
import json
from dataclasses import dataclass

__all__ = [
    "RegmapError", "Field", "Register", "RegisterMap", "parse_regmap", "load_packaged_regmap", "ACCESS_KINDS",
]

#: Register access kinds (see the YAML file's header for their meaning).
ACCESS_KINDS = ("ro", "rw", "w1c", "strobe")

WORD_BYTES = 4
_REGISTER_KEYS = {"name", "access", "width", "reset", "doc", "fields", "commit"}
_FIELD_KEYS = {"name", "offset", "width", "enum", "doc"}
_BLOCK_KEYS = {"name", "base", "doc", "registers", "instances", "stride"}
_TOP_KEYS = {"name", "version", "magic", "data_width", "address_width", "commit_register", "blocks"}


class RegmapError(ValueError):
    """The register map source is inconsistent; the message names the block, register or field."""


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    width: int
    enum: dict  # name -> value, empty when the field is a plain number
    doc: str

    @property
    def mask(self):
        return ((1 << self.width) - 1) << self.offset


@dataclass(frozen=True)
class Register:
    """One register: ``path`` is ``block.register`` (``rx_a.frames`` for an instance of a repeated block)."""
    path: str
    block: str
    name: str
    address: int
    access: str
    width: int
    reset: int
    commit: str | None
    doc: str
    fields: tuple

    @property
    def words(self):
        return (self.width + 31) // 32

    @property
    def word_addresses(self):
        return tuple(self.address + WORD_BYTES * i for i in range(self.words))

    def field(self, name):
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"register {self.path} has no field {name!r}")


class RegisterMap:
    """A resolved register map: registers by path and by address, the commit groups, and the map hash."""

    def __init__(self, description):
        self.description = description
        self.name = description["name"]
        self.version = description["version"]
        self.magic = description["magic"]
        self.address_width = description["address_width"]
        self.commit_register = description["commit_register"]
        self.blocks = description["blocks"]
        self.registers = {}
        for block in description["blocks"]:
            for reg in block["registers"]:
                fields = tuple(Field(f["name"], f["offset"], f["width"], dict(f["enum"]), f["doc"])
                               for f in reg["fields"])
                self.registers[reg["path"]] = Register(
                    reg["path"], block["name"], reg["name"], reg["address"], reg["access"], reg["width"],
                    reg["reset"], reg["commit"], reg["doc"], fields)
        self.by_word_address = {}
        for reg in self.registers.values():
            for index, address in enumerate(reg.word_addresses):
                self.by_word_address[address] = (reg, index)
        self.commit_groups = {f.name: f for f in self.registers[self.commit_register].fields}
        self.hash = description_hash(description)

    @property
    def hash32(self):
        return int(self.hash[:8], 16)

    def __getitem__(self, path):
        try:
            return self.registers[path]
        except KeyError:
            raise KeyError(f"no register named {path!r} in the register map") from None

    def __iter__(self):
        return iter(self.registers.values())

    def group_members(self, group):
        return [reg for reg in self if reg.commit == group]


def description_hash(description):
    canonical = json.dumps(description, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _require_int(value, where, what):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RegmapError(f"{where}: {what} must be a non-negative integer, not {value!r}")
    return value


def _check_keys(mapping, allowed, where):
    if not isinstance(mapping, dict):
        raise RegmapError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    unknown = set(mapping) - allowed
    if unknown:
        raise RegmapError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")


def _parse_fields(reg_source, width, where):
    fields = []
    used = 0
    for field_source in reg_source.get("fields", []):
        fwhere = f"{where}.{field_source.get('name', '?')}"
        _check_keys(field_source, _FIELD_KEYS, fwhere)
        offset = _require_int(field_source.get("offset"), fwhere, "offset")
        fwidth = _require_int(field_source.get("width", 1), fwhere, "width")
        if fwidth == 0 or offset + fwidth > width:
            raise RegmapError(f"{fwhere}: bits {offset}..{offset + fwidth - 1} do not fit a {width}-bit register")
        mask = ((1 << fwidth) - 1) << offset
        if used & mask:
            raise RegmapError(f"{fwhere}: overlaps another field")
        used |= mask
        enum = field_source.get("enum", {}) or {}
        for label, value in enum.items():
            if _require_int(value, fwhere, f"enum value {label}") >= 1 << fwidth:
                raise RegmapError(f"{fwhere}: enum value {label}={value} does not fit {fwidth} bits")
        fields.append({"name": field_source["name"], "offset": offset, "width": fwidth, "enum": dict(enum),
                       "doc": str(field_source.get("doc", ""))})
    return fields


def parse_regmap(source):
    """Resolve and validate a register map given as the parsed YAML mapping.

    Returns the plain-data description (JSON-compatible) that :class:`RegisterMap` wraps.
    Raises :class:`RegmapError` naming the offending block, register or field.
    """
    _check_keys(source, _TOP_KEYS, "register map")
    address_width = _require_int(source.get("address_width"), "register map", "address_width")
    if source.get("data_width") != 32:
        raise RegmapError("register map: data_width must be 32")
    description = {
        "name": str(source["name"]),
        "version": _require_int(source.get("version"), "register map", "version"),
        "magic": _require_int(source.get("magic"), "register map", "magic"),
        "address_width": address_width,
        "commit_register": source.get("commit_register"),
        "blocks": [],
    }
    occupied = {}
    for block_source in source.get("blocks", []):
        bwhere = f"block {block_source.get('name', '?')}"
        _check_keys(block_source, _BLOCK_KEYS, bwhere)
        instances = block_source.get("instances")
        base = _require_int(block_source.get("base"), bwhere, "base")
        names = [block_source["name"]] if instances is None else \
            [f"{block_source['name']}_{suffix}" for suffix in instances]
        stride = _require_int(block_source.get("stride", 0), bwhere, "stride")
        if instances is not None and stride == 0:
            raise RegmapError(f"{bwhere}: a block with instances needs a stride")
        for index, block_name in enumerate(names):
            block_base = base + index * stride
            block = {"name": block_name, "base": block_base, "doc": str(block_source.get("doc", "")),
                     "registers": []}
            address = block_base
            for reg_source in block_source.get("registers", []):
                where = f"{block_name}.{reg_source.get('name', '?')}"
                _check_keys(reg_source, _REGISTER_KEYS, where)
                access = reg_source.get("access")
                if access not in ACCESS_KINDS:
                    raise RegmapError(f"{where}: access must be one of {', '.join(ACCESS_KINDS)}, not {access!r}")
                width = _require_int(reg_source.get("width", 32), where, "width")
                if width == 0:
                    raise RegmapError(f"{where}: width must be at least 1")
                reset = _require_int(reg_source.get("reset", 0), where, "reset")
                if reset >= 1 << width:
                    raise RegmapError(f"{where}: reset value {reset:#x} does not fit {width} bits")
                commit = reg_source.get("commit")
                if commit is not None and access != "rw":
                    raise RegmapError(f"{where}: only rw registers can belong to a commit group")
                if width > 32 and access in ("w1c", "strobe"):
                    raise RegmapError(f"{where}: {access} registers are at most 32 bits wide")
                words = (width + 31) // 32
                for word in range(words):
                    word_address = address + WORD_BYTES * word
                    if word_address in occupied:
                        raise RegmapError(f"{where}: address {word_address:#06x} already used by "
                                          f"{occupied[word_address]}")
                    if word_address >= 1 << address_width:
                        raise RegmapError(f"{where}: address {word_address:#x} outside the "
                                          f"{address_width}-bit address space")
                    occupied[word_address] = where
                block["registers"].append({
                    "path": where, "name": reg_source["name"], "address": address, "access": access,
                    "width": width, "reset": reset, "commit": commit, "doc": str(reg_source.get("doc", "")),
                    "fields": _parse_fields(reg_source, width, where),
                })
                address += WORD_BYTES * words
            description["blocks"].append(block)
    registers = {r["path"]: r for b in description["blocks"] for r in b["registers"]}
    commit_register = registers.get(description["commit_register"])
    if commit_register is None or commit_register["access"] != "strobe":
        raise RegmapError(f"commit_register {description['commit_register']!r} must name a strobe register")
    groups = {f["name"] for f in commit_register["fields"]}
    for reg in registers.values():
        if reg["commit"] is not None and reg["commit"] not in groups:
            raise RegmapError(f"{reg['path']}: commit group {reg['commit']!r} is not a field of "
                              f"{description['commit_register']}")
    for required in ("id.magic", "id.version", "id.map_hash"):
        if required not in registers:
            raise RegmapError(f"the map needs an {required} register")
    return description


def load_packaged_regmap():
    """The register map the host was built with (the generated ``t2t.regmap_data``)."""
    from .regmap_data import DESCRIPTION
    return RegisterMap(DESCRIPTION)
