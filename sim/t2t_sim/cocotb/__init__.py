"""The cocotb testbench library: a base testbench for the top level and the pytest launcher for cocotb tests."""

from .runner import run_cocotb_test
from .testbench import TopTestbench

__all__ = ["TopTestbench", "run_cocotb_test"]
