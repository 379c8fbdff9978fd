"""Order books on the host: the reference book the gateware's book builder is checked against."""

from .reference import BboChange, Level, ReferenceBook, bbo_changes_of_binaryfile

__all__ = ["BboChange", "Level", "ReferenceBook", "bbo_changes_of_binaryfile"]
