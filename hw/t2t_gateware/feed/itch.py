"""ITCH 5.0 facts shared by the message splitter and the decoding table: the length table."""

__all__ = ["MESSAGE_LENGTHS", "MESSAGE_TYPES", "KEPT_MESSAGE_BYTES"]

#: Length in bytes (type byte included) of every ITCH 5.0 message type, from the specification.
MESSAGE_LENGTHS = {
    "S": 12, "R": 39, "H": 25, "Y": 20, "L": 26, "V": 35, "W": 12, "K": 28, "J": 35, "h": 21,
    "A": 36, "F": 40, "E": 31, "C": 36, "X": 23, "D": 19, "U": 35, "P": 44, "Q": 40, "B": 19,
    "I": 50, "N": 20, "O": 48,
}

#: The type letters in table order: index ``i`` of a per-type counter array counts ``MESSAGE_TYPES[i]``.
MESSAGE_TYPES = "".join(MESSAGE_LENGTHS)

#: Leading bytes of a message kept by the splitter: enough for every decoded field (P's match number ends at 43).
KEPT_MESSAGE_BYTES = 44

