"""The order book layer: normalized ITCH events in, best bid and offer updates out."""

from .builder import COUNTERS, BookBuilder

__all__ = ["COUNTERS", "BookBuilder"]
