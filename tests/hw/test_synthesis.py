"""The whole top level synthesizes, places and routes for the ECP5-5G Versa board at the 10GbE core clock."""

import json

from t2t_gateware.build import build_board


def test_top_level_builds_for_versa_ecp5_5g_and_meets_the_core_clock(tmp_path):
    report = build_board("versa_ecp5_5g", output=tmp_path)
    print(json.dumps({k: report[k] for k in ("fmax_mhz", "core_clock_constraint_mhz", "utilization")}))
    assert (tmp_path / "build" / "t2t.bit").stat().st_size > 100_000
    assert report["utilization"]["ff"]["used"] > 500, "the harness must keep the design from being optimized away"
    assert report["timing_met"], f"Fmax {report['fmax_mhz']} MHz misses {report['core_clock_constraint_mhz']} MHz"
