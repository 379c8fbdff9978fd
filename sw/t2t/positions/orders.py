"""The life of one order on the host, as an explicit table of (state, event) -> state.

An order is NEW when sent; the exchange's execution reports move it on: Accepted (ACCEPT), Rejected (REJECT),
Executed (PARTIAL_FILL, or FILL when it leaves no open shares), Canceled (REDUCE when shares stay open, CANCEL when
none do). A pair missing from :data:`TRANSITIONS` is illegal: :func:`next_state` raises
:class:`IllegalTransition` and the report is refused. FILLED, CANCELED and REJECTED are final.
"""

import enum
from dataclasses import dataclass

__all__ = ["OrderState", "OrderEvent", "TRANSITIONS", "IllegalTransition", "next_state", "OrderRecord",
           "side_sign"]


class OrderState(enum.StrEnum):
    NEW = "NEW"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"

    @property
    def final(self):
        return self in (OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED)

    @property
    def working(self):
        """Shares may still trade (sent, not final)."""
        return not self.final


class OrderEvent(enum.StrEnum):
    ACCEPT = "ACCEPT"              # Accepted
    REJECT = "REJECT"              # Rejected
    PARTIAL_FILL = "PARTIAL_FILL"  # Executed, shares stay open
    FILL = "FILL"                  # Executed of every open share
    REDUCE = "REDUCE"              # Canceled of part of the open shares
    CANCEL = "CANCEL"              # Canceled of every open share


_S, _E = OrderState, OrderEvent

#: Every legal transition; anything else is refused.
TRANSITIONS = {
    (_S.NEW, _E.ACCEPT): _S.ACCEPTED,
    (_S.NEW, _E.REJECT): _S.REJECTED,
    (_S.ACCEPTED, _E.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.ACCEPTED, _E.FILL): _S.FILLED,
    (_S.ACCEPTED, _E.REDUCE): _S.ACCEPTED,
    (_S.ACCEPTED, _E.CANCEL): _S.CANCELED,
    (_S.PARTIALLY_FILLED, _E.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.PARTIALLY_FILLED, _E.FILL): _S.FILLED,
    (_S.PARTIALLY_FILLED, _E.REDUCE): _S.PARTIALLY_FILLED,
    (_S.PARTIALLY_FILLED, _E.CANCEL): _S.CANCELED,
}


class IllegalTransition(ValueError):
    """An event the order's state does not allow (``state``, ``event``, ``token``)."""

    def __init__(self, state, event, token=""):
        super().__init__(f"order {token!r}: {event} is not allowed in state {state}")
        self.state = state
        self.event = event
        self.token = token


def next_state(state, event, token=""):
    """The state after ``event``; raises :class:`IllegalTransition` for a pair not in :data:`TRANSITIONS`."""
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise IllegalTransition(state, event, token) from None


def side_sign(side):
    """+1 for a buy ('B'), -1 for a sell ('S', short 'T', short exempt 'E')."""
    if side == "B":
        return 1
    if side in ("S", "T", "E"):
        return -1
    raise ValueError(f"OUCH side is B, S, T or E, not {side!r}")


@dataclass
class OrderRecord:
    """One order as the host knows it. Prices in Price(4) ticks; ``filled_notional`` in ticks x shares."""
    token: str
    stock: str
    side: str
    shares: int
    price: int
    time_in_force: int
    sent_ns: int
    state: OrderState = OrderState.NEW
    filled: int = 0
    canceled: int = 0
    filled_notional: int = 0
    order_reference: int | None = None
    reject_reason: str = ""
    updated_ns: int = 0

    @property
    def sign(self):
        return side_sign(self.side)

    @property
    def open_shares(self):
        """Shares that may still trade."""
        return self.shares - self.filled - self.canceled if self.state.working else 0

    def apply(self, event, timestamp_ns):
        """Move to the state after ``event`` (raises :class:`IllegalTransition`)."""
        self.state = next_state(self.state, event, self.token)
        self.updated_ns = timestamp_ns
