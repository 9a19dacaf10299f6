"""The portfolio commands' input files (adapters/files/holdings.py): holdings (CSV
and JSON), group mappings and returns series, and the one-line error each bad file
gets (naming the file and the problem)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from factorcast.adapters.files.holdings import read_groups, read_holdings, read_returns
from factorcast.factors.analytics import Holding, PortfolioInputError


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_holdings_csv_of_weights_and_of_quantities(tmp_path: Path) -> None:
    weights = write(tmp_path, "w.csv", "symbol,weight\nETH/BTC, 0.6\n\nLTC/BTC,-0.1\n")
    assert read_holdings(weights) == [
        Holding("ETH/BTC", weight=0.6),
        Holding("LTC/BTC", weight=-0.1),
    ]
    qty = write(tmp_path, "q.csv", "\ufeffsymbol,weight,quantity\nETH/BTC,,2\nCASH,,0.5\n")
    assert read_holdings(qty) == [
        Holding("ETH/BTC", quantity=2.0),
        Holding("CASH", quantity=0.5),
    ]
    both = write(tmp_path, "b.csv", "symbol,weight,quantity\nETH/BTC,0.5,2\n")
    assert read_holdings(both) == [Holding("ETH/BTC", weight=0.5, quantity=2.0)]


def test_holdings_json(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "h.json",
        '[{"symbol": "ETH/BTC", "quantity": 2}, {"symbol": "CASH", "quantity": 1.5}]',
    )
    assert read_holdings(path) == [
        Holding("ETH/BTC", quantity=2.0),
        Holding("CASH", quantity=1.5),
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("h.csv", "", "empty file"),
        ("h.csv", "symbol,wieght\nETH/BTC,1\n", "unknown column 'wieght'"),
        ("h.csv", "symbol\nETH/BTC\n", "must name symbol and weight or quantity"),
        ("h.csv", "symbol,weight\nETH/BTC,abc\n", "line 2: weight 'abc' is not a number"),
        ("h.csv", "symbol,weight\nETH/BTC,inf\n", "line 2: weight 'inf' is not a finite"),
        ("h.csv", "symbol,weight\n,0.5\n", "line 2: no symbol"),
        ("h.csv", "symbol,weight\nETH/BTC,0.5,7\n", "line 2: 3 cells, the header has 2"),
        ("h.csv", "symbol,weight\n", "no holdings"),
        ("h.json", "{", "not JSON"),
        ("h.json", '[{"symbol": "ETH/BTC", "weight": "1"}]', "item 0: weight '1' is not a"),
        ("h.json", '[{"symbol": "ETH/BTC", "size": 1}]', "item 0: unknown key 'size'"),
    ],
)
def test_bad_holdings_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(PortfolioInputError) as err:
        read_holdings(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_holdings_file(tmp_path: Path) -> None:
    with pytest.raises(PortfolioInputError, match="no such file"):
        read_holdings(tmp_path / "nope.csv")


def test_groups(tmp_path: Path) -> None:
    path = write(tmp_path, "g.csv", "symbol,sector,region\nETH/BTC,platform,\nLTC/BTC,coin,us\n")
    assert read_groups(path) == {
        "sector": {"ETH/BTC": "platform", "LTC/BTC": "coin"},
        "region": {"LTC/BTC": "us"},
    }
    twice = write(tmp_path, "t.csv", "symbol,sector\nETH/BTC,a\nETH/BTC,b\n")
    with pytest.raises(PortfolioInputError, match=r"t\.csv: symbol ETH/BTC appears twice"):
        read_groups(twice)
    bare = write(tmp_path, "s.csv", "symbol\nETH/BTC\n")
    with pytest.raises(PortfolioInputError, match="at least one dimension"):
        read_groups(bare)


def test_returns(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "timestamp,return\n600000,0.01\n300000,-0.02\n")
    series = read_returns(path)
    assert series.ts.tolist() == [300000, 600000]
    np.testing.assert_array_equal(series.returns, [-0.02, 0.01])
    for text, message in [
        ("timestamp,return\n300000,0.1\n300000,0.2\n", "line 3: timestamp 300000 already on"),
        ("timestamp,return\n2021-01-01,0.1\n", "not a whole number of ms"),
        ("timestamp,return\n300000,\n", "line 2: no return"),
        ("time,return\n300000,0.1\n", "must name timestamp and return"),
    ]:
        with pytest.raises(PortfolioInputError, match=message):
            read_returns(write(tmp_path, "bad.csv", text))
