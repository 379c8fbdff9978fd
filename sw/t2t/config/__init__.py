"""The trader's configuration files: thresholds and risk limits, validated whole before anything reaches a card.

A file is refused whole when any part of it is wrong, with every problem named as ``FILE:LINE: FIELD: what``.
Prices are read from the YAML text itself as exact decimals and turned into Price(4) ticks: YAML would make
``101.35`` a binary float, which has no place on the trading path. See :mod:`.schema` for the reader and
:mod:`.trading` for the two file kinds.
"""

from .schema import ConfigError, Problem
from .trading import RiskConfig, SymbolThresholds, ThresholdsConfig, load_risk, load_thresholds

__all__ = ["ConfigError", "Problem", "ThresholdsConfig", "SymbolThresholds", "RiskConfig", "load_thresholds",
           "load_risk"]
