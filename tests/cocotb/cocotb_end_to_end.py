"""cocotb test of the whole card, market data in to orders out, on the Verilated top level (launched by
test_end_to_end_cocotb.py).

A long generated ITCH session is packed into MoldUDP64 and sent on feed A and feed B (B a few cycles behind), beat
by beat from one cocotb coroutine per RX port. The host software sets the card up, as on a real card: symbol
slots, the threshold rules and the risk limits (:mod:`t2t.trading`), order token and firm; it arms the strategy,
drains the order log and the reject log every few packets, and half way through loads other thresholds (one
``rules_commit``). The TX stream (SoupBinTCP packets of OUCH Enter Orders) is captured beat by beat and decoded
with the host's own codec (:mod:`t2t.trade.ouch`). The logs are drained while the feed pauses: drained while it
runs, they lose entries (a gateware bug, pinned by the second test).

The configuration is built for the session so that it trades often and every check of the risk gate has work:
one symbol is restricted, one sends more shares than allowed, one an order above the notional limit, one prices
through the collar, the position limits and the order bucket run out, and a short cooldown with a long duplicate
window repeats orders.

What the card did is compared with the Python reference models (:mod:`t2t.trade.reference`, run by
:mod:`t2t_sim.trading_models` as in the virtual-card test): the strategy model fed with the BBO updates the card's
strategy took (at their cycles) gives the orders, which must be those the risk gate took; the risk model fed with
those orders (at their cycles) gives the decisions, whose accepted orders must be the order log and the TX stream,
and whose rejects the reject log, in order, reason for reason; the counters of both must agree.
"""

import collections
import dataclasses
import logging
import time

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge

from t2t import trading
from t2t.book.reference import ReferenceBook
from t2t.card import Card
from t2t.config.trading import RiskConfig, SymbolThresholds, ThresholdsConfig
from t2t.feed import itch
from t2t.feed.generator import DEFAULT_SYMBOLS, generate_session
from t2t.feed.moldudp64 import encode_packet, pack_messages
from t2t.feed.netframe import build_udp_frame
from t2t.trade.reference import RISK_COUNTERS, STRATEGY_COUNTERS, RejectReason
from t2t_gateware.streams import BboUpdate, MacBeat, OrderRequest
from t2t_sim.cocotb import TopTestbench
from t2t_sim.cocotb.host import CocotbTransport, host
from t2t_sim.cocotb.streams import INTER_FRAME_CYCLES, MacRxDriver, StreamMonitor, tx_bytes
from t2t_sim.replay import FEED_A, FEED_B, decode_orders
from t2t_sim.trading_models import (ORDER_FIELDS, accepted_rows, halts_by_time, order_log_rows, reject_log_rows,
                                    reject_rows, risk_model_decisions, strategy_model_orders)

#: The session: seed and length. About 5 cycles of traffic per message; cocotb runs the top level at a few
#: thousand cycles a second with both feeds driven and the taps and TX monitored.
SEED = 2026
MESSAGES = 40_000
#: Resting orders per symbol the generated book settles at: few enough that the card's book (8 price levels kept
#: per side) stays exact; with the generator's default most sides outgrow them within 40,000 messages, and the
#: strategy rightly stays out of a book whose top it cannot know (its updates come flagged ``degraded``).
RESTING = 10
#: The session of the test that drains the logs while the feed runs (the first messages of the same session).
MESSAGES_WHILE_RUNNING = 15_000
SESSION = "T2TE2E0001"
#: B's copies of the packets of each piece of the feed start this many cycles after A's.
B_LAG = 6
#: Packets per feed sent between two drains of the order and reject logs (the reject log holds 16 entries), and the
#: cycles waited for the last order of a piece to be decided and logged before a drain.
PACKETS_PER_DRAIN = 4
SETTLE_CYCLES = 100
#: Order tokens: prefix, firm, first token number (BCD).
TOKEN_PREFIX, FIRM, TOKEN_START = "CCTB01", "T2TF", 0x00001000


