"""The strategy file: which thresholds file and which risk file make up one trading setup.

    # configs/strategy.yaml
    thresholds: thresholds.yaml   # paths relative to this file
    risk: risk.yaml
    host_limits:                  # optional: the host's post-trade limits (a breach kills the card)
      daily_loss: 2500.00         # dollars
      max_gross_exposure: 250000.00

Both files are validated whole (:mod:`t2t.config.trading`) before anything reaches a card; a problem in either is
reported with its own file, line and field.
"""

import pathlib
from dataclasses import dataclass

from .schema import ConfigError, Reader, compose_file
from .trading import RiskConfig, ThresholdsConfig, load_risk, load_thresholds

__all__ = ["StrategyConfig", "load_strategy"]


@dataclass(frozen=True)
class StrategyConfig:
    thresholds: ThresholdsConfig
    risk: RiskConfig
    thresholds_path: pathlib.Path
    risk_path: pathlib.Path
    daily_loss_ticks: int = 0           # Price(4) ticks x shares; 0: no limit
    max_gross_exposure_ticks: int = 0


def load_strategy(path, known_symbols=None):
    """Read a strategy file and the two files it names; raise :class:`ConfigError` listing every problem."""
    path = pathlib.Path(path)
    reader = Reader(path)
    root = reader.mapping(compose_file(path), "", allowed={"thresholds", "risk", "host_limits"},
                          required=("thresholds", "risk"))
    host = {"daily_loss": 0, "max_gross_exposure": 0}
    if "host_limits" in root:
        entries = reader.mapping(root["host_limits"][1], "host_limits", allowed=set(host))
        for name in host:
            if name in entries:
                # Dollars, exact to Price(4) (a price has the same grammar), times one share: ticks x shares.
                value = reader.price(entries[name][1], f"host_limits.{name}", allow_zero=True, maximum=2**62)
                host[name] = value or 0
    paths = {}
    for name in ("thresholds", "risk"):
        if name in root:
            text = reader.text(root[name][1], name)
            if text is not None:
                target = (path.parent / text) if not pathlib.Path(text).is_absolute() else pathlib.Path(text)
                if not target.is_file():
                    reader.problem(root[name][1], name, f"no such file: {target}")
                else:
                    paths[name] = target
    reader.check()
    problems = []
    loaded = {}
    for name, loader in (("thresholds", load_thresholds), ("risk", load_risk)):
        try:
            loaded[name] = loader(paths[name], known_symbols)
        except ConfigError as error:
            problems.extend(error.problems)
    if problems:
        raise ConfigError(problems)
    return StrategyConfig(loaded["thresholds"], loaded["risk"], paths["thresholds"], paths["risk"],
                          host["daily_loss"], host["max_gross_exposure"])
