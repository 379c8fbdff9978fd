"""Trading on the host: order entry and the reference models of the gateware's order path.

:mod:`.ouch`: OUCH 4.2 messages and their SoupBinTCP 3.00 packets; the gateware's order encoder is checked with the
decoders, the exchange simulator replies with the encoders. :mod:`.reference`: models of the threshold strategy and
the pre-trade risk gate.
"""
