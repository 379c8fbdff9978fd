"""Replay report: the CSVs hold the orders, fills, positions and P&L exactly; the plots are PNG files; the summary
says what happened; without matplotlib the host still imports and the error says how to get the plots."""

import csv
import struct
import subprocess
import sys

import pytest

from t2t.positions import PositionLimits, PositionTracker
from t2t.report import CSV_FILES, PLOT_FILES, ReplayData, summary_text, write_csvs, write_report
from t2t.trade import ouch

from test_positions_tracker import accepted, canceled, enter, executed

T0 = 34_200_000_000_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def day():
    """Buy 300 AAPL in two fills, sell 100 at a profit, a MSFT IOC half filled then canceled, a rejected order."""
    kills = []
    tracker = PositionTracker(PositionLimits.in_dollars(daily_loss=1_000_000), kill=lambda: kills.append(1),
                              var_bucket_ns=1_000_000)
    for step in range(20):
        tracker.mark("AAPL", 1_000_000 + 100 * (step % 5), 1_000_100 + 100 * (step % 5), T0 + step * 1_000_000)
        tracker.mark("MSFT", 2_000_000 - 100 * (step % 3), 2_000_100 - 100 * (step % 3), T0 + step * 1_000_000)
    buy = enter("BUY00000000001", "B", 300, 1_000_100)
    tracker.order_sent(buy, T0 + 20_000_000)
    tracker.on_message(accepted(buy, T0 + 20_000_100))
    tracker.on_message(executed(buy.token, 100, 1_000_000, 1, T0 + 20_000_100))
    tracker.on_message(executed(buy.token, 200, 1_000_100, 2, T0 + 20_000_100))
    sell = enter("SELL0000000001", "S", 100, 1_010_000)
    tracker.order_sent(sell, T0 + 30_000_000)
    tracker.on_message(accepted(sell, T0 + 30_000_100))
    tracker.on_message(executed(sell.token, 100, 1_010_000, 3, T0 + 30_000_100))
    short = enter("SHORT000000001", "T", 200, 2_000_000, "MSFT")
    tracker.order_sent(short, T0 + 40_000_000)
    tracker.on_message(accepted(short, T0 + 40_000_100))
    tracker.on_message(executed(short.token, 100, 2_000_000, 4, T0 + 40_000_100))
    tracker.on_message(canceled(short.token, 100, T0 + 40_000_100))
    rejected = enter("REJ00000000001", "B", 10, 1_000_100)
    tracker.order_sent(rejected, T0 + 50_000_000)
    tracker.on_message(ouch.Rejected(timestamp=T0 + 50_000_100, token=rejected.token, reason="H"))
    tracker.mark("AAPL", 1_005_000, 1_005_100, T0 + 60_000_000)
    tracker.mark("MSFT", 1_990_000, 1_990_100, T0 + 60_000_000)
    return tracker


