"""pytest entry: the whole ingest's cocotb tests on the Verilated top level (generated A/B sessions with random
packing, skew, losses and noise, compared event by event with the reference models).

Each cocotb test runs in a simulator of its own: a reset does not clear the card's memories (the subscription
table, the book's order table), so each session starts from a card fresh from power-up.
"""

import pathlib

import pytest

from t2t_sim.cocotb import run_cocotb_test

TESTS = ("ab_feeds_with_losses_skew_and_noise_deliver_the_reference_events_in_order",
         "near_line_rate_large_packets_heartbeats_and_end_of_session_on_a_learned_session")


@pytest.mark.parametrize("testcase", TESTS)
def test_ingest_through_cocotb(testcase):
    tests, failed = run_cocotb_test("cocotb_ingest", pathlib.Path(__file__).parent, testcase=testcase)
    assert tests == 1
    assert failed == 0