def quantile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def touch_prices(messages, locates):
    """``{locate: (best asks, best bids)}`` over the reference book's BBO changes (empty sides left out)."""
    book = ReferenceBook(locates)
    prices = {locate: ([], []) for locate in locates}
    for message in messages:
        change = book.apply(message)
        if change is not None:
            if change.ask_px:
                prices[change.locate][0].append(change.ask_px)
            if change.bid_px:
                prices[change.locate][1].append(change.bid_px)
    return prices


def rule(symbol, asks, bids, *, shares=100, offset=100, cooldown=3000, buy=0.25, sell=0.75, **options):
    """A rule that buys when the ask is in the lowest ``buy`` of the session's asks and sells when the bid is in
    the highest ``1 - sell`` of its bids."""
    return SymbolThresholds(symbol=symbol, buy_below=quantile(asks, buy), sell_above=quantile(bids, sell),
                            shares=shares, offset_ticks=offset, time_in_force=options.pop("time_in_force", 0),
                            cooldown_cycles=cooldown, one_shot=options.pop("one_shot", False),
                            enabled=options.pop("enabled", True))


def build_thresholds(messages, locates):
    """Rules for the eight symbols (``locates``: symbol -> locate), each aimed at a part of the risk gate."""
    prices = touch_prices(messages, set(locates.values()))

    def make(symbol, **options):
        asks, bids = prices[locates[symbol]]
        return rule(symbol, asks, bids, **options)

    return ThresholdsConfig({
        "AAPL": make("AAPL", time_in_force=99998),        # trades; runs into its position limit
        "MSFT": make("MSFT", cooldown=400),               # repeats itself within the duplicate window
        "AMZN": make("AMZN", shares=600),                 # above max shares
        "NVDA": make("NVDA", shares=400),                 # above the notional limit
        "TSLA": make("TSLA", shares=10),                  # restricted
        "GOOGL": make("GOOGL", offset=1000),              # through the collar
        "META": make("META", time_in_force=99999),
        "INTC": make("INTC", buy=0.35, sell=0.65),
    })


def changed_thresholds(thresholds):
    """The rules loaded half way: MSFT stops, NVDA trades a size the gate takes, AAPL sells only, INTC one shot."""
    symbols = dict(thresholds.symbols)
    symbols["MSFT"] = dataclasses.replace(symbols["MSFT"], enabled=False)
    symbols["NVDA"] = dataclasses.replace(symbols["NVDA"], shares=100)
    symbols["AAPL"] = dataclasses.replace(symbols["AAPL"], buy_below=None)
    symbols["INTC"] = dataclasses.replace(symbols["INTC"], one_shot=True)
    return ThresholdsConfig(symbols)


def build_risk():
    return RiskConfig(
        max_shares_per_order=500, max_notional_ticks=100_000 * 10_000, collar_ticks=500,
        bucket_capacity=8, refill_cycles=1000, duplicate_window_cycles=4000, max_rejects=0xFFFF,
        reject_window_cycles=1000, position_limits={"AAPL": 300, "META": 1500}, default_position_limit=2000,
        restricted=frozenset({"TSLA"}))


def feed_schedules(raw, first_sequence=1):
    """Both feeds' ``(idle, frame)`` schedules of the messages ``raw``, packed as full as 1400 bytes allow."""
    schedule_a, schedule_b, packets = [], [], 0
    for packet in pack_messages(raw, SESSION, first_sequence=first_sequence):
        payload = encode_packet(packet)
        for schedule, (address, port) in ((schedule_a, FEED_A), (schedule_b, FEED_B)):
            schedule.append((INTER_FRAME_CYCLES, build_udp_frame(payload, dst_ip=address, dst_port=port)))
        packets += 1
    return schedule_a, schedule_b, packets


def set_up_orders(card):
    """Token prefix, firm and first token number of the orders, as the host sets them before trading."""
    card.write("orders.token_prefix", int.from_bytes(TOKEN_PREFIX.encode(), "little"))
    card.write("orders.firm", int.from_bytes(FIRM.encode(), "little"))
    card.write("orders.token_start", TOKEN_START)
    card.write("orders.token_reset", 1)


class Logs:
    """The order and reject logs as the host drains them (pop-on-read registers)."""

    def __init__(self, card, slot_map):
        self.card, self.slot_map = card, slot_map
        self.orders, self.rejects, self.drains = [], [], 0

    def drain(self):
        self.orders += trading.drain_orders(self.card, self.slot_map)
        self.rejects += trading.drain_rejects(self.card, self.slot_map)
        self.drains += 1


