"""The service: events, the engine pipeline, strategies, the signal module,
configuration, and the composition root (CLI) that wires adapters in."""

from strategy.engine import Engine, StepResult
from strategy.events import CrossSection
from strategy.ports import MarketSource, Publication, SignalSink
from strategy.signals import FactorView, SignalBatch, adjust, factor_score
from strategy.strategies import Decision, Strategy, Trend, load_strategy

__all__ = [
    "CrossSection",
    "Decision",
    "Engine",
    "FactorView",
    "MarketSource",
    "Publication",
    "SignalBatch",
    "SignalSink",
    "StepResult",
    "Strategy",
    "Trend",
    "adjust",
    "factor_score",
    "load_strategy",
]
