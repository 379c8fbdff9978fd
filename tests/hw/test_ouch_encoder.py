"""OuchEncoder: TX packets reassembled and checked field by field with the host decoder (t2t.trade.ouch)."""

import random

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from t2t.trade import ouch
from t2t_gateware.streams import MacBeat, OrderRequest
from t2t_gateware.trade.ouch_encoder import PACKET_BEATS, OrderLogEntry, OuchEncoder

PREFIX = "T2TQA1"
FIRM = "FIRM"
SYMBOLS = {0: "AAPL    ", 3: "MSFT    ", 7: "ZVZZT   ", 255: "QQQ     "}
# Cycles from the order being taken to its first TX beat being sent (both happen in the same cycle).
LATENCY = 0
# Cycles between the first beats of back-to-back orders when TX is always ready.
ORDER_INTERVAL = PACKET_BEATS


def bcd(number):
    """The BCD form of a token number, as the encoder's ``token_start`` and order log carry it."""
    return int(f"{number:08d}", 16)


def text(value):
    """A text port value: character i in bits [8*i:8*i+8]."""
    return int.from_bytes(value.encode("ascii"), "little")


def pack(shape, fields):
    layout = data.Layout.cast(shape)
    value = 0
    for name, item in layout:
        field_value = int(fields.get(name, 0)) & ((1 << item.width) - 1)
        value |= field_value << item.offset
    return value


def unpack(shape, value):
    return {name: (value >> item.offset) & ((1 << item.width) - 1) for name, item in data.Layout.cast(shape)}


def random_order(rng, slots=tuple(SYMBOLS)):
    return {
        "slot": rng.choice(slots),
        "locate": rng.randrange(1 << 16),
        "side": rng.randrange(2),
        "shares": rng.choice([1, 100, rng.randrange(1 << 32)]),
        "price": rng.choice([1, 1_234_500, rng.randrange(1 << 32)]),
        "time_in_force": rng.choice([0, 99998, 99999, rng.randrange(1 << 32)]),
        "timestamp": rng.randrange(1 << 48),
        # How many cycles before the order is offered its market event arrived.
        "age": rng.randrange(0, 40),
    }


class EncoderBench:
    """Drives orders (each offered from its ``after`` cycle, held until taken), TX and log ``ready`` per cycle,
    symbol writes and token resets (``resets``: cycle -> first token number), and records what the encoder does,
    cycle by cycle.

    Cycle numbers count from the start of the traffic; ``stamp`` is the cycle number mod 2**16.
    """

    def __init__(self, *, capacity="P", customer_type="N"):
        self.dut = OuchEncoder(capacity=capacity, customer_type=customer_type)

    def run(self, orders, *, tx_ready=lambda cycle: True, log_ready=lambda cycle: True, writes=(), resets=None,
            stamp_offset=0, tail=30, max_cycles=200_000):
        dut = self.dut
        self.offered, self.taken, self.beats, self.logs, self.exhausted = {}, {}, [], [], []
        writes = sorted(writes)
        resets = resets or {}
        pending = list(enumerate(orders))

        async def testbench(ctx):
            ctx.set(dut.token_prefix, text(PREFIX))
            ctx.set(dut.firm, text(FIRM))
            for slot, name in SYMBOLS.items():
                ctx.set(dut.symbol_we, 1)
                ctx.set(dut.symbol_slot, slot)
                ctx.set(dut.symbol_name, text(name))
                await ctx.tick()
            ctx.set(dut.symbol_we, 0)
            current, held_beat, idle_cycles, cycle = None, None, 0, 0
            while idle_cycles < tail:
                assert cycle < max_cycles, "the encoder stopped"
                stamp = (cycle + stamp_offset) & 0xFFFF
                ctx.set(dut.stamp, stamp)
                write = writes[0] if writes and writes[0][0] == cycle else None
                ctx.set(dut.symbol_we, write is not None)
                if write is not None:
                    writes.pop(0)
                    ctx.set(dut.symbol_slot, write[1])
                    ctx.set(dut.symbol_name, text(write[2]))
                ctx.set(dut.token_reset, cycle in resets)
                if cycle in resets:
                    ctx.set(dut.token_start, bcd(resets[cycle]))
                if current is None and pending and pending[0][1].get("after", 0) <= cycle:
                    current = pending.pop(0)
                    index, order = current
                    self.offered[index] = cycle
                    payload = dict(order, stamp=(stamp - order["age"]) & 0xFFFF)
                    ctx.set(dut.i_order.payload.as_value(), pack(OrderRequest, payload))
                ctx.set(dut.i_order.valid, current is not None)
                ready = tx_ready(cycle)
                ctx.set(dut.o_tx.ready, ready)
                ctx.set(dut.o_log.ready, log_ready(cycle))

                if current is not None and ctx.get(dut.i_order.ready):
                    self.taken[current[0]] = cycle
                    current = None
                beat = None
                if ctx.get(dut.o_tx.valid):
                    beat = unpack(MacBeat, ctx.get(dut.o_tx.payload.as_value()))
                    if ready:
                        self.beats.append(dict(beat, cycle=cycle))
                # Stream rule: a beat offered and not taken is offered again, unchanged.
                if held_beat is not None:
                    assert beat == held_beat, f"cycle {cycle}: TX withdrew or changed a held beat"
                held_beat = beat if beat is not None and not ready else None
                if ctx.get(dut.tokens_exhausted):
                    self.exhausted.append(cycle)
                if ctx.get(dut.o_log.valid) and log_ready(cycle):
                    self.logs.append(unpack(OrderLogEntry, ctx.get(dut.o_log.payload.as_value())))

                busy = current is not None or pending or beat is not None or writes
                idle_cycles = 0 if busy else idle_cycles + 1
                await ctx.tick()
                cycle += 1
            self.orders_sent = ctx.get(dut.orders_sent)
            self.log_dropped = ctx.get(dut.log_dropped)
            self.tokens_exhausted = ctx.get(dut.tokens_exhausted)

        simulator = Simulator(dut)
        simulator.add_clock(1e-8)
        simulator.add_testbench(testbench)
        simulator.run()
        return self

    def packets(self):
        """The TX beats grouped into packets: (bytes, cycle of the first beat, cycles of all beats)."""
        packets, current = [], None
        for beat in self.beats:
            if beat["first"]:
                assert current is None, "a packet started inside another"
                current = (bytearray(), beat["cycle"], [])
            assert current is not None, "a beat outside a packet"
            assert beat["error"] == 0
            keep = beat["keep"]
            lanes = keep.bit_length()
            assert keep == (1 << lanes) - 1, "keep must be contiguous from lane 0"
            assert beat["last"] or keep == 0xFF, "only the last beat may be partial"
            current[0].extend(beat["data"].to_bytes(8, "little")[:lanes])
            current[2].append(beat["cycle"])
            if beat["last"]:
                packets.append((bytes(current[0]), current[1], current[2]))
                current = None
        assert current is None, "the last packet never ended"
        return packets


