"""The network layers between a MAC and the feed decoder: Ethernet II / 802.1Q, IPv4 and UDP on receive."""

from .udp_receiver import UdpReceiver

__all__ = ["UdpReceiver"]
