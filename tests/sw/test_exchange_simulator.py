"""Exchange simulator: fills against a small hand-built book (IOC sweeps, limits, remainders, the liquidity it took),
resting orders, rejects, timing, and a generated replay closing the loop with the position tracker."""

import random

import pytest

from t2t.book.reference import ReferenceBook
from t2t.feed import itch
from t2t.feed.generator import generate_session
from t2t.positions import PositionTracker
from t2t.trade import ouch
from t2t_sim.exchange import MATCH_NUMBER_BASE, ExchangeSimulator, reason_text

T0 = 34_200_000_000_000  # 09:30:00
LOCATE = 1


def add(ref, side, shares, price, timestamp=T0, stock="AAPL", locate=LOCATE):
    return itch.AddOrder(locate=locate, tracking=0, timestamp_ns=timestamp, order_ref=ref, side=side, shares=shares,
                         stock=stock, price=price)


def execute(ref, shares, timestamp, match=1):
    return itch.OrderExecuted(locate=LOCATE, tracking=0, timestamp_ns=timestamp, order_ref=ref,
                              executed_shares=shares, match_number=match)


def delete(ref, timestamp):
    return itch.OrderDelete(locate=LOCATE, tracking=0, timestamp_ns=timestamp, order_ref=ref)


def order(token, side, shares, price, stock="AAPL", tif=0):
    return ouch.EnterOrder(token=token, side=side, shares=shares, stock=stock, price=price, time_in_force=tif,
                           firm="FIRM", display="Y", capacity="P", intermarket_sweep="N", minimum_quantity=0,
                           cross_type="N", customer_type="N")


def packet(message):
    return ouch.encode_packet(ouch.UnsequencedData(ouch.encode_message(message)))


def book_exchange(latency_ns=0):
    """Asks 100.00 x 100 (two orders, 60 + 40), 100.01 x 200, 100.03 x 300; bids 99.99 x 100, 99.98 x 500."""
    exchange = ExchangeSimulator(latency_ns=latency_ns, symbols={"AAPL": LOCATE, "MSFT": 2})
    exchange.run([add(1, "S", 60, 1_000_000), add(2, "S", 40, 1_000_000), add(3, "S", 200, 1_000_100),
                  add(4, "S", 300, 1_000_300), add(5, "B", 100, 999_900), add(6, "B", 500, 999_800)])
    return exchange


def replies(exchange):
    """The drained replies as tuples of what matters."""
    out = []
    for reply in exchange.drain():
        message = reply.message
        # Every reply is a well-formed SoupBinTCP sequenced-data packet carrying the message.
        assert ouch.decode_outbound(ouch.decode_server_packet(reply.packet).payload) == message
        if isinstance(message, ouch.Accepted):
            out.append(("A", message.token, message.shares, message.price))
        elif isinstance(message, ouch.Executed):
            out.append(("E", message.token, message.shares, message.price, message.liquidity_flag))
        elif isinstance(message, ouch.Canceled):
            out.append(("C", message.token, message.decrement_shares, message.reason))
        else:
            out.append(("J", message.token, message.reason))
    return out


def test_ioc_buy_sweeps_levels_up_to_its_limit_and_cancels_the_remainder():
    exchange = book_exchange()
    exchange.submit(packet(order("BUY1", "B", 350, 1_000_200)), T0)
    exchange.flush()
    assert replies(exchange) == [("A", "BUY1", 350, 1_000_200), ("E", "BUY1", 100, 1_000_000, "R"),
                                 ("E", "BUY1", 200, 1_000_100, "R"), ("C", "BUY1", 50, "I")]
    # The replay's book is untouched; the shares taken are remembered per level.
    assert exchange.book.bbo(LOCATE) == (999_900, 100, 1, 1_000_000, 100, 2)
    assert exchange.taken(LOCATE) == {("S", 1_000_000): 100, ("S", 1_000_100): 200}
    assert exchange.available(LOCATE) == ([(999_900, 100), (999_800, 500)], [(1_000_300, 300)])


def test_ioc_sell_sweeps_bids_and_a_limit_stops_it():
    exchange = book_exchange()
    exchange.submit(packet(order("SELL1", "S", 1_000, 999_800)), T0)
    exchange.submit(packet(order("SELL2", "T", 10, 999_900)), T0)
    exchange.flush()
    assert replies(exchange) == [("A", "SELL1", 1_000, 999_800), ("E", "SELL1", 100, 999_900, "R"),
                                 ("E", "SELL1", 500, 999_800, "R"), ("C", "SELL1", 400, "I"),
                                 ("A", "SELL2", 10, 999_900), ("C", "SELL2", 10, "I")]
    executions = [reply for reply in exchange.replies if isinstance(reply.message, ouch.Executed)]
    assert executions == []  # drained
    assert exchange.counts["executed_shares"] == 600


