"""The service core: events, ports, the engine and its pipeline, the integrity gate,
strategies, the signal module, the wire format and publication.  It imports
:mod:`factorcast.factors` only.  Its subpackage :mod:`.app` is the composition
root (the command line, the settings, one module per command), the only code that
imports adapters; :mod:`.paper` is the paper-trading book."""

from factorcast.strategy.engine import Engine, StepResult
from factorcast.strategy.events import AMEND_BARS, CrossSection, LateBar
from factorcast.strategy.ports import MarketSource, Publication, SignalSink
from factorcast.strategy.signals import FactorView, SignalBatch, adjust, factor_score
from factorcast.strategy.strategies import (
    Decision,
    Rewindable,
    Strategy,
    StrategyError,
    Trend,
    load_strategy,
)

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
    "StrategyError",
    "Trend",
    "adjust",
    "factor_score",
    "load_strategy",
]
