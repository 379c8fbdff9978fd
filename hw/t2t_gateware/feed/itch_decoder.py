"""How aligned ITCH 5.0 messages map to normalized events: the field table of :class:`~.streams.ItchEvent`."""

from ..streams import EventKind

__all__ = ["DECODED_TYPES", "COMMON_FIELDS", "TYPE_FIELDS"]

#: Message types that become an :class:`ItchEvent`, and the kind each becomes.
DECODED_TYPES = {
    "A": EventKind.ADD, "F": EventKind.ADD, "E": EventKind.EXECUTE, "C": EventKind.EXECUTE_WITH_PRICE,
    "X": EventKind.CANCEL, "D": EventKind.DELETE, "U": EventKind.REPLACE, "P": EventKind.TRADE,
    "Q": EventKind.CROSS_TRADE, "S": EventKind.SYSTEM_EVENT, "H": EventKind.TRADING_ACTION,
}

#: Event fields every decoded type carries: field -> (offset, size) of the big-endian message bytes.
COMMON_FIELDS = {"locate": (1, 2), "timestamp": (5, 6)}

#: Event fields by type: field -> list of (letters, offset, size), big-endian message bytes. A field a type does not
#: list is 0. Not in the table: ``side`` (1 when byte 19 of A, F, P is 'S') and Q's ``shares``: its 8-byte share
#: count (bytes 11..18) saturates at 2**32 - 1.
TYPE_FIELDS = {
    "order_ref": [("AFECXDUP", 11, 8)],
    "new_order_ref": [("U", 19, 8)],
    "shares": [("AFP", 20, 4), ("ECX", 19, 4), ("U", 27, 4)],
    "price": [("AFPC", 32, 4), ("U", 31, 4), ("Q", 27, 4)],
    "match_number": [("EC", 23, 8), ("P", 36, 8), ("Q", 31, 8)],
    "code": [("S", 11, 1), ("H", 19, 1), ("Q", 39, 1)],
}

#: Types whose ``side`` is byte 19 ('S' sells).
SIDE_TYPES = "AFP"
