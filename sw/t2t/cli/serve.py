"""``t2t serve``: share one card with authenticated clients over ZeroMQ; ``t2t audit``: what they changed.

``serve`` opens the card once and answers requests until interrupted (Ctrl-C or SIGTERM); clients use
``--card tcp://HOST:PORT --key ME.key --server-pub SERVER.pub``. See :mod:`t2t.server` for the roles, the
authorized-clients file and the protocol.
"""

import argparse
import json
import os
import signal
import threading

import zmq

from ..regmap import load_packaged_regmap
from ..server.audit import AuditLog, AuditLogError, read_audit
from ..server.authorization import AuthorizedFileError, load_authorized
from ..server.card_server import CardServer
from ..server.keys import KeyFileError, load_keypair
from ..server.player import FeedPlayer, PlayerError
from ..server.shadow import StateFile
from .errors import CliError
from .regs import format_value, open_card_for

__all__ = ["register", "DEFAULT_AUDIT_LOG"]

EXIT_USAGE = 2
DEFAULT_AUDIT_LOG = "t2t-audit.jsonl"


def _serve(args):
    if args.serve_card:
        args.card = args.serve_card
    if args.card.startswith("tcp://"):
        raise CliError("serve a local card (sim, pcie://, file://), not another server", exit_code=EXIT_USAGE)
    try:
        server_keypair = load_keypair(args.server_key)
        clients = load_authorized(args.authorized)
    except (KeyFileError, AuthorizedFileError) as error:
        raise CliError(str(error), exit_code=EXIT_USAGE) from None
    state_path = args.server_state or os.path.join(os.path.dirname(args.audit_log), "t2t-state.json")
    player = None
    if args.play:
        if not os.path.isfile(args.play):
            raise CliError(f"{args.play}: no such file", exit_code=EXIT_USAGE)
        player = FeedPlayer(args.play, rate=args.play_rate, wait_armed=args.play_when_armed)
    with open_card_for(args) as card:
        if player is not None:
            try:
                player.check(card)
            except PlayerError as error:
                raise CliError(str(error), exit_code=EXIT_USAGE) from None
        try:
            audit = AuditLog(args.audit_log)
        except OSError as error:
            raise CliError(f"{args.audit_log}: cannot open the audit log ({error.strerror})",
                           exit_code=EXIT_USAGE) from None
        try:
            server = CardServer(card, server_keypair, clients, bind=args.bind, audit=audit,
                                telemetry_bind=args.telemetry, telemetry_interval_ms=args.telemetry_interval_ms,
                                drain_interval_ms=args.drain_interval_ms, keep=args.keep,
                                state=StateFile(state_path), player=player)
            if server.state_note:
                print(f"t2t serve: {server.state_note}: the card's rules and positions are unknown until loaded",
                      flush=True)
            telemetry = f"; telemetry on {args.telemetry}" if args.telemetry else ""
            playing = f"; playing {args.play} into feed A" if player else ""
            _run_until_stopped(server, f"{card.transport.url} (map hash {card.regmap.hash32:#010x})",
                               f"{len(clients)} authorized client(s); audit log {args.audit_log}; state "
                               f"{state_path}{telemetry}{playing}")
        finally:
            audit.close()
    print(f"stopped after {server.requests} request(s)", flush=True)
    return 0


def _run_until_stopped(server, what, to_whom):
    """Serve from a thread of its own (the only one touching the card) until Ctrl-C or SIGTERM."""
    try:
        server.start()
    except zmq.ZMQError as error:
        raise CliError(f"cannot listen on {server.bind}: {error}", exit_code=EXIT_USAGE) from None
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: server.stop())
    print(f"serving {what} on {server.endpoint} to {to_whom}", flush=True)
    try:
        while not server.join(0.5):
            pass
    except KeyboardInterrupt:
        server.stop()


def _format_value(regmap, path, value):
    """An audit value as the register shows it; "-" where the entry has none."""
    if not isinstance(value, int) or isinstance(value, bool):
        return "-"
    try:
        return format_value(regmap[path], value)
    except KeyError:  # an address rather than a name, or a register this host's map no longer has
        return f"{value:#010x}"


