"""The gateware builds with the open ECP5 tools: every pipeline block places and routes out of context on the
LFE5UM5G-45F and keeps at least its Fmax floor, and the whole top level synthesizes and fits an ECP5-5G.

What this does not show yet: the whole design placed, routed and timed on a board. With 8 symbol slots it needs
about 55k LUT4/carry cells, more than the Versa's LFE5UM5G-45F holds (44k), and on the ECPIX-5's LFE5UM5G-85F
nextpnr's router did not converge within 15 minutes. The floors below are today's measured Fmax (three seeds, see
the README) less a margin for seed noise; they guard against regressions. Several are under the 156.25 MHz
10GbE datapath clock, which the whole design does not reach yet: the book builder (108 MHz routed, seed 1, with
its default of 4 ways and no depth ladder) is the slowest. The depth ladder alone (``DepthLadder``, 8 slots, 512
ticks) reaches 158-181 MHz (seeds 1-3), but the book builder with it (``ladder_ticks=512``) does not get through
yosys today (its ABC step exits with status 1 and no message), so it is not built here.
"""

import importlib

import pytest

from t2t_gateware.ooc import synthesize_block, time_block
from t2t_gateware.top import Tick2TradeTop

#: (module:class, constructor arguments, Fmax floor in MHz out of context on LFE5UM5G-45F)
BLOCKS = [
    ("t2t_gateware.net.udp_receiver:UdpReceiver", {"feed_id": 0}, 150),
    ("t2t_gateware.feed.ingest:FeedIngest", {}, 120),
    ("t2t_gateware.book.builder:BookBuilder", {"symbols": 8}, 100),
    ("t2t_gateware.book.ladder:DepthLadder", {"symbols": 8, "ticks": 512}, 150),
    ("t2t_gateware.trade.strategy:ThresholdStrategy", {"symbols": 8}, 170),
    ("t2t_gateware.trade.strategy:PairStrategy", {"symbols": 8}, 150),
    ("t2t_gateware.trade.order_merge:OrderMerge", {}, 300),
    ("t2t_gateware.trade.risk_gate:RiskGate", {"symbols": 8}, 170),
    ("t2t_gateware.trade.ouch_encoder:OuchEncoder", {}, 200),
]

#: LUT4 of the LFE5UM5G-85F (the ECPIX-5's ECP5-5G) and of the LFE5UM5G-45F (the Versa's).
LUTS_85F, LUTS_45F = 83_640, 43_848


def _block(path, kwargs):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)(**kwargs)


@pytest.mark.parametrize("path, kwargs, floor", BLOCKS, ids=[b[0].split(":")[1] for b in BLOCKS])
def test_block_places_and_routes_and_keeps_its_fmax_floor(path, kwargs, floor, tmp_path):
    result = time_block(_block(path, kwargs), work_dir=tmp_path)
    print(f"{path}: {result['fmax_mhz']} MHz, {result['utilization']}")
    assert result["fmax_mhz"] >= floor, f"{path}: {result['fmax_mhz']} MHz, below its floor of {floor} MHz"


def test_whole_top_level_synthesizes_and_fits_an_ecp5_85(tmp_path):
    cells = synthesize_block(Tick2TradeTop(), work_dir=tmp_path)
    # A CCU2C carry cell and a distributed-RAM cell each take two LUT positions of a slice.
    luts = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0) + 2 * cells.get("TRELLIS_DPR16X4", 0)
    print(f"top level: {luts} LUT positions ({cells.get('TRELLIS_FF', 0)} FF, {cells.get('DP16KD', 0)} DP16KD)")
    assert cells.get("TRELLIS_FF", 0) > 10_000, "the design must not be optimized away"
    assert luts < LUTS_85F, f"{luts} LUT positions do not fit the LFE5UM5G-85F ({LUTS_85F})"
    assert cells.get("DP16KD", 0) <= 208
