"""pytest entry: the whole card end to end through cocotb on the Verilated top level (a long generated session
on both feeds; orders and rejects compared with the reference strategy and risk models, the TX stream decoded).

Each cocotb test runs in a simulator of its own: a reset does not clear the card's memories (the book's order
table, the strategy's rules, the risk gate's positions), so each session starts from a card fresh from power-up.
"""

import pathlib

import pytest

from t2t_sim.cocotb import run_cocotb_test

TESTS = ("orders_and_rejects_equal_the_reference_strategy_and_risk_models",
         "logs_drained_while_orders_flow_lose_no_entry")


@pytest.mark.parametrize("testcase", TESTS)
def test_end_to_end_through_cocotb(testcase):
    tests, failed = run_cocotb_test("cocotb_end_to_end", pathlib.Path(__file__).parent, testcase=testcase)
    assert tests == 1
    assert failed == 0