def decode(packet):
    soup = ouch.decode_client_packet(packet)
    assert isinstance(soup, ouch.UnsequencedData)
    message = ouch.decode_inbound(soup.payload)
    assert isinstance(message, ouch.EnterOrder)
    return message


def expected_message(order, sequence, stock, *, capacity="P", customer_type="N"):
    return ouch.EnterOrder(
        token=f"{PREFIX}{sequence:08d}", side="S" if order["side"] else "B", shares=order["shares"],
        stock=stock.rstrip(" "), price=order["price"], time_in_force=order["time_in_force"], firm=FIRM,
        display="Y", capacity=capacity, intermarket_sweep="N", minimum_quantity=0, cross_type="N",
        customer_type=customer_type)


def check_against_orders(bench, orders, *, sequences=None, stocks=None, stamp_offset=0):
    """Every order sent once, in order, every field as ordered; log entries match; returns the tokens."""
    packets = bench.packets()
    assert len(packets) == len(orders) == len(bench.taken)
    sequences = sequences or list(range(1, len(orders) + 1))
    tokens = []
    for index, (order, (packet, first_cycle, beat_cycles)) in enumerate(zip(orders, packets)):
        assert len(packet) == 52 and len(beat_cycles) == PACKET_BEATS
        stock = (stocks or {}).get(index, SYMBOLS[order["slot"]])
        message = decode(packet)
        assert message == expected_message(order, sequences[index], stock)
        tokens.append(message.token)
        assert first_cycle - bench.taken[index] == LATENCY
    assert bench.orders_sent == len(orders)

    assert len(bench.logs) == len(orders)
    for index, (order, log, (_packet, first_cycle, _cycles)) in enumerate(zip(orders, bench.logs, packets)):
        trigger_stamp = (bench.offered[index] + stamp_offset - order["age"]) & 0xFFFF
        assert log == {
            "token_number": bcd(sequences[index]), "slot": order["slot"], "locate": order["locate"],
            "side": order["side"], "shares": order["shares"], "price": order["price"], "timestamp": order["timestamp"],
            "trigger_stamp": trigger_stamp, "tx_stamp": (first_cycle + stamp_offset) & 0xFFFF,
        }
        latency = (log["tx_stamp"] - log["trigger_stamp"]) & 0xFFFF
        assert latency == order["age"] + bench.taken[index] - bench.offered[index]
    return tokens


