"""Reference book: hand-computed books, then the same BBO sequence as itch-book (an independent C++ book)."""

import datetime

import pytest

from t2t.book import BboChange, Level, ReferenceBook, bbo_changes_of_binaryfile
from t2t.feed.binaryfile import write_binaryfile
from t2t.feed.generator import generate_session
from t2t.feed.itch import (AddOrder, AddOrderMpid, OrderCancel, OrderDelete, OrderExecuted, OrderExecutedWithPrice,
                           OrderReplace, Trade)

T0 = 34_200_000_000_000


def add(ref, side, shares, price, locate=1, t=0):
    return AddOrder(locate, 0, T0 + t, ref, side, shares, "AAPL", price)


def test_adds_at_one_price_then_one_level_with_summed_shares_and_order_count():
    book = ReferenceBook()
    changes = book.run([add(1, "B", 100, 1_000_000), add(2, "B", 50, 1_000_000, t=1),
                        AddOrderMpid(1, 0, T0 + 2, 3, "B", 25, "AAPL", 990_000, "GSCO"),
                        add(4, "S", 10, 1_010_000, t=3)])
    assert book.depth(1) == ([Level(1_000_000, 150, 2), Level(990_000, 25, 1)], [Level(1_010_000, 10, 1)])
    # The add behind the best bid does not change the top, so it emits nothing.
    assert changes == [BboChange(T0, 1, 1_000_000, 100, 1, 0, 0, 0),
                       BboChange(T0 + 1, 1, 1_000_000, 150, 2, 0, 0, 0),
                       BboChange(T0 + 3, 1, 1_000_000, 150, 2, 1_010_000, 10, 1)]


def test_best_level_empties_then_next_level_surfaces():
    book = ReferenceBook()
    book.run([add(1, "S", 100, 2_000_000), add(2, "S", 30, 2_000_100), add(3, "S", 40, 2_000_200)])
    assert book.apply(OrderDelete(1, 0, T0 + 5, 1)) == BboChange(T0 + 5, 1, 0, 0, 0, 2_000_100, 30, 1)
    assert book.apply(OrderExecuted(1, 0, T0 + 6, 2, 30, 1)) == BboChange(T0 + 6, 1, 0, 0, 0, 2_000_200, 40, 1)
    assert book.apply(OrderCancel(1, 0, T0 + 7, 3, 40)) == BboChange(T0 + 7, 1, 0, 0, 0, 0, 0, 0)
    assert book.live_orders == 0


def test_execute_with_price_reduces_the_order_at_its_own_level():
    book = ReferenceBook()
    book.run([add(1, "B", 100, 500_000), add(2, "B", 100, 499_900)])
    change = book.apply(OrderExecutedWithPrice(1, 0, T0 + 1, 1, 60, 7, "Y", 499_900))
    assert change == BboChange(T0 + 1, 1, 500_000, 40, 1, 0, 0, 0)
    assert book.depth(1)[0] == [Level(500_000, 40, 1), Level(499_900, 100, 1)]


def test_replace_keeps_side_and_locate_and_moves_price_and_shares():
    book = ReferenceBook()
    book.run([add(1, "S", 100, 300_000, locate=2), add(2, "S", 100, 300_100, locate=2)])
    # The replace message carries neither side nor stock: both come from the original order.
    change = book.apply(OrderReplace(2, 0, T0 + 1, 1, 9, 70, 300_200))
    assert change == BboChange(T0 + 1, 2, 0, 0, 0, 300_100, 100, 1)
    assert book.depth(2) == ([], [Level(300_100, 100, 1), Level(300_200, 70, 1)])
    assert book.apply(OrderDelete(2, 0, T0 + 2, 9)) is None
    assert book.depth(2) == ([], [Level(300_100, 100, 1)])
    assert book.counts["replaces"] == 1 and book.unknown_refs == 0


def test_replace_to_an_identical_top_then_no_change_emitted():
    book = ReferenceBook()
    book.apply(add(1, "B", 100, 100_000))
    assert book.apply(OrderReplace(1, 0, T0 + 1, 1, 2, 100, 100_000)) is None


def test_unknown_references_then_counted_and_ignored():
    book = ReferenceBook()
    book.apply(add(1, "B", 100, 100_000))
    for message in (OrderDelete(1, 0, T0, 77), OrderExecuted(1, 0, T0, 78, 5, 1), OrderCancel(1, 0, T0, 79, 5),
                    OrderReplace(1, 0, T0, 80, 81, 5, 100_000)):
        assert book.apply(message) is None
    assert book.unknown_refs == 4
    assert book.bbo(1) == (100_000, 100, 1, 0, 0, 0)
    # The replace of an unknown order did not create the new one.
    assert book.apply(OrderDelete(1, 0, T0, 81)) is None and book.unknown_refs == 5


