"""Observability: Prometheus metrics (:mod:`.metrics`), the HTTP endpoints
(:mod:`.http`), the telemetry output that keeps them current (:mod:`.telemetry`),
the logging set-up (:mod:`.logsetup`, :mod:`.terminal_log`) and the terminal
tables (:mod:`.console`).
"""

__all__: list[str] = [
    "analytics_metrics",
    "console",
    "http",
    "logsetup",
    "metrics",
    "telemetry",
    "terminal_log",
]