async def refill_phase(dut):
    """The cycle the gate's order bucket counts its refills from, to give the risk model.

    The reference model (and the gate's documentation) count refill periods from reset; the gate's period counter
    stands still while ``refill_cycles`` is 0 (its reset value), so it counts from the ``risk`` commit that sets it:
    read it once, with the cycle counter, after the commit.
    """
    await FallingEdge(dut.clk)
    cycle, period = int(dut.cycles.value), int(dut.risk_gate.period_cycles.value)
    return cycle - period + 1


async def send(dut, schedules):
    """Drive both RX ports; returns the cycles the longer schedule took."""
    drivers = MacRxDriver(dut, "rx_a"), MacRxDriver(dut, "rx_b")
    tasks = [cocotb.start_soon(driver.send(schedule)) for driver, schedule in zip(drivers, schedules)]
    for task in tasks:
        await task
    return max(sum(idle for idle, _ in schedule) + driver.beats for schedule, driver in zip(schedules, drivers))


def chunks(schedules, packets):
    """Both feeds' schedules cut into pieces of ``packets`` packets, B's ``B_LAG`` cycles behind A's in each."""
    a, b = schedules
    pieces = []
    for i in range(0, len(a), packets):
        (idle, frame), *rest = b[i:i + packets]
        pieces.append((a[i:i + packets], [(idle + B_LAG, frame), *rest]))
    return pieces


@dataclasses.dataclass
class Setup:
    messages: list
    raw: list
    locates: dict
    thresholds: ThresholdsConfig
    later: ThresholdsConfig
    risk: RiskConfig
    card: Card = None
    slot_map: trading.SlotMap = None
    bucket_phase: int = 0


async def start_card(dut, messages):
    """Reset the top level and set it up through the host software: slots, risk limits, rules, tokens, armed."""
    tb = TopTestbench(dut)
    for interface in (tb.axil.write_if, tb.axil.read_if):
        interface.log.setLevel(logging.WARNING)  # not every register access
    await tb.start()
    setup = Setup(messages, [itch.encode(message) for message in messages],
                  {m.stock.strip(): m.locate for m in messages if m.type == "R"}, None, None, build_risk())
    setup.thresholds = build_thresholds(messages, setup.locates)
    setup.later = changed_thresholds(setup.thresholds)
    card = setup.card = await host(Card, CocotbTransport(tb.axil))
    setup.slot_map = trading.SlotMap.assign(list(DEFAULT_SYMBOLS), setup.locates,
                                            await host(trading.slot_capacity, card))
    await host(trading.load_symbols, card, setup.slot_map)
    await host(trading.load_risk, card, setup.risk, setup.slot_map)
    setup.bucket_phase = await refill_phase(dut)
    await host(trading.load_thresholds, card, setup.thresholds, setup.slot_map)
    await host(set_up_orders, card)
    await host(trading.arm, card)
    return setup


COUNTERS = ([f"strategy.{name}" for name in STRATEGY_COUNTERS] + [f"risk.{name}" for name in RISK_COUNTERS]
            + ["orders.sent", "orders.log_dropped", "strategy.disarmed", "itch.events", "moldudp64.duplicates",
               "moldudp64.gaps", "book.bbo_updates"])