def test_execute_beyond_remaining_shares_then_order_removed():
    book = ReferenceBook()
    book.apply(add(1, "B", 100, 100_000))
    assert book.apply(OrderExecuted(1, 0, T0 + 1, 1, 500, 1)) == BboChange(T0 + 1, 1, 0, 0, 0, 0, 0, 0)
    assert book.live_orders == 0


def test_duplicate_add_then_newer_order_replaces_older():
    book = ReferenceBook()
    book.run([add(1, "B", 100, 100_000), add(1, "S", 70, 200_000)])
    assert book.bbo(1) == (0, 0, 0, 200_000, 70, 1) and book.duplicate_refs == 1


def test_unsubscribed_locates_then_ignored_and_not_counted():
    book = ReferenceBook(locates={2})
    assert book.apply(add(1, "B", 100, 100_000, locate=1)) is None
    assert book.apply(OrderDelete(1, 0, T0, 1)) is None
    assert book.apply(Trade(2, 0, T0, 0, "B", 100, "AAPL", 100_000, 1)) is None
    assert book.apply(add(2, "B", 100, 100_000, locate=2)) is not None
    assert book.unknown_refs == 0 and book.counts["adds"] == 1 and book.counts["deletes"] == 0


def itch_book_bbo(path):
    """itch-book's BBO rows as ``(message number, locate, bid px, size, count, ask px, size, count)``."""
    itch_book = pytest.importorskip("itch_book")
    feed = itch_book.Feed(str(path), date=datetime.date(2024, 1, 2), price_type="fixed")
    columns = ("seq", "locate", "bid_px", "bid_sz", "bid_ct", "ask_px", "ask_sz", "ask_ct")
    rows = []
    for batch in feed.batches(tables=("bbo",)):
        rows += zip(*(batch.bbo[name].tolist() for name in columns))
    return rows, feed.stats


@pytest.mark.parametrize("seed, symbols, messages", [(7, ("AAPL", "MSFT", "IBM"), 60_000),
                                                     (11, ("AAPL", "MSFT", "AMZN", "NVDA", "TSLA", "META"), 40_000)])
def test_generated_session_then_same_bbo_sequence_as_itch_book(tmp_path, seed, symbols, messages):
    path = tmp_path / "session.itch"
    session = list(generate_session(seed=seed, symbols=symbols, messages=messages))
    write_binaryfile(path, session)
    rows, stats = itch_book_bbo(path)
    book, changes = bbo_changes_of_binaryfile(path)
    # itch-book numbers messages from 1 and emits a row exactly when a top (price, size or count) changes, as the
    # reference does; its timestamps are absolute (date + ns since midnight), so the message number aligns them.
    numbered = {}
    reference = ReferenceBook()
    for number, message in enumerate(session, start=1):
        change = reference.apply(message)
        if change is not None:
            numbered[number] = change
    assert list(numbered.values()) == changes
    expected = [(number, c.locate, c.bid_px, c.bid_qty, c.bid_orders, c.ask_px, c.ask_qty, c.ask_orders)
                for number, c in numbered.items()]
    assert len(expected) > messages // 4
    assert rows == expected
    assert stats["missing_ref"] == book.unknown_refs == 0
    assert stats["live_orders"] == book.live_orders


def test_edge_cases_then_same_rows_as_itch_book(tmp_path):
    # Executions beyond what is left, unknown references, a duplicate add, a replace of an unknown order, a
    # crossing add: itch-book counts them (clamped, missing_ref, dup_ref) and books them as the reference does.
    messages = [add(1, "B", 100, 100), add(2, "B", 50, 100, t=1), OrderExecuted(1, 0, T0 + 2, 1, 500, 1),
                OrderDelete(1, 0, T0 + 3, 99), add(2, "S", 70, 200, t=4), OrderReplace(1, 0, T0 + 5, 98, 97, 10, 150),
                add(3, "S", 10, 90, t=6), OrderCancel(1, 0, T0 + 7, 2, 50),
                OrderExecutedWithPrice(1, 0, T0 + 8, 3, 4, 2, "Y", 95), OrderReplace(1, 0, T0 + 9, 3, 4, 10, 90),
                OrderReplace(1, 0, T0 + 10, 4, 5, 10, 90)]
    path = tmp_path / "edges.itch"
    write_binaryfile(path, messages)
    rows, stats = itch_book_bbo(path)
    book = ReferenceBook()
    expected = []
    for number, message in enumerate(messages, start=1):
        change = book.apply(message)
        if change is not None:
            expected.append((number,) + tuple(change[1:]))
    assert rows == expected
    assert (stats["clamped"], stats["missing_ref"], stats["dup_ref"]) == (1, 2, 1)
    assert book.unknown_refs == 2 and book.duplicate_refs == 1
