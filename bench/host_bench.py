"""Host-side benchmarks of the trader's path: loading thresholds onto the virtual card, locally and through the
card server, and the card server's register and telemetry rates. Each function returns its figure(s);
``bench/run.py`` calls them and records the numbers. ``python bench/host_bench.py`` prints them.
"""

import contextlib
import pathlib
import statistics
import tempfile
import time

from t2t import trading
from t2t.card import Card
from t2t.config import load_thresholds
from t2t_sim.virtual_card import VirtualCard

__all__ = ["threshold_load_256_ms_sim", "threshold_load_256_ms_remote", "remote_reg_ops_per_s",
           "telemetry_msgs_per_s", "thresholds_file", "threshold_load_writes"]

SYMBOLS = 256


def thresholds_file(path, count=SYMBOLS):
    """Write a thresholds file of ``count`` symbols (S000, S001, ...), each with both thresholds, and return the
    symbols."""
    symbols = [f"S{i:03d}" for i in range(count)]
    lines = ["symbols:"]
    for i, symbol in enumerate(symbols):
        buy = 10_000 + i * 100  # ticks: $1.0000 + i cents
        lines.append(f"  {symbol}: {{buy_below: {buy // 10_000}.{buy % 10_000:04d}, "
                     f"sell_above: {(buy + 500) // 10_000}.{(buy + 500) % 10_000:04d}, shares: {100 + i}, "
                     f"offset_ticks: 100, cooldown_cycles: 15625}}")
    pathlib.Path(path).write_text("\n".join(lines) + "\n")
    return symbols


def threshold_load_writes(config, capacity):
    """The register writes of loading every rule of ``config``, rule i into slot ``i mod capacity``, then one
    ``rules_commit``."""
    writes = []
    for index, rule in enumerate(config.symbols.values()):
        writes += trading.rule_writes(index % capacity, trading.rule_registers(rule))
    writes.append(("strategy.rules_commit", 1))
    return writes


def _load_ms(card, path, symbols, repeats):
    capacity = trading.slot_capacity(card)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        config = load_thresholds(path, set(symbols))
        trading.apply_writes(card, threshold_load_writes(config, capacity))
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def threshold_load_256_ms_sim(repeats=5):
    """Milliseconds to validate a 256-symbol thresholds file and load it onto the virtual card in-process (median
    of ``repeats``).

    The card has 8 symbol slots, so 256 rules cannot all be in force: this measures the register traffic 256 rules
    would take. The file is validated whole (every symbol known, exact prices), then rule i is staged into slot
    i mod 8 (rule_slot, the 7 rule registers, rule_write: 9 register writes) and one rules_commit applies them:
    2305 register writes. Each write is a simulated AXI4-Lite transaction, so the figure is dominated by the
    simulation, not by the host.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "thresholds.yaml"
        symbols = thresholds_file(path)
        with Card(VirtualCard()) as card:
            return _load_ms(card, path, symbols, repeats)


@contextlib.contextmanager
def _served(role="trader", audit_folder=None, **server_options):
    """A card server on a virtual card (CURVE on 127.0.0.1) and a client Card of ``role`` connected to it."""
    from t2t.server import AuditLog, CardServer, Client, new_keypair
    from t2t.transport.remote import RemoteCard

    server_keys, client_keys = new_keypair(), new_keypair()
    clients = {client_keys.public: Client("bench", role, client_keys.public)}
    audit = AuditLog(pathlib.Path(audit_folder) / "audit.jsonl") if audit_folder else None
    with Card(VirtualCard()) as card:
        server = CardServer(card, server_keys, clients, bind="tcp://127.0.0.1:*", audit=audit, **server_options)
        server.start()
        try:
            with Card(RemoteCard(server.endpoint, client_keys, server_keys.public, timeout_ms=60_000)) as remote:
                yield server, client_keys, server_keys, remote
        finally:
            server.stop()
            if audit is not None:
                audit.close()


def threshold_load_256_ms_remote(repeats=5):
    """Milliseconds to validate the same 256-symbol file and load it through ``t2t serve`` (ZeroMQ with CURVE on
    127.0.0.1, the server keeping its audit log) onto the virtual card it serves (median of ``repeats``).

    As for :func:`threshold_load_256_ms_sim`, 256 rules into 8 slots (rule i into slot i mod 8) and one commit:
    2305 register writes, sent as one request (by word address: about 33 KB of JSON) that the server carries out
    whole. The server reads each register before and after writing it and writes an audit entry per write (and one
    ``rules`` entry per slot at the commit), so this is the cost of the audited path.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "thresholds.yaml"
        symbols = thresholds_file(path)
        with _served("trader", audit_folder=folder) as (_, _, _, remote):
            return _load_ms(remote, path, symbols, repeats)


def remote_reg_ops_per_s(operations=5000):
    """32-bit register reads per second through `t2t serve` (ZeroMQ + CURVE on loopback) to the virtual card,
    and the same reads on the virtual card in-process, for the ratio: ``(remote, local)``."""
    with _served("monitor") as (_, _, _, remote):
        address = remote.regmap["id.scratch"].address
        started = time.perf_counter()
        for _ in range(operations):
            remote.transport.read32(address)
        remote_rate = operations / (time.perf_counter() - started)
    local = VirtualCard()
    started = time.perf_counter()
    for _ in range(operations):
        local.read32(address)
    local_rate = operations / (time.perf_counter() - started)
    local.close()
    return remote_rate, local_rate


def telemetry_msgs_per_s(messages=500):
    """Counter snapshots per second a subscriber receives from `t2t serve --telemetry` publishing flat out. Each
    snapshot reads every counter, the latency figures and histogram, the kill and arm state, and level 0 of each
    mapped slot's book (none mapped here) from the virtual card."""
    from t2t.server.telemetry import subscribe

    with _served("monitor", telemetry_bind="tcp://127.0.0.1:*", telemetry_interval_ms=0) as (
            server, client_keys, server_keys, _):
        received = 0
        for topic, _ in subscribe(server.telemetry_endpoint, client_keys, server_keys.public):
            if topic != b"counters":
                continue
            if received == 0:
                started = time.perf_counter()
            received += 1
            if received > messages:
                break
        return messages / (time.perf_counter() - started)


def main():
    remote_rate, local_rate = remote_reg_ops_per_s()
    for name, value in (("threshold_load_256_ms_sim", threshold_load_256_ms_sim()),
                        ("threshold_load_256_ms_remote", threshold_load_256_ms_remote()),
                        ("remote_reg_ops_per_s", remote_rate),
                        ("remote_vs_in_process_reg_ops_ratio", remote_rate / local_rate),
                        ("telemetry_msgs_per_s", telemetry_msgs_per_s())):
        print(f"{name:36} {value:.4g}")


if __name__ == "__main__":
    main()