def test_match_numbers_sequence_numbers_and_order_references():
    exchange = book_exchange()
    exchange.submit(packet(order("BUY1", "B", 150, 1_000_100)) + packet(order("BUY2", "B", 10, 1_000_100)), T0)
    exchange.flush()
    drained = exchange.drain()
    assert [reply.sequence for reply in drained] == list(range(1, len(drained) + 1))
    matches = [reply.message.match_number for reply in drained if isinstance(reply.message, ouch.Executed)]
    assert matches == [MATCH_NUMBER_BASE, MATCH_NUMBER_BASE + 1, MATCH_NUMBER_BASE + 2]
    references = [reply.message.order_reference for reply in drained if isinstance(reply.message, ouch.Accepted)]
    assert references == [1, 2]


def test_taken_liquidity_is_not_taken_twice_until_the_feed_removes_it():
    exchange = book_exchange()
    exchange.submit(packet(order("BUY1", "B", 100, 1_000_000)), T0)
    exchange.flush()
    exchange.drain()
    exchange.submit(packet(order("BUY2", "B", 100, 1_000_000)), T0)
    exchange.flush()
    assert replies(exchange) == [("A", "BUY2", 100, 1_000_000), ("C", "BUY2", 100, "I")]
    # The feed deletes the 60-share order: 40 of the 100 taken are still shown, still taken.
    exchange.on_itch(delete(1, T0 + 10))
    assert exchange.taken(LOCATE)[("S", 1_000_000)] == 40
    # A new 50-share offer at the level is new liquidity.
    exchange.on_itch(add(7, "S", 50, 1_000_000, T0 + 20))
    exchange.submit(packet(order("BUY3", "B", 100, 1_000_000)), T0 + 30)
    exchange.flush()
    assert replies(exchange) == [("A", "BUY3", 100, 1_000_000), ("E", "BUY3", 50, 1_000_000, "R"),
                                 ("C", "BUY3", 50, "I")]
    # The feed reports the execution of order 2 (40 shares) and removes order 7 (the 50 BUY3 took):
    exchange.on_itch(execute(2, 40, T0 + 40))
    exchange.on_itch(delete(7, T0 + 50))
    assert ("S", 1_000_000) not in exchange.taken(LOCATE)
    assert exchange.book.bbo(LOCATE)[3:] == (1_000_100, 200, 1)


def test_orders_reach_the_exchange_after_the_latency():
    exchange = book_exchange(latency_ns=1_000)
    exchange.submit(packet(order("BUY1", "B", 100, 1_000_000)), T0 + 100)
    # Before the order arrives (T0 + 1100) the 100.00 offers are deleted and a 99.97 offer appears.
    exchange.on_itch(delete(1, T0 + 500))
    exchange.on_itch(add(8, "S", 30, 999_700, T0 + 1_100))  # at the arrival time: applied first
    assert exchange.pending == 1
    exchange.on_itch(delete(2, T0 + 1_101))                 # after the arrival: the order is matched first
    assert exchange.pending == 0
    drained = exchange.drain()
    assert [reply.timestamp_ns for reply in drained] == [T0 + 1_100] * 4
    assert [(type(reply.message).__name__, getattr(reply.message, "shares", None),
             getattr(reply.message, "price", None)) for reply in drained] == [
        ("Accepted", 100, 1_000_000), ("Executed", 30, 999_700), ("Executed", 40, 1_000_000),
        ("Canceled", None, None)]


def test_orders_tagged_with_a_feed_position():
    exchange = ExchangeSimulator(symbols={"AAPL": LOCATE})
    exchange.on_itch(add(1, "S", 100, 1_000_000))
    exchange.submit(packet(order("BUY1", "B", 100, 1_000_000)), after_messages=2)
    exchange.on_itch(add(2, "S", 100, 999_900, T0 + 5))
    exchange.on_itch(delete(2, T0 + 6))
    assert replies(exchange) == [("A", "BUY1", 100, 1_000_000), ("E", "BUY1", 100, 999_900, "R")]
    with pytest.raises(ValueError):
        exchange.submit(packet(order("BUY2", "B", 1, 1)), T0, after_messages=1)


