"""`make demo`: the main job on the virtual card, as far as the pipeline goes today.

Generates a seeded ITCH 5.0 session, packs it into MoldUDP64 packets in Ethernet/IPv4/UDP frames sent on both
feeds (A and B carry the same packets, as an exchange sends them), replays them into the virtual card at line
rate and reads the card's counters back by name.
"""

import sys
import time

from t2t.card import Card
from t2t.feed import itch
from t2t.feed.generator import generate_session
from t2t.feed.moldudp64 import encode_packet, pack_messages
from t2t.feed.netframe import build_udp_frame
from t2t_sim.virtual_card import VirtualCard

__all__ = ["main"]

DEMO_SEED = 2026
DEMO_MESSAGES = 50_000
SESSION = "DEMO000001"
INTER_FRAME_GAP_CYCLES = 2  # preamble + IFG of 10GbE, rounded to 64-bit beats


def main():
    started = time.perf_counter()
    print("Tick2Trade demo on the virtual card (Verilated gateware, built once and cached)")
    card = Card(VirtualCard())
    print(f"card: register map version {card.read('id.version')}, hash {card.read('id.map_hash'):#010x} "
          f"(matches the host)")
    vc = card.transport
    feeds = {0: (card.read("feed.dst_ip_a"), card.read("feed.dst_port_a")),
             1: (card.read("feed.dst_ip_b"), card.read("feed.dst_port_b"))}

    counts = {}
    raw = []
    for message in generate_session(seed=DEMO_SEED, messages=DEMO_MESSAGES):
        counts[message.type] = counts.get(message.type, 0) + 1
        raw.append(itch.encode(message))
    frames = payload_bytes = 0
    for packet in pack_messages(raw, SESSION):
        payload = encode_packet(packet)
        for port, (ip, udp_port) in feeds.items():
            ip_text = ".".join(str((ip >> shift) & 0xFF) for shift in (24, 16, 8, 0))
            frame = build_udp_frame(payload, dst_ip=ip_text, dst_port=udp_port)
            vc.push_frame(port, frame, gap=INTER_FRAME_GAP_CYCLES)
            frames += 1
            payload_bytes += len(frame)
    cycles = vc.run_until_rx_drained()
    mix = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:8])
    print(f"session: {DEMO_MESSAGES} ITCH messages (seed {DEMO_SEED}; {mix}, ...)")
    print(f"replayed {frames} frames ({payload_bytes} bytes) on feeds A and B in {cycles} cycles "
          f"({cycles / 156.25e6 * 1e3:.2f} ms of card time at 156.25 MHz)")
    drops = ("bad_fcs", "not_ipv4", "truncated", "bad_ip_checksum", "fragments", "not_udp", "wrong_port")
    for port in ("a", "b"):
        dropped = ", ".join(f"{name} {card.read(f'rx_{port}.{name}')}" for name in drops)
        print(f"  feed {port.upper()}: frames {card.read(f'rx_{port}.frames')}, accepted "
              f"{card.read(f'rx_{port}.accepted')} ({card.read(f'rx_{port}.payload_bytes')} MoldUDP64 bytes); "
              f"{dropped}")
    print(f"status: {card.decode('control.status', card.read('control.status'))}")
    print("not yet in the card's top level: MoldUDP64/ITCH decoding, book, strategy, risk gate and orders (built and "
          "verified as blocks; see README)")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
