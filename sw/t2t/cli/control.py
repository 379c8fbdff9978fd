"""``t2t arm|disarm`` (the strategy's orders go to the risk gate, or stop before it) and ``t2t kill|rearm`` (the
risk gate's kill switch; the risk role's on a card server)."""

import json

from .. import trading
from .session import open_session

__all__ = ["register"]


def _state(card):
    return {"armed": trading.is_armed(card), "killed": trading.is_killed(card)}


def _report(args, state, message, note=False):
    if args.json:
        print(json.dumps(state))
        return
    print(message)
    if note and state["armed"] and state["killed"]:
        print("note: the kill switch is on: every order is refused until `t2t rearm` (risk role)")


def _arm(armed):
    def handler(args):
        with open_session(args) as session:
            trading.arm(session.card, armed)
            state = _state(session.card)
        _report(args, state, "strategy ARMED: its orders go to the risk gate" if state["armed"] else
                "strategy disarmed: its orders stop before the risk gate (counted in strategy.disarmed)", note=True)
        return 0
    return handler


def _kill(args):
    with open_session(args) as session:
        trading.kill(session.card)
        state = _state(session.card)
    _report(args, state, "KILLED: the risk gate refuses every order until `t2t rearm`")
    return 0


def _rearm(args):
    with open_session(args) as session:
        trading.rearm(session.card)
        state = _state(session.card)
    _report(args, state, "kill switch released: orders pass the risk gate's checks again" +
            ("" if state["armed"] else " (the strategy is disarmed: `t2t arm` to trade)"))
    return 0


def register(subparsers):
    arm = subparsers.add_parser("arm", help="let the strategy's orders through to the risk gate")
    arm.set_defaults(handler=_arm(True))
    disarm = subparsers.add_parser("disarm", help="stop the strategy's orders before the risk gate")
    disarm.set_defaults(handler=_arm(False))
    kill = subparsers.add_parser("kill", help="trip the kill switch: every order refused (risk role)")
    kill.set_defaults(handler=_kill)
    rearm = subparsers.add_parser("rearm", help="release the kill switch (risk role)")
    rearm.set_defaults(handler=_rearm)
