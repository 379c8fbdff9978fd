"""Thresholds and risk files: exact prices, and a bad file refused whole with file, line and field."""

import textwrap

import pytest

from t2t.config import ConfigError, load_risk, load_thresholds
from t2t.config.schema import PRICE_SCALE

KNOWN = {"AAPL", "MSFT", "TSLA"}


def write(tmp_path, text, name="file.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_prices_are_exact_price4_ticks_never_floats(tmp_path):
    path = write(tmp_path, """
        symbols:
          AAPL: {buy_below: 0.0001, sell_above: 191.0003, shares: 100}
          MSFT: {sell_above: 199999.9999, shares: 1}
    """)
    config = load_thresholds(path, KNOWN)
    assert config.symbols["AAPL"].buy_below == 1
    assert config.symbols["AAPL"].sell_above == 1_910_003
    assert config.symbols["MSFT"].sell_above == 1_999_999_999
    assert config.symbols["MSFT"].buy_below is None
    assert all(isinstance(getattr(t, f), (int, type(None), bool)) for t in config.symbols.values()
               for f in ("buy_below", "sell_above", "shares", "offset_ticks", "cooldown_cycles"))


def test_the_shipped_sample_files_are_valid():
    thresholds = load_thresholds("configs/thresholds.yaml")
    risk = load_risk("configs/risk.yaml")
    assert thresholds.symbols["AAPL"].buy_below == 88_0300  # $88.03 exactly, in Price(4) ticks
    assert risk.max_notional_ticks == 100_000 * PRICE_SCALE


def test_a_bad_thresholds_file_is_refused_whole_naming_every_line_and_field(tmp_path):
    path = write(tmp_path, """
        symbols:
          AAPL:
            buy_below: 189.123456
            shares: 0
          ZZZZ: {buy_below: 10.00, shares: 5}
          MSFT:
            buy_below: 200.00
            sell_above: 199.00
            shares: 10
            colour: blue
    """)
    with pytest.raises(ConfigError) as refused:
        load_thresholds(path, KNOWN)
    text = str(refused.value)
    assert f"{path}:3: symbols.AAPL.buy_below: 189.123456 has more than 4 decimals" in text
    assert f"{path}:4: symbols.AAPL.shares: 0 is outside 1.." in text
    assert f"{path}:5: symbols.ZZZZ: unknown symbol 'ZZZZ'" in text
    assert "symbols.MSFT: buy_below (200.0000) must be below sell_above" in text
    assert f"{path}:10: symbols.MSFT.colour: unknown field" in text
    assert "nothing was sent to the card" in text
    assert len(refused.value.problems) == 5


def test_pair_section_is_read_exactly_with_signed_bands_and_a_q16_ratio(tmp_path):
    path = write(tmp_path, """
        symbols:
          AAPL: {buy_below: 10.00, shares: 10}
        pair:
          leg_a: TSLA
          leg_b: MSFT
          ratio: 0.4
          upper: 1.25
          lower: -0.0001
          shares_a: 100
          shares_b: 40
          cooldown_cycles: 900
    """)
    config = load_thresholds(path, KNOWN)
    pair = config.pair
    # 0.4 x 65536 = 26214.4: the nearest Q16.16 step.
    assert (pair.leg_a, pair.leg_b, pair.ratio_q16, pair.upper, pair.lower) == ("TSLA", "MSFT", 26214, 12_500, -1)
    assert (pair.shares_a, pair.shares_b, pair.time_in_force, pair.cooldown_cycles, pair.enabled) == (
        100, 40, 0, 900, True)
    assert config.traded_symbols == ["AAPL", "TSLA", "MSFT"]
    assert load_thresholds(write(tmp_path, "symbols: {AAPL: {buy_below: 1.00, shares: 1}}\n", "t.yaml")).pair is None


def test_a_bad_pair_section_is_refused_naming_each_field(tmp_path):
    path = write(tmp_path, """
        symbols: {}
        pair:
          leg_a: AAPL
          leg_b: AAPL
          ratio: -2
          upper: 1.00001
          lower: 0.50
          shares_a: 0
          colour: red
    """)
    with pytest.raises(ConfigError) as refused:
        load_thresholds(path, KNOWN)
    text = str(refused.value)
    assert f"{path}:4: pair.leg_b: the two legs must be different symbols" in text
    assert f"{path}:5: pair.ratio: '-2' is not a positive decimal" in text
    assert f"{path}:6: pair.upper: '1.00001' is not an amount in dollars" in text
    assert f"{path}:8: pair.shares_a: 0 is outside 1.." in text
    assert f"{path}:9: pair.colour: unknown field" in text
    assert "pair.shares_b: missing" in text
    assert len(refused.value.problems) == 6
    lower_above_upper = write(tmp_path, """
        symbols: {}
        pair: {leg_a: AAPL, leg_b: ZZZZ, ratio: 1, upper: -1.00, lower: 1.00, shares_a: 1, shares_b: 1}
    """, "t.yaml")
    with pytest.raises(ConfigError) as refused:
        load_thresholds(lower_above_upper, KNOWN)
    text = str(refused.value)
    assert "pair.leg_b: unknown symbol 'ZZZZ'" in text
    assert "pair.lower: lower (1.0000) is above upper (-1.0000)" in text


@pytest.mark.parametrize("line, message", [
    ("    buy_below: -1", "is not a price"),
    ("    buy_below: 1e3", "is not a price"),
    ("    buy_below: 0", "must be above zero"),
    ("    buy_below: 300000", "above the largest allowed"),
    ("    shares: -5", "is not a whole number"),
    ("    shares: 10.5", "is not a whole number"),
    ("    time_in_force: forever", "is not one of ioc, day, system"),
])
def test_each_bad_value_is_named(tmp_path, line, message):
    field = line.split(":")[0].strip()
    body = {"buy_below": "    buy_below: 10.00", "shares": "    shares: 10"}
    body[field] = line
    text = "symbols:\n  AAPL:\n" + "\n".join(body.values()) + "\n"
    if field == "time_in_force":
        text += line + "\n"
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_thresholds(path, KNOWN)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "symbols:\n  AAPL: {shares: 1\n  MSFT: x\n")
    with pytest.raises(ConfigError, match=r":\d+: \(syntax\)"):
        load_thresholds(path, KNOWN)


