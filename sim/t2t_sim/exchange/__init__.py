"""Exchange simulator closing the loop of a replay: the card's OUCH 4.2 orders in, Accepted / Executed / Canceled /
Rejected out, matched against the book of the same ITCH replay (see :mod:`.simulator`)."""

from .simulator import (CANCEL_REASONS, IOC, MATCH_NUMBER_BASE, REJECT_REASONS, ExchangeSimulator, Reply,
                        RestingOrder, reason_text)

__all__ = ["ExchangeSimulator", "Reply", "RestingOrder", "REJECT_REASONS", "CANCEL_REASONS", "reason_text", "IOC",
           "MATCH_NUMBER_BASE"]