def read(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_csvs_hold_the_day_exactly(tmp_path):
    tracker = day()
    data = ReplayData.from_tracker(tracker, [100, 101, 101, 250])
    written = write_csvs(data, tmp_path / "report")
    assert sorted(written) == sorted(CSV_FILES)

    orders = read(written["orders.csv"])
    assert [(row["token"], row["symbol"], row["side"], row["shares"], row["price"], row["state"], row["filled"],
             row["canceled"], row["average_fill_price"], row["reject_reason"]) for row in orders] == [
        ("BUY00000000001", "AAPL", "B", "300", "100.0100", "FILLED", "300", "0", "100.006667", ""),
        ("SELL0000000001", "AAPL", "S", "100", "101.0000", "FILLED", "100", "0", "101.000000", ""),
        ("SHORT000000001", "MSFT", "T", "200", "200.0000", "CANCELED", "100", "100", "200.000000", ""),
        ("REJ00000000001", "AAPL", "B", "10", "100.0100", "REJECTED", "0", "0", "", "H")]
    assert orders[0]["sent_time"] == "09:30:00.020000000"

    fills = read(written["fills.csv"])
    assert [(row["token"], row["shares"], row["price"], row["match_number"], row["net_shares"],
             row["symbol_realized"]) for row in fills] == [
        ("BUY00000000001", "100", "100.0000", "1", "100", "0.0000"),
        ("BUY00000000001", "200", "100.0100", "2", "300", "0.0000"),
        # Cost 30,002.00 for 300 (average 100.006667): 100 sold at 101.00 release 10,000.6666 -> floor.
        ("SELL0000000001", "100", "101.0000", "3", "200", "99.3334"),
        ("SHORT000000001", "100", "200.0000", "4", "-100", "0.0000")]
    assert fills[0]["timestamp_ns"] == str(T0 + 20_000_100)

    positions = read(written["positions.csv"])
    assert [(row["symbol"], row["net_shares"], row["average_price"]) for row in positions] == [
        ("AAPL", "100", "100.000000"), ("AAPL", "300", "100.006667"), ("AAPL", "200", "100.006667"),
        ("MSFT", "-100", "200.000000")]

    pnl = read(written["pnl.csv"])
    # One sample per fill, one on the AAPL mark after them, and the tracker's P&L at its latest marks.
    assert len(pnl) == 6
    last = pnl[-1]
    # AAPL: 200 long, cost 20,001.3334, bid 100.50 -> +98.6666; MSFT: 100 short at 200.00, ask 199.01 -> +99.00.
    assert (last["realized"], last["unrealized"], last["total"]) == ("99.3334", "197.6666", "297.0000")
    assert (last["gross_exposure"], last["net_exposure"]) == ("40001.0000", "199.0000")


def test_report_writes_valid_pngs_and_a_summary(tmp_path):
    pytest.importorskip("matplotlib")
    tracker = day()
    data = ReplayData.from_tracker(tracker, [100, 101, 101, 250, 99])
    written = write_report(data, tmp_path)
    assert sorted(written) == sorted(CSV_FILES + PLOT_FILES)
    for name in PLOT_FILES:
        raw = written[name].read_bytes()
        assert raw.startswith(PNG_SIGNATURE), name
        length, chunk = struct.unpack(">I4s", raw[8:16])
        width, height = struct.unpack(">II", raw[16:24])
        assert (length, chunk) == (13, b"IHDR") and width > 100 and height > 100
        assert raw.endswith(b"IEND\xaeB`\x82")
    text = summary_text(data)
    assert "orders: 4 (CANCELED 1, FILLED 2, REJECTED 1)" in text
    assert "fills: 4 (500 shares" in text
    assert "P&L: realized $99.33, unrealized $197.67, total $297.00" in text
    assert "positions: AAPL +200, MSFT -100" in text
    assert "5 orders, min 99 / median 101 / p99 101 / max 250 cycles (median 646.4 ns" in text
    assert "VaR 99%" in text and "mode: NORMAL" in text


def test_empty_replay_reports_without_failing(tmp_path):
    pytest.importorskip("matplotlib")
    data = ReplayData.from_tracker(PositionTracker())
    written = write_report(data, tmp_path)
    assert all(path.stat().st_size > 0 for path in written.values())
    assert read(written["fills.csv"]) == []
    text = summary_text(data)
    assert "orders: 0" in text and "positions: flat" in text and "latency: no samples" in text


PROBE = """
import importlib.abc, sys, tempfile
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'matplotlib':
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Refuse())
import t2t.positions, t2t.report
from t2t.report import ReplayData, ReportDependencyError, write_csvs, write_report
data = ReplayData()
folder = tempfile.mkdtemp()
print(sorted(write_csvs(data, folder)))
try:
    write_report(data, folder)
except ReportDependencyError as error:
    print('ERROR', error)
"""


def test_host_without_matplotlib_imports_and_says_how_to_get_plots():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "['fills.csv', 'orders.csv', 'pnl.csv', 'positions.csv']" in result.stdout
    assert "ERROR" in result.stdout and "pip install 'tick2trade[report]'" in result.stdout
