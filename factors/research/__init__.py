"""The research pipeline: preprocessing, walk-forward model scores, portfolio
construction and backtest metrics.
"""

__all__: list[str] = []