@cocotb.test()
async def orders_and_rejects_equal_the_reference_strategy_and_risk_models(dut):
    started = time.perf_counter()
    setup = await start_card(dut, list(generate_session(seed=SEED, messages=MESSAGES, resting_per_symbol=RESTING)))
    messages, locates, thresholds, later, risk = (setup.messages, setup.locates, setup.thresholds, setup.later,
                                                  setup.risk)
    card, slot_map = setup.card, setup.slot_map
    half = MESSAGES // 2
    parts = [feed_schedules(setup.raw[:half]), feed_schedules(setup.raw[half:], first_sequence=half + 1)]

    monitor = StreamMonitor(dut)
    bbo = monitor.add("bbo", dut.bbo__valid, dut.bbo__payload, BboUpdate)
    gate = monitor.add("gate", dut.order_tap__valid, dut.order_tap__payload, OrderRequest)
    tx = monitor.add("tx", dut.tx__valid, dut.tx__payload, MacBeat, ready=dut.tx__ready)
    monitor.start()
    logs = Logs(card, slot_map)
    changes, cycles = [], 0
    for number, (schedule_a, schedule_b, _) in enumerate(parts):
        if number:
            # Half way, with nothing in flight: other rules, applied together by one rules_commit.
            changes.append((len(bbo), later))
            await host(trading.load_thresholds, card, later, slot_map)
        # The logs are drained between pieces of the feed, with nothing in flight (see the test below).
        for piece in chunks((schedule_a, schedule_b), PACKETS_PER_DRAIN):
            cycles += await send(dut, piece)
            await ClockCycles(dut.clk, SETTLE_CYCLES)
            await host(logs.drain)
    monitor.stop()
    counters = await host(trading.read_many, card, COUNTERS)
    seconds = time.perf_counter() - started

    # The reference models over what the card's strategy and risk gate took.
    halts = halts_by_time(messages, set(locates.values()))
    strategy_model, expected_orders = strategy_model_orders(thresholds, slot_map, bbo, halts, changes)
    risk_model, decisions = risk_model_decisions(risk, slot_map, bbo, gate, cycle_offset=setup.bucket_phase)
    accepted = [order for order, reason in zip(gate, decisions) if reason == RejectReason.NONE]
    reasons = {reason.name.lower(): sum(1 for d in decisions if d == reason) for reason in RejectReason
               if reason != RejectReason.NONE and reason in decisions}
    sent = decode_orders(tx_bytes(tx))
    dut._log.info(f"session: {MESSAGES} messages in {parts[0][2] + parts[1][2]} packets per feed, {cycles} cycles "
                  f"of traffic, {logs.drains} log drains, {seconds:.1f} s")
    dut._log.info(f"compared: {len(bbo)} BBO updates, {len(gate)} orders taken by the risk gate (model "
                  f"{len(expected_orders)}), {len(logs.orders)} orders logged and {len(sent)} on the wire (model "
                  f"{len(accepted)}), {len(logs.rejects)} rejects (model {len(risk_model.rejects)}): {reasons}")

    dut._log.info("strategy: " + ", ".join(f"{name} {counters['strategy.' + name]}" for name in STRATEGY_COUNTERS)
                  + f"; BBO updates after the change {len(bbo) - changes[0][0]}, degraded "
                  f"{sum(update['degraded'] for update in bbo)}")

    # The session is what the test means it to be: it trades, and the gate refuses for many reasons.
    assert counters["moldudp64.duplicates"] == parts[0][2] + parts[1][2] and counters["moldudp64.gaps"] == 0
    assert len(bbo) == counters["book.bbo_updates"] > 10_000
    assert sum(update["degraded"] for update in bbo) < len(bbo) // 100
    assert len(accepted) >= 30 and len(risk_model.rejects) >= 80
    assert len(reasons) >= 6, f"the session should exercise most checks, got {reasons}"
    assert changes and 0 < changes[0][0] < len(bbo)

    # The strategy: the orders the risk gate took are the reference strategy's, field for field.
    observed = [{name: order[name] for name in ORDER_FIELDS} for order in gate]
    expected = [{name: order[name] for name in ORDER_FIELDS} for order in expected_orders]
    first = next((i for i, (a, b) in enumerate(zip(observed, expected)) if a != b), None)
    assert first is None, f"order {first}: card {observed[first]} model {expected[first]}"
    assert len(observed) == len(expected)
    for name in STRATEGY_COUNTERS:
        assert counters[f"strategy.{name}"] == strategy_model.counters[name], name
    # The rules loaded half way applied from their commit on, and not before.
    change_cycle = bbo[changes[0][0]]["cycle"]
    before = [o for o in gate if o["cycle"] < change_cycle]
    after = [o for o in gate if o["cycle"] >= change_cycle]
    for name, part in (("before", before), ("after", after)):
        dut._log.info(f"orders {name} the change: " + ", ".join(
            f"{slot_map.symbol_of_slot(slot)} {'BS'[side]} {shares} x{count}" for (slot, side, shares), count in
            sorted(collections.Counter((o["slot"], o["side"], o["shares"]) for o in part).items())))
    msft, nvda = slot_map.slot_of("MSFT"), slot_map.slot_of("NVDA")
    assert any(o["slot"] == msft for o in before) and not any(o["slot"] == msft for o in after)
    assert {o["shares"] for o in before if o["slot"] == nvda} == {400}
    assert {o["shares"] for o in after if o["slot"] == nvda} == {100}
    _, unchanged = strategy_model_orders(thresholds, slot_map, bbo, halts)
    assert [{name: o[name] for name in ORDER_FIELDS} for o in unchanged] != observed
    assert counters["strategy.disarmed"] == 0

    # The risk gate: accepted orders are the order log, rejects the reject log, in order, reason for reason.
    assert counters["orders.log_dropped"] == 0 and counters["risk.reject_log_dropped"] == 0
    assert accepted_rows(gate, decisions) == order_log_rows(logs.orders)
    assert reject_rows(risk_model.rejects) == reject_log_rows(logs.rejects)
    for name in RISK_COUNTERS:
        assert counters[f"risk.{name}"] == risk_model.counters[name], name

    # The wire: one OUCH Enter Order per logged order, same order, fields, and tokens counting from the start.
    assert len(sent) == len(logs.orders) == counters["orders.sent"]
    first_number = int(f"{TOKEN_START:x}")  # BCD: the hex spelling is the decimal number
    for index, (wire, logged, order) in enumerate(zip(sent, logs.orders, accepted)):
        assert wire.token == logged.token == f"{TOKEN_PREFIX}{first_number + index:08d}", index
        assert wire.stock.strip() == logged.symbol == slot_map.symbol_of_slot(order["slot"])
        assert (wire.side, wire.shares, wire.price) == (logged.side, logged.shares, logged.price)
        assert wire.time_in_force == order["time_in_force"] == thresholds.symbols[logged.symbol].time_in_force
        assert wire.firm == FIRM


