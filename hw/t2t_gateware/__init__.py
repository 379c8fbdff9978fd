"""Tick2Trade gateware (Amaranth HDL 0.5): ingest, book, strategy, risk gate, order encoder, register bank."""
