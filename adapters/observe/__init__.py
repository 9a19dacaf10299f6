"""Observability: Prometheus metrics (:mod:`.metrics`), the HTTP endpoints
(:mod:`.http`), the telemetry output that keeps them current (:mod:`.telemetry`),
the logging set-up (:mod:`.logsetup`, :mod:`.terminal_log`) and the terminal
tables (:mod:`.console`, :mod:`.analytics_tables` for the offline analytics,
:mod:`.portfolio_tables` for the portfolio commands).
"""

__all__: list[str] = [
    "analytics_metrics",
    "analytics_tables",
    "console",
    "http",
    "logsetup",
    "metrics",
    "portfolio_tables",
    "telemetry",
    "terminal_log",
]