def test_back_to_back_orders_when_tx_ready_then_first_beat_same_cycle_and_one_order_per_7_cycles():
    rng = random.Random(1)
    orders = [random_order(rng) for _ in range(60)]
    bench = EncoderBench().run(orders)
    tokens = check_against_orders(bench, orders)
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
    starts = [first_cycle for _packet, first_cycle, _cycles in bench.packets()]
    assert starts[0] == bench.offered[0] + LATENCY
    assert {b - a for a, b in zip(starts, starts[1:])} == {ORDER_INTERVAL}
    assert all(cycles == list(range(cycles[0], cycles[0] + PACKET_BEATS)) for _p, _f, cycles in bench.packets())
    assert bench.log_dropped == 0


def test_order_arriving_at_an_idle_encoder_is_sent_in_the_cycle_it_arrives():
    rng = random.Random(2)
    orders = [dict(random_order(rng), after=20 * i) for i in range(20)]
    bench = EncoderBench().run(orders)
    check_against_orders(bench, orders)
    for index, (_packet, first_cycle, _cycles) in enumerate(bench.packets()):
        assert bench.taken[index] == bench.offered[index] == first_cycle


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_random_tx_backpressure_loses_and_reorders_nothing(seed):
    rng = random.Random(seed)
    orders = [dict(random_order(rng), after=rng.randrange(0, 1500)) for _ in range(120)]
    orders.sort(key=lambda order: order["after"])
    ready_pattern = [rng.random() < 0.6 for _ in range(10_000)]
    bench = EncoderBench().run(orders, tx_ready=lambda cycle: ready_pattern[cycle % len(ready_pattern)],
                               stamp_offset=0xFF00)
    tokens = check_against_orders(bench, orders, stamp_offset=0xFF00)
    assert tokens == sorted(tokens)
    assert [int(token[len(PREFIX):]) for token in tokens] == list(range(1, len(orders) + 1))


def test_token_reset_restarts_the_sequence_after_the_packet_in_flight():
    rng = random.Random(6)
    orders = [dict(random_order(rng), after=0) for _ in range(6)]
    # Reset in the cycle the 3rd order is taken (14), before its token is sent: it keeps 3, the next one gets 1.
    bench = EncoderBench().run(orders, resets={14: 1})
    check_against_orders(bench, orders, sequences=[1, 2, 3, 1, 2, 3])


def test_token_reset_while_tx_holds_the_first_beat_then_that_order_keeps_its_token():
    rng = random.Random(7)
    orders = [dict(random_order(rng), after=0) for _ in range(3)]
    bench = EncoderBench().run(orders, tx_ready=lambda cycle: cycle >= 5, resets={2: 500})
    check_against_orders(bench, orders, sequences=[1, 500, 501])


def test_token_reset_to_a_start_number_continues_from_it_across_decimal_carries():
    rng = random.Random(11)
    # The reset applies 2 cycles after its strobe: orders come later.
    orders = [dict(random_order(rng), after=2) for _ in range(4)]
    bench = EncoderBench().run(orders, resets={0: 1_999_998})
    check_against_orders(bench, orders, sequences=[1_999_998, 1_999_999, 2_000_000, 2_000_001])


def test_after_token_99999999_orders_are_held_until_a_token_reset():
    rng = random.Random(12)
    orders = [dict(random_order(rng), after=2) for _ in range(4)]
    bench = EncoderBench().run(orders, resets={0: 99_999_998, 100: 5})
    check_against_orders(bench, orders, sequences=[99_999_998, 99_999_999, 5, 6])
    # Order 1's packet ends at cycle 15; the held order goes out once the reset applies (2 cycles after the strobe).
    assert bench.exhausted == list(range(16, 102))
    assert bench.taken[2] == 102


def test_symbol_written_mid_session_applies_to_orders_taken_after_the_write():
    rng = random.Random(8)
    orders = [dict(random_order(rng, slots=(3,)), after=10 * i) for i in range(4)]
    # Order 1 is taken at cycle 10, the same cycle as the write: it still reads the old name.
    bench = EncoderBench().run(orders, writes=[(10, 3, "NVDA    ")])
    check_against_orders(bench, orders, stocks={2: "NVDA    ", 3: "NVDA    "})


def test_log_not_drained_then_entries_dropped_and_counted_and_orders_still_sent():
    rng = random.Random(9)
    orders = [random_order(rng) for _ in range(5)]
    bench = EncoderBench().run(orders, log_ready=lambda cycle: cycle >= 60, tail=60)
    packets = bench.packets()
    assert [decode(packet).token for packet, _c, _cs in packets] == [f"{PREFIX}{i:08d}" for i in range(1, 6)]
    assert bench.log_dropped == 4
    assert [log["token_number"] for log in bench.logs] == [bcd(1)]


def test_capacity_and_customer_type_are_parameters():
    rng = random.Random(10)
    order = random_order(rng)
    bench = EncoderBench(capacity="A", customer_type="R").run([order])
    [(packet, _first, _cycles)] = bench.packets()
    assert decode(packet) == expected_message(order, 1, SYMBOLS[order["slot"]], capacity="A", customer_type="R")