def _audit(args):
    try:
        entries = read_audit(args.log)
    except FileNotFoundError:
        raise CliError(f"{args.log}: no audit log (give the server's --audit-log with --log)",
                       exit_code=EXIT_USAGE) from None
    except AuditLogError as error:
        raise CliError(str(error), exit_code=EXIT_USAGE) from None
    if args.op:
        entries = [entry for entry in entries if entry.get("op") in args.op]
    if args.user:
        entries = [entry for entry in entries if entry.get("user") in args.user]
    if args.json:
        for entry in entries:
            print(json.dumps(entry))
        return 0
    regmap = load_packaged_regmap()
    print(f"{'time (UTC)':<26} {'user':<10} {'role':<8} {'op':<8} {'register':<20} {'value':>22} "
          f"{'before':>22} {'after':>22}")
    for entry in entries:
        path = str(entry.get("register"))
        register = path + (f" ({','.join(entry['groups'])})" if entry.get("groups") else "")
        print(f"{str(entry.get('time'))[:26]:<26} {str(entry.get('user')):<10} {str(entry.get('role')):<8} "
              f"{str(entry.get('op')):<8} {register:<20} {_format_value(regmap, path, entry.get('value')):>22} "
              f"{_format_value(regmap, path, entry.get('before')):>22} "
              f"{_format_value(regmap, path, entry.get('after')):>22}")
        for line in _effect_lines(entry):
            print(f"{'':<27}{line}")
    return 0


def _effect_text(value):
    if value is None:
        return "unknown"
    if isinstance(value, dict):
        if "enabled" in value:  # a rule
            from .config import describe_rule_dict
            return describe_rule_dict(value)
        return " ".join(f"{key}={item}" for key, item in value.items())
    return json.dumps(value)


def _effect_lines(entry):
    """What a rules, position or slot entry changed, one line per slot, under its table row."""
    before, after = entry.get("before"), entry.get("after")
    if not isinstance(after, dict):
        return []
    if entry.get("op") in ("rules", "position"):
        symbols = entry.get("symbols") or {}
        return [f"slot {slot} {symbols.get(slot, '')}: {_effect_text((before or {}).get(slot))} -> "
                f"{_effect_text(value)}" for slot, value in after.items()]
    return [f"{_effect_text(before)} -> {_effect_text(after)}"]


def register(subparsers):
    """Add ``serve`` and ``audit`` to the ``t2t`` parser."""
    audit_log = os.environ.get("T2T_AUDIT_LOG", DEFAULT_AUDIT_LOG)
    serve = subparsers.add_parser("serve", help="share the card with authenticated clients over ZeroMQ")
    serve.add_argument("--card", dest="serve_card", metavar="URL",
                       help="card to serve (default: the global --card)")
    serve.add_argument("--bind", default="tcp://127.0.0.1:5555",
                       help="ZeroMQ endpoint to listen on (default: tcp://127.0.0.1:5555; port * picks one)")
    serve.add_argument("--server-key", required=True, metavar="FILE.key", help="the server's key pair")
    serve.add_argument("--authorized", required=True, metavar="FILE.yaml",
                       help="the clients allowed in: public key, user and role (monitor, trader, risk)")
    serve.add_argument("--audit-log", default=audit_log, metavar="FILE",
                       help=f"append-only log of every change (default: $T2T_AUDIT_LOG or {DEFAULT_AUDIT_LOG})")
    serve.add_argument("--telemetry", metavar="ENDPOINT",
                       help="also publish the card's counters on this ZeroMQ endpoint (e.g. tcp://127.0.0.1:5556)")
    serve.add_argument("--telemetry-interval-ms", type=int, default=500, metavar="MS",
                       help="how often to publish (default: 500)")
    serve.add_argument("--drain-interval-ms", type=int, default=100, metavar="MS",
                       help="how often the server drains the card's order, reject and gap logs (default: 100); "
                            "it is their only reader and serves its copy to clients")
    serve.add_argument("--keep", type=int, default=10_000, metavar="N",
                       help="entries of each log the server keeps for clients (default: 10000)")
    serve.add_argument("--state", dest="server_state", metavar="FILE",
                       help="where the server keeps what it knows of the card's rules and positions across "
                            "restarts (default: t2t-state.json next to the audit log)")
    serve.add_argument("--play", metavar="FILE.itch",
                       help="virtual card only: feed this ITCH BinaryFILE into feed A while serving (a session "
                            "to rehearse against)")
    serve.add_argument("--play-rate", type=int, default=2000, metavar="MSG/S",
                       help="with --play: messages per second (default 2000; 0: as fast as possible)")
    serve.add_argument("--play-when-armed", action="store_true",
                       help="with --play: hold the feed until the strategy is armed")
    serve.set_defaults(handler=_serve)

    audit = subparsers.add_parser("audit", help="print the card server's audit log of changes")
    audit.add_argument("--log", default=audit_log, metavar="FILE",
                       help=f"the audit log (default: $T2T_AUDIT_LOG or {DEFAULT_AUDIT_LOG})")
    audit.add_argument("--op", action="append", metavar="OP",
                       help="only entries of this kind: write, commit, rules, position (repeatable)")
    audit.add_argument("--user", action="append", metavar="USER", help="only this user's entries (repeatable)")
    audit.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="one JSON object per line")
    audit.set_defaults(handler=_audit)
