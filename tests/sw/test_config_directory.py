"""Symbol directory files and exact prices typed on the command line: refused with file, line and field."""

import textwrap

import pytest

from t2t.config import ConfigError
from t2t.config.schema import format_price, parse_price
from t2t.config.trading import load_directory
from t2t.feed.directory import read_directory
from t2t.feed.generator import write_session


def write(tmp_path, text, name="symbols.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_a_directory_keeps_file_order_and_lines(tmp_path):
    path = write(tmp_path, """
        # today's locates
        MSFT: 2
        AAPL: 1
        BRK.B: 300
    """)
    directory = load_directory(path)
    assert directory.symbols == ["MSFT", "AAPL", "BRK.B"]
    assert directory.locates == {"MSFT": 2, "AAPL": 1, "BRK.B": 300}
    assert directory.lines == {"MSFT": 2, "AAPL": 3, "BRK.B": 4}


def test_a_bad_directory_is_refused_whole_naming_every_line(tmp_path):
    path = write(tmp_path, """
        AAPL: 1
        msft: 2
        TSLA: 1
        NVDA: 0
        AMZN: 70000
        AAPL: 9
        INTC: x
    """)
    with pytest.raises(ConfigError) as refused:
        load_directory(path)
    text = str(refused.value)
    assert f"{path}:2: msft: 'msft' is not a stock symbol" in text
    assert f"{path}:3: TSLA: locate 1 is already AAPL's" in text
    assert f"{path}:4: NVDA: 0 is outside 1..65535" in text
    assert f"{path}:5: AMZN: 70000 is outside 1..65535" in text
    assert f"{path}:6: AAPL: given twice" in text
    assert f"{path}:7: INTC: 'x' is not a whole number" in text
    assert len(refused.value.problems) == 6


@pytest.mark.parametrize("text, message", [("[AAPL, MSFT]\n", "expected a mapping"), ("", "empty file"),
                                           ("{}\n", "no symbols")])
def test_a_directory_that_is_not_a_mapping_of_symbols_is_refused(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_directory(write(tmp_path, text))


def test_the_shipped_sample_directory_is_valid():
    assert load_directory("configs/symbols.yaml").symbols[:2] == ["AAPL", "MSFT"]


def test_the_directory_of_an_itch_file_is_its_r_messages_before_the_first_order(tmp_path):
    path = tmp_path / "day.itch.gz"
    write_session(path, seed=3, symbols=("ZVZZT", "AAPL", "QQQ"), messages=300)
    assert read_directory(path) == {"ZVZZT": 1, "AAPL": 2, "QQQ": 3}


@pytest.mark.parametrize("text, ticks", [("189.50", 1_895_000), ("0.0001", 1), ("200000", 2_000_000_000),
                                         (" 7 ", 70_000)])
def test_prices_parse_exactly(text, ticks):
    assert parse_price(text) == ticks
    assert isinstance(parse_price(text), int)


@pytest.mark.parametrize("text, message", [("1.00001", "more than 4 decimals"), ("-1", "not a price"),
                                           ("1e3", "not a price"), ("0", "above zero"),
                                           ("200000.0001", "above the largest")])
def test_bad_prices_say_why(text, message):
    with pytest.raises(ValueError, match=message):
        parse_price(text)


def test_prices_format_by_integer_arithmetic():
    assert format_price(1_895_000) == "189.5000"
    assert format_price(1) == "0.0001"
    assert format_price(-12_345) == "-1.2345"
    assert format_price(1_999_999_999) == "199999.9999"
