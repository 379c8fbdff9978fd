"""`make demo`: the main job on the virtual card.

Replays the bundled session (samples/demo_session.itch.gz: a generated ITCH 5.0 day on eight symbols) through the
cycle-accurate gateware on both feeds (A and B carry the same MoldUDP64 packets, as an exchange sends them), with
the sample strategy (configs/strategy.yaml: thresholds.yaml and risk.yaml) loaded through the card's registers and
the strategy armed. The card's OUCH orders go to the exchange simulator, whose fills update the host's positions and
the card's risk gate. Prints orders sent, rejects by reason, counters, positions and the tick-to-trade latency
histogram, all read back from the card by register name.
"""

import pathlib
import sys
import time

from t2t import trading
from t2t.card import Card
from t2t.config.strategy import load_strategy

from .closed_loop import CYCLE_NS_DENOMINATOR, CYCLE_NS_NUMERATOR, closed_loop_for, write_loop_report
from .replay import Replay
from .virtual_card import VirtualCard

__all__ = ["main"]

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "demo_session.itch.gz"
STRATEGY = ROOT / "configs" / "strategy.yaml"
REPORT = ROOT / "build" / "demo_report"


def _histogram(figures, width=40):
    rows = [(cycles, count) for cycles, count in enumerate(figures.histogram) if count]
    top = max(count for _, count in rows)
    last = len(figures.histogram) - 1
    lines = []
    for cycles, count in rows:
        label = f"{cycles:>3}{'+' if cycles == last else ' '}"
        lines.append(f"  {label} cycles ({cycles * CYCLE_NS_NUMERATOR / CYCLE_NS_DENOMINATOR:5.1f} ns) "
                     f"{'#' * max(1, count * width // top)} {count}")
    return "\n".join(lines)


def main():
    started = time.perf_counter()
    print("Tick2Trade demo on the virtual card (Verilated gateware, built once and cached)")
    strategy = load_strategy(STRATEGY)
    print(f"strategy: {STRATEGY.relative_to(ROOT)} (thresholds for {', '.join(strategy.thresholds.symbols)}; "
          f"risk limits from {strategy.risk_path.name}), validated whole before anything reached the card")
    card = Card(VirtualCard())
    print(f"card: register map version {card.read('id.version')}, hash {card.read('id.map_hash'):#010x} "
          f"(matches the host), {trading.slot_capacity(card)} symbol slots")
    loop = closed_loop_for(strategy)
    replay = Replay(symbols=strategy.thresholds.traded_symbols, thresholds=strategy.thresholds,
                    risk=strategy.risk, ab=True, card=card, loop=loop)
    result = replay.run(SAMPLE)
    print(f"replayed {SAMPLE.name}: {result.messages} ITCH messages in {result.frames} frames on feeds A and B, "
          f"{result.cycles} cycles ({result.cycles / 156.25e3:.2f} ms of card time at 156.25 MHz), "
          f"{result.seconds:.1f} s of wall clock")
    print("feed:   " + ", ".join(f"{name.split('.')[-1]} {card.read(name)}" for name in (
        "rx_a.accepted", "rx_b.accepted", "moldudp64.accepted_packets", "moldudp64.duplicates", "moldudp64.gaps",
        "itch.events", "book.bbo_updates")))
    print("slots:  " + ", ".join(f"{slot} {symbol} (locate {locate})" for slot, symbol, locate in
                                 result.slot_map.entries))
    print("strategy: " + ", ".join(f"{name} {card.read(f'strategy.{name}')}" for name in (
        "signals", "suppressed_cooldown", "suppressed_degraded", "suppressed_halted", "suppressed_crossed")))
    print(f"orders sent: {card.read('orders.sent')} (risk gate accepted {card.read('risk.accepted')})")
    for order in result.orders[:5]:
        print(f"  {order.token} {order.side} {order.shares:>4} {order.symbol:<5} @ {order.price / 10_000:.4f}  "
              f"trigger {order.timestamp_ns} ns, {order.latency_cycles} cycles")
    if len(result.orders) > 5:
        print(f"  ... {len(result.orders) - 5} more")
    print("rejects by reason (card counters): " + ", ".join(
        f"{reason} {card.read(f'risk.rejected_{reason}')}" for reason in trading.REJECT_REASONS[1:]
        if card.read(f"risk.rejected_{reason}")) or "rejects: none")
    figures = result.latency
    if figures.count:
        print(f"tick-to-trade latency over {figures.count} orders (RX beat of the trigger's last byte -> first TX "
              f"beat): min {figures.min} / median {figures.median()} / max {figures.max} cycles")
        print(_histogram(figures))
    files, summary = write_loop_report(loop, REPORT)
    print("exchange simulator and host positions:")
    print("  " + summary.replace("\n", "\n  "))
    print(f"report: {REPORT.relative_to(ROOT)}/ ({', '.join(sorted(path.name for path in files.values()))})")
    print(f"done in {time.perf_counter() - started:.1f} s")
    card.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
