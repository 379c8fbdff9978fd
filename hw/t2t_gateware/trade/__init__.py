"""Trading: the strategy, the pre-trade risk gate and the OUCH order encoder, in that order on the order path."""
