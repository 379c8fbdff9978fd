"""Launch cocotb test modules from pytest against the Verilated top level, through ``cocotb_tools.runner``."""

import fcntl
import hashlib
import os
import pathlib

from ..build import TOP_NAME, cache_dir, top_verilog, verilator_settings

__all__ = ["run_cocotb_test"]

BUILD_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast", "--x-initial", "fast"]


def run_cocotb_test(test_module, test_dir, testcase=None):
    """Build the top level (cached by the hash of its Verilog) and run ``test_module``'s cocotb tests.

    Returns ``(tests, failed)`` from the results file; a build failure raises.
    """
    from cocotb_tools.runner import get_results, get_runner

    verilog = top_verilog()
    # Verilator builds are slow on two cores: one build folder per Verilog content, reused across runs.
    digest = hashlib.sha256(verilog.read_bytes()).hexdigest()[:16]
    build_dir = cache_dir() / f"cocotb-{digest}"
    runner = get_runner("verilator")
    saved = {name: os.environ.get(name) for name in verilator_settings()}
    os.environ.update(verilator_settings())
    try:
        # Several cocotb test files share the build; pytest workers running them at once take turns building it.
        with open(cache_dir() / f"cocotb-{digest}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            runner.build(sources=[verilog], hdl_toplevel=TOP_NAME, build_dir=build_dir, build_args=BUILD_ARGS)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    results = runner.test(hdl_toplevel=TOP_NAME, test_module=test_module, test_dir=pathlib.Path(test_dir),
                          build_dir=build_dir, testcase=testcase,
                          results_xml=str(pathlib.Path(build_dir) / f"results-{test_module}.xml"))
    return get_results(results)
