"""Post-trade risk on the host: order states, positions and P&L, limits and the kill switch, value at risk, and
the journal a restarted host recovers from (see :mod:`.tracker`)."""

from .journal import Journal, JournalError, read_journal
from .orders import TRANSITIONS, IllegalTransition, OrderEvent, OrderRecord, OrderState, next_state
from .position import TICKS_PER_DOLLAR, Position, dollars, ticks
from .tracker import (Breach, Fill, Outcome, PnlSample, PositionLimits, PositionSample, PositionTracker, Refusal,
                      TrackerMode)
from .var import ReturnHistory, VarResult, historical_var

__all__ = [
    "PositionTracker", "PositionLimits", "TrackerMode", "Breach", "Fill", "PositionSample", "PnlSample", "Refusal",
    "Outcome", "OrderState", "OrderEvent", "OrderRecord", "TRANSITIONS", "IllegalTransition", "next_state",
    "Position", "TICKS_PER_DOLLAR", "dollars", "ticks", "Journal", "JournalError", "read_journal",
    "ReturnHistory", "VarResult", "historical_var",
]
