"""The factor model finds the structure planted in the simulated market."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from factorcast.adapters.sim.market import SimulatedMarket
from factorcast.factors import CANONICAL, FactorModel
from factorcast.factors.registry import LIQUIDITY, MARKET, SIZE, VOLATILITY


def average_exposures(market: SimulatedMarket, bars: int, supply: bool = False) -> np.ndarray:
    """Mean exposure per symbol and factor over the second half of the run."""
    n = len(market.symbols)
    model = FactorModel(n, supply=market.planted.supply if supply else None)
    block = market.history_arrays(bars)
    total = np.zeros((n, len(CANONICAL)))
    count = np.zeros((n, len(CANONICAL)))
    for t in range(bars):
        close = block["close"][t]
        snap = model.update(close, block["volume"][t], block["quote_volume"][t], np.isfinite(close))
        if t >= bars // 2:
            ok = np.isfinite(snap.exposure)
            total[ok] += snap.exposure[ok]
            count += ok
    assert (count > 0).all()
    return total / count


def rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b).statistic)


def test_planted_betas_sizes_volatility_and_liquidity_are_recovered() -> None:
    market = SimulatedMarket(50, seed=7)
    planted = market.planted
    exp = average_exposures(market, 1500)
    col = CANONICAL.index
    assert rank_corr(exp[:, col(MARKET)], planted.beta) > 0.9
    assert rank_corr(exp[:, col(SIZE)], planted.log_quote_volume) > 0.9
    assert rank_corr(exp[:, col(LIQUIDITY)], planted.log_quote_volume) > 0.8
    assert rank_corr(exp[:, col(VOLATILITY)], planted.total_vol) > 0.8


def test_size_from_supply_tracks_market_cap() -> None:
    market = SimulatedMarket(40, seed=3)
    exp = average_exposures(market, 400, supply=True)
    # the simulated market cap is about 30 days of quote volume
    assert rank_corr(exp[:, CANONICAL.index(SIZE)], market.planted.log_quote_volume) > 0.85
