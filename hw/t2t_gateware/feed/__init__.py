"""Market-data ingest: MoldUDP64 A/B arbitration, ITCH 5.0 message splitting and decoding, symbol filtering.

Each feed has a ``MoldUdp64PacketBuffer`` and a ``MessageSplitter`` (framing, checking and decoding, reading the
``SymbolFilter`` table); the ``MoldUdp64Arbiter`` decides which feed's packets are delivered, framed as they arrive
(cut-through) or replayed from their buffer. ``FeedIngest`` wires them together.
"""