def test_inconsistent_risk_limits_are_refused(tmp_path):
    path = write(tmp_path, """
        max_shares_per_order: 500
        max_notional_per_order: 50000.00
        collar_ticks: 100
        max_orders: {burst: 0, refill_cycles: 1000}
        kill_after: {rejects: 5}
        positions: {AAPL: 100}
        restricted: [TSLA, NOPE]
    """)
    with pytest.raises(ConfigError) as refused:
        load_risk(path, KNOWN)
    text = str(refused.value)
    assert "max_orders.burst: 0 is outside 1..65535" in text
    assert "kill_after.window_cycles: missing" in text
    assert "positions.default: missing" in text
    assert "positions.AAPL: position limit 100 is below max_shares_per_order 500" in text
    assert "restricted: unknown symbol 'NOPE'" in text


def test_missing_file_is_refused_clearly(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_risk(tmp_path / "nope.yaml")


def test_cli_check_exits_2_and_names_the_problem(tmp_path, capsys):
    from t2t.cli.main import main
    path = write(tmp_path, "symbols:\n  AAPL: {buy_below: 1.00001, shares: 1}\n")
    assert main(["thresholds", "check", str(path)]) == 2
    assert f"{path}:2: symbols.AAPL.buy_below" in capsys.readouterr().err
    assert main(["risk", "check", "configs/risk.yaml"]) == 0
    assert "valid" in capsys.readouterr().out
