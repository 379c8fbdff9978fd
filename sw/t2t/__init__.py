"""Tick2Trade host: card driver, register map accessors, reference models and the t2t CLI.

Imports without Amaranth or Verilator: a trader's machine needs numpy, pyzmq and pyyaml only.
"""

__version__ = "0.1.0"
