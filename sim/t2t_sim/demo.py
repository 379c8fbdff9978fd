"""`make demo`: the main job on the virtual card, as far as the pipeline goes today."""

import sys
import time

from t2t.card import Card
from t2t_sim.virtual_card import VirtualCard

__all__ = ["main"]


def main():
    started = time.perf_counter()
    print("Tick2Trade demo on the virtual card (Verilated gateware, built once and cached)")
    card = Card(VirtualCard())
    print(f"card: map version {card.read('id.version')}, hash {card.read('id.map_hash'):#010x} (matches the host)")
    vc = card.transport
    frames = 10_000
    for index in range(frames):
        vc.push_frame(index % 2, bytes(64 + index % 1400), error=(index % 997 == 0))
    cycles = vc.run_until_rx_drained()
    print(f"pushed {frames} frames on feeds A and B in {cycles} simulated cycles")
    for port in ("a", "b"):
        print(f"  rx_{port}: frames {card.read(f'rx_{port}.frames')}, bytes {card.read(f'rx_{port}.bytes')}, "
              f"bad FCS {card.read(f'rx_{port}.bad_fcs')}")
    print(f"status: {card.decode('control.status', card.read('control.status'))}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
