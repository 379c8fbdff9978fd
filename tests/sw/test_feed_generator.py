"""Session generator: determinism, the system-event skeleton, and a replay that checks every order event."""

from collections import Counter

import pytest

from t2t.feed.binaryfile import iter_messages
from t2t.feed.generator import (
    MARKET_OPEN_NS, PENNY, generate_session, generate_session_bytes, minimum_messages, write_session,
)
from t2t.feed.itch import decode, encode

SYMBOLS = ("AAPL", "MSFT", "AMZN", "IBM", "TSLA")
MESSAGES = 30_000


@pytest.fixture(scope="module")
def session():
    return list(generate_session(seed=5, symbols=SYMBOLS, messages=MESSAGES))


class ReplayBook:
    """An independent, deliberately plain model of the book: live orders by reference, checked on every event."""

    def __init__(self, directory):
        self.directory = directory         # locate -> stock
        self.orders = {}                   # ref -> [locate, side, price, shares]
        self.used_refs = set()

    def level_prices(self, locate, side):
        return [price for order_locate, order_side, price, _ in self.orders.values()
                if order_locate == locate and order_side == side]

    def add(self, ref, locate, side, price, shares):
        assert ref not in self.used_refs, f"order reference {ref} reused"
        assert side in ("B", "S")
        assert shares > 0
        assert price > 0 and price % PENNY == 0, f"price {price} off the penny grid"
        self.used_refs.add(ref)
        self.orders[ref] = [locate, side, price, shares]

    def live(self, ref, locate):
        assert ref in self.orders, f"reference {ref} is not a live order"
        order = self.orders[ref]
        assert order[0] == locate, "message locate differs from the order's"
        return order

    def reduce(self, ref, locate, shares):
        order = self.live(ref, locate)
        assert 0 < shares <= order[3], f"reduces {order[3]} shares by {shares}"
        order[3] -= shares
        if order[3] == 0:
            del self.orders[ref]


def replay(messages):
    """Apply ``messages`` to a :class:`ReplayBook`, asserting lifecycle consistency; return the book and events."""
    directory = {m.locate: m.stock for m in messages if m.type == "R"}
    book = ReplayBook(directory)
    halted = set()
    trades_while_halted = 0
    # Crossing can only appear when an order enters the book, so check the entering symbol then.
    check_crossed = []
    for message in messages:
        kind = message.type
        if kind in ("A", "F"):
            assert directory[message.locate] == message.stock
            book.add(message.order_ref, message.locate, message.side, message.price, message.shares)
            check_crossed.append(message.locate)
        elif kind in ("E", "C"):
            locate, side, price, _ = book.live(message.order_ref, message.locate)
            best = max(book.level_prices(locate, "B")) if side == "B" else min(book.level_prices(locate, "S"))
            assert price == best, "executions hit the best price of their side"
            book.reduce(message.order_ref, message.locate, message.executed_shares)
            trades_while_halted += message.locate in halted
        elif kind == "X":
            order = book.live(message.order_ref, message.locate)
            assert message.cancelled_shares < order[3], "a partial cancel leaves shares"
            book.reduce(message.order_ref, message.locate, message.cancelled_shares)
        elif kind == "D":
            book.live(message.order_ref, message.locate)
            del book.orders[message.order_ref]
        elif kind == "U":
            locate, side, _, _ = book.live(message.order_ref, message.locate)
            del book.orders[message.order_ref]
            book.add(message.new_order_ref, locate, side, message.price, message.shares)
            check_crossed.append(locate)
        elif kind in ("P", "Q"):
            assert directory[message.locate] == message.stock
            trades_while_halted += message.locate in halted
        elif kind == "H":
            (halted.add if message.trading_state == "H" else halted.discard)(message.locate)
        while check_crossed:
            locate = check_crossed.pop()
            bids, asks = book.level_prices(locate, "B"), book.level_prices(locate, "S")
            if bids and asks:
                assert max(bids) < min(asks), f"book of {directory[locate]} crossed"
    assert trades_while_halted == 0
    return book


def test_same_seed_gives_the_same_session_and_another_seed_does_not(session):
    assert list(generate_session(seed=5, symbols=SYMBOLS, messages=MESSAGES)) == session
    other = list(generate_session(seed=6, symbols=SYMBOLS, messages=MESSAGES))
    assert other != session and len(other) == len(session)


def test_session_has_exactly_the_requested_number_of_messages(session):
    assert len(session) == MESSAGES
    assert len(list(generate_session(seed=1, symbols=("A",), messages=minimum_messages(1)))) == minimum_messages(1)


