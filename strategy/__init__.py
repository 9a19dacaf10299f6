"""The service: events, the engine pipeline, strategies, the signal module,
configuration, and the composition root (CLI) that wires adapters in."""

from strategy.engine import Engine, StepResult
from strategy.events import AMEND_BARS, CrossSection, LateBar
from strategy.ports import MarketSource, Publication, SignalSink
from strategy.signals import FactorView, SignalBatch, adjust, factor_score
from strategy.strategies import Decision, Rewindable, Strategy, Trend, load_strategy

__all__ = [
    "AMEND_BARS",
    "CrossSection",
    "Decision",
    "Engine",
    "FactorView",
    "LateBar",
    "MarketSource",
    "Publication",
    "Rewindable",
    "SignalBatch",
    "SignalSink",
    "StepResult",
    "Strategy",
    "Trend",
    "adjust",
    "factor_score",
    "load_strategy",
]