def test_rejects_with_their_reason_codes():
    exchange = book_exchange()
    exchange.submit(packet(order("BUY1", "B", 10, 1_000_000)), T0)
    exchange.flush()
    exchange.drain()
    for message in (order("BUY1", "B", 10, 1_000_000),            # duplicate token
                    order("BAD1", "B", 10, 1_000_000, "ZZZZ"),    # unknown symbol
                    order("BAD2", "B", 0, 1_000_000),             # zero shares
                    order("BAD3", "B", 2_000_000, 1_000_000),     # above the safety threshold
                    order("BAD4", "B", 10, 0),                    # no price
                    order("BAD5", "B", 10, 1_000_050),            # sub-penny above $1
                    order("BAD6", "B", 10, itch.MAX_PRICE4 + 100)):
        exchange.submit_message(message, T0)
    exchange.flush()
    assert replies(exchange) == [("J", "BUY1", "O"), ("J", "BAD1", "S"), ("J", "BAD2", "Z"), ("J", "BAD3", "Z"),
                                 ("J", "BAD4", "X"), ("J", "BAD5", "X"), ("J", "BAD6", "X")]
    assert exchange.rejects == {"O": 1, "S": 1, "Z": 2, "X": 3}
    assert reason_text("H") == "stock halted" and reason_text("I").startswith("immediate or cancel")
    # Sub-penny prices below $1.00 are fine.
    exchange.submit_message(order("CHEAP", "S", 10, 9_950, "MSFT"), T0)
    exchange.flush()
    assert replies(exchange) == [("A", "CHEAP", 10, 9_950), ("C", "CHEAP", 10, "I")]


def test_halted_and_closed_stocks_are_rejected_and_duplicates_can_be_ignored():
    exchange = book_exchange()
    exchange.on_itch(itch.StockTradingAction(locate=LOCATE, tracking=0, timestamp_ns=T0 + 10, stock="AAPL",
                                             trading_state="H", reserved=" ", reason="T1"))
    exchange.submit(packet(order("BUY1", "B", 10, 1_000_000)), T0 + 20)
    exchange.on_itch(itch.StockTradingAction(locate=LOCATE, tracking=0, timestamp_ns=T0 + 30, stock="AAPL",
                                             trading_state="T", reserved=" ", reason=""))
    exchange.submit(packet(order("BUY2", "B", 10, 1_000_000)), T0 + 40)
    exchange.on_itch(itch.SystemEvent(locate=0, tracking=0, timestamp_ns=T0 + 50, event_code="M"))
    exchange.submit(packet(order("BUY3", "B", 10, 1_000_000)), T0 + 60)
    exchange.flush()
    assert replies(exchange) == [("J", "BUY1", "H"), ("A", "BUY2", 10, 1_000_000),
                                 ("E", "BUY2", 10, 1_000_000, "R"), ("J", "BUY3", "C")]
    quiet = ExchangeSimulator(symbols={"AAPL": LOCATE}, duplicate_tokens="ignore")
    quiet.submit_message(order("T1", "B", 10, 1_000_000), T0)
    quiet.submit_message(order("T1", "B", 10, 1_000_000), T0)
    quiet.flush()
    assert replies(quiet) == [("A", "T1", 10, 1_000_000), ("C", "T1", 10, "I")]
    assert quiet.counts["ignored"] == 1


def test_symbols_come_from_the_stock_directory():
    exchange = ExchangeSimulator()
    exchange.submit_message(order("EARLY", "B", 10, 1_000_000), T0 - 1)
    exchange.on_itch(itch.StockDirectory(
        locate=3, tracking=0, timestamp_ns=T0, stock="NVDA", market_category="Q", financial_status="N",
        round_lot_size=100, round_lots_only="N", issue_classification="C", issue_subtype="Z", authenticity="P",
        short_sale_threshold="N", ipo_flag=" ", luld_reference_price_tier="1", etp_flag="N", etp_leverage_factor=0,
        inverse_indicator="N"))
    exchange.submit_message(order("LATE", "B", 10, 1_000_000, "NVDA"), T0)
    exchange.flush()
    assert replies(exchange) == [("J", "EARLY", "S"), ("A", "LATE", 10, 1_000_000), ("C", "LATE", 10, "I")]


