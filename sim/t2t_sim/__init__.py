"""Tick2Trade simulation: the virtual card (Verilated top level) and the cocotb testbench library."""
