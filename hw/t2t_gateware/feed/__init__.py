"""Market-data ingest: MoldUDP64 A/B arbitration, ITCH 5.0 message splitting and decoding, symbol filtering.

Data flows ``MoldUdp64PacketBuffer`` (one per feed) -> ``MoldUdp64Arbiter`` -> ``MessageSplitter`` ->
``ItchDecoder`` -> ``SymbolFilter``; ``FeedIngest`` wires them together.
"""
