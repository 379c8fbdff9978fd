"""The card's top level: network ports in and out, the AXI4-Lite register bank, and the pipeline between them."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .book.builder import COUNTERS as BOOK_COUNTERS
from .book.builder import BookBuilder
from .feed.ingest import COUNTERS as INGEST_COUNTERS
from .feed.ingest import FeedIngest
from .feed.itch import MESSAGE_TYPES
from .net.udp_receiver import OUTCOMES, UdpReceiver
from .regs.axi_lite import AxiLiteSignature
from .regs.bank import RegisterBank
from .regs.generate import load_regmap
from .streams import BEAT_BYTES, STAMP_BITS, BboUpdate, EventKind, MacBeat, MacRxSignature, OrderRequest
from .trade.ouch_encoder import OuchEncoder
from .trade.risk_gate import COUNTERS as RISK_COUNTERS
from .trade.risk_gate import RiskGate
from .trade.order_merge import OrderMerge
from .trade.strategy import COUNTERS as STRATEGY_COUNTERS
from .trade.strategy import PAIR_COUNTERS, PairStrategy, ThresholdStrategy

__all__ = ["SYMBOLS", "Tick2TradeTop"]

#: Symbol slots: stocks the book, the strategy and the risk gate follow at once.
SYMBOLS = 8

#: Entries of the order log the host drains.
ORDER_LOG_DEPTH = 64

#: Latency histogram bins: one per cycle, the last one for that many cycles or more.
LATENCY_BINS = 32


class TapSignature(wiring.Signature):
    """A copy of a stream's transfers: ``valid`` (high in each handshake cycle) and the payload, no ``ready`` (a tap
    never holds the stream back). On a card taps feed recording (market data, an order audit trail); the virtual
    card and the cocotb testbenches collect them with the cycle of each transfer.
    """

    def __init__(self, payload):
        super().__init__({"valid": Out(1), "payload": Out(payload)})


class Tick2TradeTop(wiring.Component):
    """Everything on the card between the MACs and the PCIe bridge.

    Ports: ``axil`` (AXI4-Lite subordinate, the host's BAR), ``rx_a``/``rx_b`` (feed A and B from their MACs, one
    64-bit beat per clock, never held back), ``tx`` (SoupBinTCP packets of OUCH orders toward the exchange
    session: a TCP offload engine or the host's session owns the connection; it may hold TX back with
    ``ready``), ``bbo`` (a copy of the book's BBO updates), ``order_tap`` (a copy of the orders the risk gate takes,
whether it passes or refuses them). Single clock domain ``sync``.
    """

    def __init__(self, regmap=None, *, symbols=SYMBOLS):
        self.regmap = regmap or load_regmap()
        self.symbols = symbols
        super().__init__({
            "axil": In(AxiLiteSignature(self.regmap.address_width)),
            "rx_a": In(MacRxSignature()),
            "rx_b": In(MacRxSignature()),
            "tx": Out(stream.Signature(MacBeat)),
            "bbo": Out(TapSignature(BboUpdate)),
            "order_tap": Out(TapSignature(OrderRequest)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = bank = RegisterBank(self.regmap)
        wiring.connect(m, wiring.flipped(self.axil), bank.axil)

        cycles = Signal(64)
        m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += bank["id.cycles"].value.eq(cycles)
        stamp = cycles[:STAMP_BITS]

        m.submodules.ingest = ingest = FeedIngest()
        self._connect_ingest(m, bank, ingest)
        self._connect_trading(m, bank, ingest, cycles)

        status = bank["control.status"]
        for feed_id, (name, rx) in enumerate((("a", self.rx_a), ("b", self.rx_b))):
            receiver = UdpReceiver(feed_id)
            m.submodules[f"udp_receiver_{name}"] = receiver
            m.d.comb += [
                receiver.i_mac.valid.eq(rx.valid),
                receiver.i_mac.payload.eq(rx.payload),
                receiver.stamp.eq(stamp),
                receiver.dst_ip.eq(bank[f"feed.dst_ip_{name}"].value),
                receiver.dst_port.eq(bank[f"feed.dst_port_{name}"].value),
                bank[f"rx_{name}.frames"].value.eq(receiver.frames),
            ]
            for outcome in OUTCOMES:
                m.d.comb += bank[f"rx_{name}.{outcome}"].value.eq(getattr(receiver, outcome))

            # The sticky status bit rises with the bad-FCS counter.
            previous_bad_fcs = Signal(32, name=f"previous_bad_fcs_{name}")
            m.d.sync += previous_bad_fcs.eq(receiver.bad_fcs)
            m.d.comb += status.set[status.register.field(f"rx_{name}_error").offset].eq(
                previous_bad_fcs != receiver.bad_fcs)

            payload = receiver.o_payload
            wiring.connect(m, receiver.o_payload, getattr(ingest, f"i_feed_{name}"))
            payload_bytes = bank[f"rx_{name}.payload_bytes"].value
            with m.If(payload.valid):
                # keep is contiguous from lane 0: its bit count is the byte count.
                m.d.sync += payload_bytes.eq(payload_bytes + Mux(payload.p.last, sum(payload.p.keep), BEAT_BYTES))
        return m

    def _connect_trading(self, m, bank, ingest, cycles):
        """Book -> threshold strategy -> risk gate -> OUCH encoder -> TX, the order log and the latency figures."""
        S = self.symbols
        stamp = cycles[:STAMP_BITS]
        m.submodules.book = book = BookBuilder(symbols=S)
        m.submodules.strategy = strategy = ThresholdStrategy(S)
        m.submodules.pair_strategy = pair = PairStrategy(S)
        m.submodules.order_merge = merge = OrderMerge()
        m.submodules.risk_gate = risk = RiskGate(S)
        m.submodules.encoder = encoder = OuchEncoder()

        wiring.connect(m, ingest.o_event, book.i_event)
        wiring.connect(m, book.o_bbo, strategy.i_bbo)
        wiring.connect(m, encoder.o_tx, wiring.flipped(self.tx))
        m.d.comb += [
            risk.i_bbo_tap.valid.eq(book.o_bbo.valid & book.o_bbo.ready),
            risk.i_bbo_tap.payload.eq(book.o_bbo.payload),
            pair.i_bbo_tap.valid.eq(book.o_bbo.valid & book.o_bbo.ready),
            pair.i_bbo_tap.payload.eq(book.o_bbo.payload),
            self.bbo.valid.eq(book.o_bbo.valid & book.o_bbo.ready),
            self.bbo.payload.eq(book.o_bbo.payload),
        ]

        # Symbol slots: one host write maps a slot in the book, names it in the encoder, and here, for halts.
        slot_write = bank["book.slot"]
        slot_index, slot_locate, slot_valid = (slot_write.field(n) for n in ("slot", "locate", "valid"))
        m.d.comb += [
            book.slot_we.eq(slot_write.strobe), book.slot_index.eq(slot_index),
            book.slot_locate.eq(slot_locate), book.slot_valid.eq(slot_valid),
            encoder.symbol_we.eq(slot_write.strobe), encoder.symbol_slot.eq(slot_index),
            encoder.symbol_name.eq(bank["book.symbol"].value),
            bank["book.slots"].value.eq(S),
            bank["book.degraded"].value.eq(book.degraded),
            book.degraded_clear.eq(Mux(bank["book.degraded_clear"].strobe, bank["book.degraded_clear"].value, 0)),
        ]
        depth = bank["book.depth_select"]
        m.d.comb += [
            book.depth_slot.eq(depth.field("slot")), book.depth_side.eq(depth.field("side")),
            book.depth_level.eq(depth.field("level")),
            # A level that holds no order reads as 0, 0, 0 (the host stops at the first one).
            bank["book.depth_price"].value.eq(Mux(book.depth_valid, book.depth_price, 0)),
            bank["book.depth_shares"].value.eq(Mux(book.depth_valid, book.depth_shares, 0)),
            bank["book.depth_orders"].value.eq(Mux(book.depth_valid, book.depth_orders, 0)),
        ]
        for name in BOOK_COUNTERS:
            m.d.comb += bank[f"book.{name}"].value.eq(getattr(book, name))

        # Halts: an ITCH trading action (H) of a followed stock stops its rule unless the state is T (trading).
        slot_locates = [Signal(16, name=f"slot{s}_locate") for s in range(S)]
        slot_follows = [Signal(name=f"slot{s}_valid") for s in range(S)]
        slot_symbols = [Signal(64, name=f"slot{s}_symbol") for s in range(S)]
        with m.If(slot_write.strobe):
            for s in range(S):
                with m.If(slot_index == s):
                    m.d.sync += [slot_locates[s].eq(slot_locate), slot_follows[s].eq(slot_valid),
                                 slot_symbols[s].eq(bank["book.symbol"].value)]
        # The host reads the slot table back one slot at a time.
        view = bank["book.slot_view"].value
        for s in range(S):
            with m.If(view == s):
                m.d.comb += [
                    bank["book.slot_view_locate"].field("locate").eq(slot_locates[s]),
                    bank["book.slot_view_locate"].field("valid").eq(slot_follows[s]),
                    bank["book.slot_view_symbol"].value.eq(slot_symbols[s]),
                ]
        event = ingest.o_event
        action = Signal()
        action_locate = Signal(16)
        action_trading = Signal()
        m.d.sync += [
            action.eq(event.valid & event.ready & (event.p.kind == EventKind.TRADING_ACTION)),
            action_locate.eq(event.p.locate),
            action_trading.eq(event.p.code == ord("T")),
        ]
        halted = bank["strategy.halted"].value
        for s in range(S):
            with m.If(action & slot_follows[s] & (slot_locates[s] == action_locate)):
                m.d.sync += halted[s].eq(~action_trading)
        m.d.comb += [strategy.halted.eq(halted[:S]), pair.halted.eq(halted[:S])]

        # Rules: staged field by field, written per slot, committed all at once.
        rule = strategy.rule
        flags = bank["strategy.rule_flags"]
        m.d.comb += [
            strategy.cycle.eq(cycles),
            rule.enable.eq(flags.field("enable")), rule.one_shot.eq(flags.field("one_shot")),
            rule.buy_threshold.eq(bank["strategy.rule_buy_threshold"].value),
            rule.sell_threshold.eq(bank["strategy.rule_sell_threshold"].value),
            rule.shares.eq(bank["strategy.rule_shares"].value),
            rule.offset.eq(bank["strategy.rule_offset"].value),
            rule.time_in_force.eq(bank["strategy.rule_time_in_force"].value),
            rule.cooldown.eq(bank["strategy.rule_cooldown"].value),
            strategy.rule_slot.eq(bank["strategy.rule_slot"].value),
            strategy.rule_we.eq(bank["strategy.rule_write"].strobe),
            strategy.rules_commit.eq(bank["strategy.rules_commit"].strobe),
            strategy.rearm.eq(Mux(bank["strategy.rearm"].strobe, bank["strategy.rearm"].value, 0)),
        ]
        for name in STRATEGY_COUNTERS:
            m.d.comb += bank[f"strategy.{name}"].value.eq(getattr(strategy, name))

        # The pair rule, committed with the threshold rules.
        pair_rule, pair_flags = pair.rule, bank["pair.flags"]
        m.d.comb += [
            pair.cycle.eq(cycles),
            pair_rule.enable.eq(pair_flags.field("enable")),
            pair_rule.slot_a.eq(pair_flags.field("slot_a")), pair_rule.slot_b.eq(pair_flags.field("slot_b")),
            pair.rule_we.eq(bank["pair.rule_write"].strobe),
            pair.rules_commit.eq(bank["strategy.rules_commit"].strobe),
        ]
        for name in ("ratio", "upper", "lower", "shares_a", "shares_b", "time_in_force", "cooldown"):
            m.d.comb += getattr(pair_rule, name).eq(bank[f"pair.{name}"].value)
        for name in PAIR_COUNTERS:
            m.d.comb += bank[f"pair.{name}"].value.eq(getattr(pair, name))

        # Both strategies' orders, merged round robin (a pair's two legs stay back to back).
        wiring.connect(m, strategy.o_order, merge.i_a)
        wiring.connect(m, pair.o_order, merge.i_b)

        # Arming: a disarmed strategy's orders are counted and go no further.
        armed = bank["strategy.control"].field("armed")
        order = merge.o_order
        m.d.comb += [
            risk.i_order.valid.eq(order.valid & armed),
            risk.i_order.payload.eq(order.payload),
            order.ready.eq(risk.i_order.ready | ~armed),
            self.order_tap.valid.eq(risk.i_order.valid & risk.i_order.ready),
            self.order_tap.payload.eq(order.payload),
        ]
        disarmed = bank["strategy.disarmed"].value
        with m.If(order.valid & ~armed):
            m.d.sync += disarmed.eq(disarmed + 1)

        # Risk limits (one commit group), positions, kill switch, reject log.
        limits = risk.limits
        for name in ("max_shares", "max_notional", "collar_ticks", "bucket_capacity", "refill_cycles",
                     "duplicate_window", "max_rejects", "reject_window"):
            m.d.comb += getattr(limits, name).eq(bank[f"risk.{name}"].value)
        control = bank["risk.control"]
        m.d.comb += [
            risk.cycle.eq(cycles),
            risk.restricted.eq(bank["risk.restricted"].value),
            risk.position_we.eq(bank["risk.position_write"].strobe),
            risk.position_slot.eq(bank["risk.position_slot"].value),
            risk.position.eq(bank["risk.position"].value),
            risk.position_limit.eq(bank["risk.position_limit"].value),
            risk.kill.eq(control.strobe & control.field("kill")),
            risk.rearm.eq(control.strobe & control.field("rearm")),
            bank["risk.status"].field("killed").eq(risk.killed),
        ]
        # The gate keeps a notional cap per order size: register each threshold rule's size as it is written, and
        # both legs' sizes of the pair rule (leg A in the write's cycle, leg B in the next: two register writes
        # are always more than a cycle apart, so the three sources never meet).
        # A size of 0 (a disabled rule's) is never registered: no order has 0 shares, and it would take the place
        # of a real size among the slot's kept ones.
        rule_write = bank["strategy.rule_write"].strobe & (bank["strategy.rule_shares"].value != 0)
        pair_write = bank["pair.rule_write"].strobe & pair_flags.field("enable")
        leg_b_pending = Signal()
        leg_b_slot = Signal.like(risk.notional_size_slot)
        leg_b_shares = Signal.like(risk.notional_size)
        m.d.sync += leg_b_pending.eq(pair_write & (bank["pair.shares_b"].value != 0))
        with m.If(pair_write):
            m.d.sync += [leg_b_slot.eq(pair_flags.field("slot_b")), leg_b_shares.eq(bank["pair.shares_b"].value)]
        m.d.comb += risk.notional_size_we.eq(
            rule_write | (pair_write & (bank["pair.shares_a"].value != 0)) | leg_b_pending)
        with m.If(bank["strategy.rule_write"].strobe):
            m.d.comb += [risk.notional_size_slot.eq(bank["strategy.rule_slot"].value),
                         risk.notional_size.eq(bank["strategy.rule_shares"].value)]
        with m.Elif(pair_write):
            m.d.comb += [risk.notional_size_slot.eq(pair_flags.field("slot_a")),
                         risk.notional_size.eq(bank["pair.shares_a"].value)]
        with m.Else():
            m.d.comb += [risk.notional_size_slot.eq(leg_b_slot), risk.notional_size.eq(leg_b_shares)]
        for name in RISK_COUNTERS + ("notional_slow",):
            m.d.comb += bank[f"risk.{name}"].value.eq(getattr(risk, name))
        reject = bank["risk.reject"]
        record = risk.o_reject.p
        m.d.comb += [
            reject.value.eq(Mux(risk.o_reject.valid,
                                Cat(record.reason, record.side, Const(0, 3), record.slot, record.locate,
                                    record.shares, record.price), 0)),
            risk.o_reject.ready.eq(reject.read_strobe),
        ]

        # The order encoder; it takes an order in the cycle it sends the order's first TX beat.
        wiring.connect(m, risk.o_order, encoder.i_order)
        orders = "orders"
        m.d.comb += [
            encoder.stamp.eq(stamp),
            encoder.token_prefix.eq(bank[f"{orders}.token_prefix"].value),
            encoder.firm.eq(bank[f"{orders}.firm"].value),
            encoder.token_start.eq(bank[f"{orders}.token_start"].value),
            encoder.token_reset.eq(bank[f"{orders}.token_reset"].strobe),
            bank[f"{orders}.sent"].value.eq(encoder.orders_sent),
            bank[f"{orders}.status"].field("tokens_exhausted").eq(encoder.tokens_exhausted),
        ]

        # The order log: every entry is queued for the host (a full queue drops and counts).
        entry = encoder.o_log.p
        latency = Signal(STAMP_BITS)
        m.d.comb += latency.eq(entry.tx_stamp - entry.trigger_stamp)
        log_word = Cat(Const(1, 1), entry.side, Const(0, 6), entry.slot, entry.locate, entry.token_number,
                       entry.shares, entry.price, entry.timestamp, Const(0, 16), latency, Const(0, 16))
        m.submodules.order_log = order_log = fifo.SyncFIFOBuffered(width=len(log_word), depth=ORDER_LOG_DEPTH)
        log = bank[f"{orders}.log"]
        log_dropped = bank[f"{orders}.log_dropped"].value
        m.d.comb += [
            encoder.o_log.ready.eq(1),
            order_log.w_data.eq(log_word),
            order_log.w_en.eq(encoder.o_log.valid),
            log.value.eq(Mux(order_log.r_rdy, order_log.r_data, 0)),
            order_log.r_en.eq(log.read_strobe),
        ]
        with m.If(encoder.o_log.valid & ~order_log.w_rdy):
            m.d.sync += log_dropped.eq(log_dropped + 1)

        # Latency figures and histogram, from the order taken by the encoder (its first TX beat's cycle).
        sent = risk.o_order.valid & risk.o_order.ready
        measured = Signal()
        measured_cycles = Signal(STAMP_BITS)
        m.d.sync += [measured.eq(sent), measured_cycles.eq(stamp - risk.o_order.p.stamp)]
        count, high, total = (bank[f"latency.{n}"].value for n in ("count", "max", "sum"))
        low = Signal(STAMP_BITS, init=(1 << STAMP_BITS) - 1)
        m.d.comb += bank["latency.min"].value.eq(low)
        bins = [bank[f"latency.bin_{i:02d}"].value for i in range(LATENCY_BINS)]
        with m.If(bank["latency.clear"].strobe):
            m.d.sync += [count.eq(0), low.eq(~0), high.eq(0), total.eq(0)] + [b.eq(0) for b in bins]
        with m.Elif(measured):
            m.d.sync += [
                count.eq(count + 1), total.eq(total + measured_cycles),
                low.eq(Mux(measured_cycles < low, measured_cycles, low)),
                high.eq(Mux(measured_cycles > high, measured_cycles, high)),
            ]
            for i, counter in enumerate(bins):
                hit = (measured_cycles == i) if i < LATENCY_BINS - 1 else (measured_cycles >= i)
                with m.If(hit):
                    m.d.sync += counter.eq(counter + 1)

    @staticmethod
    def _connect_ingest(m, bank, ingest):
        """Settings, status, counters, the gap queue and the subscription table of the ingest, by register."""
        mode = bank["feed.session_mode"].field("mode")
        m.d.comb += [
            ingest.session.eq(bank["feed.session"].value),
            ingest.session_valid.eq(mode == bank["feed.session_mode"].register.field("mode").enum["fixed"]),
            bank["moldudp64.current_session"].value.eq(ingest.current_session),
            bank["moldudp64.next_expected"].value.eq(ingest.next_expected),
        ]
        status = bank["moldudp64.status"]
        for name in ("session_known", "synced", "session_ended"):
            m.d.comb += status.field(name).eq(getattr(ingest, name))
        for name in INGEST_COUNTERS:
            block = "moldudp64" if f"moldudp64.{name}" in bank.ports else "itch"
            m.d.comb += bank[f"{block}.{name}"].value.eq(getattr(ingest, name))
        for index, letter in enumerate(MESSAGE_TYPES):
            m.d.comb += bank[f"itch.messages_{letter}"].value.eq(ingest.message_counts[index])

        # The gap queue: the host reads the oldest gap (count 0 when none); reading word 0 takes it off.
        gap = bank["moldudp64.gap"]
        m.d.comb += [
            gap.value.eq(Mux(ingest.o_gap.valid, Cat(ingest.o_gap.p.count, ingest.o_gap.p.first), 0)),
            ingest.o_gap.ready.eq(gap.read_strobe),
        ]

        subscribe = bank["itch.subscribe"]
        m.d.comb += [
            ingest.sub_addr.eq(subscribe.field("locate")),
            ingest.sub_data.eq(subscribe.field("subscribed")),
            ingest.sub_we.eq(subscribe.strobe),
        ]

        # Every event that leaves the ingest is counted, and the last one kept for bring-up.
        event = ingest.o_event
        taken = event.valid & event.ready
        events = bank["itch.events"].value
        with m.If(taken):
            m.d.sync += [
                events.eq(events + 1),
                bank["last_event.kind"].value.eq(Cat(event.p.kind, event.p.side, Const(0, 3), event.p.code)),
                bank["last_event.locate"].value.eq(event.p.locate),
                bank["last_event.order_ref"].value.eq(event.p.order_ref),
                bank["last_event.new_order_ref"].value.eq(event.p.new_order_ref),
                bank["last_event.shares"].value.eq(event.p.shares),
                bank["last_event.price"].value.eq(event.p.price),
                bank["last_event.match_number"].value.eq(event.p.match_number),
                bank["last_event.timestamp"].value.eq(event.p.timestamp),
            ]
