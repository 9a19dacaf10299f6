"""The six-factor model and its analytics: pure numpy, no I/O, no clock."""

from factorcast.factors.model import BarInputs, FactorModel, FactorSnapshot, descriptor
from factorcast.factors.params import MODEL_VERSION, FactorParams
from factorcast.factors.reasons import REASON_LABELS, Reason
from factorcast.factors.registry import (
    ANALYTICS_NAMES,
    CANONICAL,
    REGISTRY,
    UNIVERSE,
    FactorRegistry,
    FactorSpec,
)
from factorcast.factors.rolling import UndoExhausted
from factorcast.factors.standardize import standardize

__all__ = [
    "ANALYTICS_NAMES",
    "CANONICAL",
    "MODEL_VERSION",
    "REASON_LABELS",
    "REGISTRY",
    "UNIVERSE",
    "BarInputs",
    "FactorModel",
    "FactorParams",
    "FactorRegistry",
    "FactorSnapshot",
    "FactorSpec",
    "Reason",
    "UndoExhausted",
    "descriptor",
    "standardize",
]
