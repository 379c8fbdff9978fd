"""The order book layer: normalized ITCH events in, best bid and offer updates out."""

from .builder import COUNTERS, LATENCY, REPLACE_LATENCY, BookBuilder

__all__ = ["COUNTERS", "LATENCY", "REPLACE_LATENCY", "BookBuilder"]