@cocotb.test()
async def logs_drained_while_orders_flow_lose_no_entry(dut):
    """A host draining the logs while the feed runs loses no entry. (It did: the register bank answered a read of
    a pop-on-read register (``orders.log``, ``risk.reject``, ``moldudp64.gap``) with the queue's head of the answer
    cycle and popped one cycle later, so an entry arriving in that cycle, after the host read the queue empty, was
    popped unread. The bank now pops in the cycle it takes the value.)

    Here the host reads the logs back to back while the session runs; every order sent must be in the order log and
    every reject counted in the reject log.
    """
    setup = await start_card(dut, list(generate_session(seed=SEED, messages=MESSAGES_WHILE_RUNNING,
                                                        resting_per_symbol=RESTING)))
    logs = Logs(setup.card, setup.slot_map)
    running = True

    async def poll():
        while running:
            await host(logs.drain)

    poller = cocotb.start_soon(poll())
    schedule_a, schedule_b, _ = feed_schedules(setup.raw)
    cycles = await send(dut, chunks((schedule_a, schedule_b), len(schedule_a))[0])
    await ClockCycles(dut.clk, SETTLE_CYCLES)
    running = False
    await poller
    await host(logs.drain)
    counters = await host(trading.read_many, setup.card, COUNTERS)
    rejected = sum(counters[f"risk.{name}"] for name in RISK_COUNTERS if name.startswith("rejected_"))
    dut._log.info(f"session: {MESSAGES_WHILE_RUNNING} messages, {cycles} cycles of traffic, {logs.drains} drains "
                  f"while it ran; orders sent {counters['orders.sent']}, logged {len(logs.orders)}; rejects counted "
                  f"{rejected}, logged {len(logs.rejects)}")
    assert counters["orders.sent"] > 20 and rejected > 50, "the session must trade and be refused often"
    assert counters["orders.log_dropped"] == counters["risk.reject_log_dropped"] == 0, "the host did not keep up"
    assert len(logs.orders) == counters["orders.sent"], "orders popped from the order log unread"
    assert len(logs.rejects) == rejected, "rejects popped from the reject log unread"
