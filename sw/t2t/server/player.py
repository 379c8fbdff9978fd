"""Market data for a served virtual card: ``t2t serve --card sim --play FILE.itch``.

A virtual card has no network in front of it, so a session against it (a demo, a trader's rehearsal, the tests)
would never see an order. The player packs an ITCH BinaryFILE (``.itch`` or ``.itch.gz``) into MoldUDP64 packets
and pushes them, as UDP frames to the card's own feed A address and port, into the card the server serves, a few
packets at a time from the server's loop (so it never races a request), at ``rate`` messages per second (0: as
fast as the loop goes). With ``wait_armed`` it holds the feed until the strategy is armed. A second player that
continues the same session takes ``first_sequence=player.next_sequence`` (the card drops sequence numbers it has
seen as duplicates). What the card sends
(the TX stream and the BBO tap of the virtual card) is discarded: the order log keeps what it sent.
"""

import ipaddress
import time

from .. import trading
from ..feed.binaryfile import iter_raw_messages
from ..feed.moldudp64 import encode_packet, pack_messages
from ..feed.netframe import build_udp_frame

__all__ = ["FeedPlayer", "PlayerError"]

SESSION = "T2TPLAY"
INTER_FRAME_CYCLES = 3


class PlayerError(ValueError):
    """The card cannot be fed (not a virtual card)."""


class FeedPlayer:
    def __init__(self, path, rate=0, wait_armed=False, packets_per_step=16, first_sequence=1):
        self.path = str(path)
        self.rate = rate
        self.wait_armed = wait_armed
        self.packets_per_step = packets_per_step
        self.next_sequence = first_sequence
        self._packets = pack_messages(iter_raw_messages(self.path), SESSION, first_sequence=first_sequence)
        self._pending = None
        self.messages = 0
        self.packets = 0
        self.done = False
        self._started = None

    @staticmethod
    def check(card):
        for name in ("push_frame", "run_until_rx_drained", "pop_tx", "pop_bbo"):
            if not hasattr(card.transport, name):
                raise PlayerError(f"{card.transport.url}: only a virtual card (--card sim) can be fed from a file")

    def step(self, card):
        """Push the next few packets (as many as the rate allows); returns how many messages went in."""
        if self.done or (self.wait_armed and not trading.is_armed(card)):
            return 0
        now = time.monotonic()
        if self._started is None:
            self._started = now
        budget = self.packets_per_step
        destination = (str(ipaddress.IPv4Address(card.read("feed.dst_ip_a"))), card.read("feed.dst_port_a"))
        pushed = 0
        while budget > 0:
            if self.rate and self.messages >= (now - self._started) * self.rate:
                break
            packet = next(self._packets, None)
            if packet is None:
                self.done = True
                break
            frame = build_udp_frame(encode_packet(packet), dst_ip=destination[0], dst_port=destination[1])
            card.transport.push_frame(0, frame, gap=INTER_FRAME_CYCLES)
            self.messages += len(packet.messages)
            self.packets += 1
            self.next_sequence = packet.next_sequence
            pushed += len(packet.messages)
            budget -= 1
        if pushed or self.done:
            card.transport.run_until_rx_drained(extra_cycles=64)
            card.transport.pop_tx()
            card.transport.pop_bbo()
        return pushed