def test_session_skeleton_of_system_events_directory_and_trading_state(session):
    n = len(SYMBOLS)
    assert (session[0].type, session[0].event_code) == ("S", "O")
    directory = session[1:1 + n]
    assert [(m.type, m.locate, m.stock) for m in directory] == [("R", i + 1, s) for i, s in enumerate(SYMBOLS)]
    assert all(m.round_lot_size == 100 for m in directory)
    assert [(m.type, m.trading_state) for m in session[1 + n:1 + 2 * n]] == [("H", "T")] * n
    assert [m.event_code for m in session[1 + 2 * n:3 + 2 * n]] == ["S", "Q"]
    assert [(m.type, m.event_code) for m in session[-3:]] == [("S", "M"), ("S", "E"), ("S", "C")]
    assert all(m.locate == 0 for m in session if m.type == "S")


def test_timestamps_start_at_the_open_and_never_decrease(session):
    times = [m.timestamp_ns for m in session]
    assert times[0] == MARKET_OPEN_NS
    assert all(earlier <= later for earlier, later in zip(times, times[1:]))


def test_replay_finds_a_consistent_order_lifecycle(session):
    book = replay(session)
    assert book.orders, "a session ends with resting orders"


def test_replay_is_consistent_for_other_seeds_and_a_single_symbol():
    replay(list(generate_session(seed=99, symbols=("ONLY",), messages=5_000)))
    replay(list(generate_session(seed=7, symbols=SYMBOLS, messages=5_000)))


def test_one_symbol_is_halted_then_resumed(session):
    opening_states = len(SYMBOLS)
    actions = [m for m in session if m.type == "H"][opening_states:]
    assert [(m.trading_state, m.reason) for m in actions] == [("H", "T1"), ("T", "")]
    assert actions[0].locate == actions[1].locate
    assert session.index(actions[0]) < session.index(actions[1])


def test_message_mix_resembles_a_real_day(session):
    counts = Counter(m.type for m in session)
    share = {kind: counts[kind] / len(session) for kind in counts}
    assert 0.37 <= share["A"] + share["F"] <= 0.45
    assert 0.30 <= share["D"] <= 0.38
    assert 0 < share["F"] < share["A"]
    for kind in ("E", "C", "X", "U", "P"):
        assert counts[kind] > 0, kind
    assert 0 < counts["Q"] < 0.005 * len(session)


def test_executions_with_price_carry_a_price_apart_from_the_order(session):
    order_price = {}
    priced = 0
    for m in session:
        if m.type in ("A", "F"):
            order_price[m.order_ref] = m.price
        elif m.type == "U":
            order_price[m.new_order_ref] = m.price
        elif m.type == "C":
            assert m.price > 0 and m.price != order_price[m.order_ref]
            priced += 1
    assert priced > 0


def test_match_numbers_are_unique_and_increasing(session):
    match_numbers = [m.match_number for m in session if m.type in ("E", "C", "P", "Q")]
    assert match_numbers == sorted(set(match_numbers))


def test_bytes_variant_and_file_writer_agree_with_the_objects(tmp_path, session):
    raw = list(generate_session_bytes(seed=5, symbols=SYMBOLS, messages=2_000))
    assert raw == [encode(m) for m in generate_session(seed=5, symbols=SYMBOLS, messages=2_000)]
    assert [decode(r) for r in raw][:20] == session[:20]
    path = tmp_path / "session.itch.gz"
    assert write_session(path, seed=5, symbols=SYMBOLS, messages=2_000) == 2_000
    assert [encode(m) for m in iter_messages(path)] == raw


@pytest.mark.parametrize("symbols, messages", [
    ((), 100),
    (("AAPL", "AAPL"), 100),
    (("TOOLONGSYM",), 100),
    (("BAD SYM",), 100),
    (("AAPL", "MSFT"), minimum_messages(2) - 1),
])
def test_bad_arguments_are_refused(symbols, messages):
    with pytest.raises(ValueError):
        generate_session(seed=1, symbols=symbols, messages=messages)


def test_the_book_settles_at_the_resting_cap_instead_of_growing_without_bound():
    # Two symbols at 20 resting orders each: the cap (40) is reached early in 6,000 messages.
    messages = list(generate_session(seed=9, symbols=("AAPL", "MSFT"), messages=6_000, resting_per_symbol=20))
    live, adds_after_cap, reached_at = set(), 0, None
    for index, message in enumerate(messages):
        if message.type in ("A", "F"):
            adds_after_cap += reached_at is not None
            live.add(message.order_ref)
        elif message.type == "U":
            live.discard(message.order_ref)
            live.add(message.new_order_ref)
        elif message.type == "D":
            live.discard(message.order_ref)
        if reached_at is None and len(live) >= 40:
            reached_at = index
    # Full executions leave without a message the set above sees, so it counts at least the live orders.
    assert reached_at is not None and reached_at < 1_000
    book = replay(messages)
    assert len(book.orders) <= 40
    # Adds continue after the cap (each add replaces a delete, and executions make room).
    assert adds_after_cap > 1_000


def test_resting_cap_must_be_positive():
    with pytest.raises(ValueError):
        generate_session(seed=1, resting_per_symbol=0)
