"""pytest entry: the register bank's cocotb tests on the Verilated top level."""

import pathlib

from t2t_sim.cocotb import run_cocotb_test


def test_register_bank_through_cocotb():
    tests, failed = run_cocotb_test("cocotb_register_bank", pathlib.Path(__file__).parent)
    assert tests == 6
    assert failed == 0