def test_resting_day_order_queue_crossing_and_cancel():
    exchange = book_exchange()
    # Joins the 99.99 bid behind the 100 shown there.
    exchange.submit(packet(order("DAY1", "B", 100, 999_900, tif=99_998)), T0)
    exchange.flush()
    assert replies(exchange) == [("A", "DAY1", 100, 999_900)]
    assert exchange.resting["DAY1"].ahead == 100
    exchange.on_itch(add(10, "B", 50, 999_900, T0 + 10))          # behind us
    exchange.on_itch(execute(5, 100, T0 + 20))                   # the 100 ahead trade: nothing for us yet
    assert replies(exchange) == [] and exchange.resting["DAY1"].ahead == 0
    exchange.on_itch(execute(10, 30, T0 + 30))                   # 30 traded behind us: we would have had them
    assert replies(exchange) == [("E", "DAY1", 30, 999_900, "A")]
    exchange.on_itch(delete(10, T0 + 40))
    # A new offer at our bid would have traded with us, at our price.
    exchange.on_itch(add(11, "S", 200, 999_900, T0 + 50))
    assert replies(exchange) == [("E", "DAY1", 70, 999_900, "A")]
    assert "DAY1" not in exchange.resting
    assert exchange.taken(LOCATE)[("S", 999_900)] == 70

    exchange.submit(packet(order("DAY2", "S", 300, 1_000_300, tif=99_998)), T0 + 60)
    exchange.flush()
    exchange.drain()
    assert exchange.resting["DAY2"].ahead == 300
    exchange.on_itch(delete(4, T0 + 70))                         # the queue ahead leaves: we are first
    assert exchange.resting["DAY2"].ahead == 0
    cancel = ouch.CancelOrder(token="DAY2", shares=100)
    exchange.submit(packet(cancel), T0 + 80)
    exchange.flush()
    assert replies(exchange) == [("C", "DAY2", 200, "U")]
    exchange.submit_message(ouch.CancelOrder(token="DAY2", shares=0), T0 + 90)
    exchange.submit_message(ouch.CancelOrder(token="NOPE", shares=0), T0 + 90)
    exchange.flush()
    assert replies(exchange) == [("C", "DAY2", 100, "U")]
    assert exchange.resting == {}


def test_malformed_client_bytes_raise():
    exchange = book_exchange()
    with pytest.raises(ouch.SoupBinTcpFormatError):
        exchange.submit(packet(order("BUY1", "B", 1, 1_000_000))[:-3], T0)
    # Login and heartbeats are not orders.
    heartbeat = ouch.encode_packet(ouch.ClientHeartbeat())
    assert exchange.submit(heartbeat, T0) == 0


def test_generated_replay_closes_the_loop_without_breaking_the_book():
    """IOC and DAY orders on a generated session: the exchange's book stays the replay's, every order's shares
    are accounted for, and the tracker's positions equal the exchange's executions."""
    rng = random.Random(5)
    exchange = ExchangeSimulator(latency_ns=3_000)
    tracker = PositionTracker()
    mirror = ReferenceBook()
    names, sent, executed = {}, {}, {}
    for message in generate_session(seed=11, messages=20_000):
        exchange.on_itch(message)
        if message.type == "R":
            names[message.locate] = message.stock
        change = mirror.apply(message)
        for reply in exchange.drain():
            assert tracker.on_server_packet(reply.packet, sequence=reply.sequence), reply
            if isinstance(reply.message, ouch.Executed):
                token = reply.message.token
                executed[token] = executed.get(token, 0) + reply.message.shares
        if change is None or not (change.bid_px and change.ask_px) or rng.random() > 0.02:
            continue
        stock = names[change.locate]
        side = rng.choice("BS")
        through = 100 * rng.randrange(-1, 3)  # a cent behind the touch up to two cents through it
        price = change.ask_px + through if side == "B" else change.bid_px - through
        entered = order(f"GEN{len(sent):011d}", side, rng.choice((100, 300, 1_000, 5_000)), max(price, 100), stock,
                        rng.choice((0, 0, 99_998)))
        tracker.order_sent(entered, message.timestamp_ns)
        exchange.submit(packet(entered), message.timestamp_ns)
        sent[entered.token] = entered
    exchange.flush()
    for reply in exchange.drain():
        assert tracker.on_server_packet(reply.packet, sequence=reply.sequence)
    for locate in names:
        assert exchange.book.bbo(locate) == mirror.bbo(locate)
        assert exchange.book.depth(locate, 1000) == mirror.depth(locate, 1000)
    assert len(sent) > 50 and exchange.counts["executions"] > 20 and not tracker.refused
    for token, entered in sent.items():
        record = tracker.orders[token]
        resting = exchange.resting.get(token)
        if record.state.name == "REJECTED":
            continue
        assert record.filled == executed.get(token, 0)
        assert record.filled + record.canceled + (resting.shares if resting else 0) == entered.shares
        assert (resting is not None) == record.state.working
    for stock in names.values():
        net = sum(executed.get(token, 0) * (1 if entered.side == "B" else -1)
                  for token, entered in sent.items() if entered.stock == stock)
        assert tracker.position(stock).net_shares == net
