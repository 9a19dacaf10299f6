"""The six-factor model and its analytics: pure numpy, no I/O, no clock."""

from factors.model import FactorModel, FactorSnapshot
from factors.params import MODEL_VERSION, FactorParams
from factors.reasons import REASON_LABELS, Reason
from factors.registry import CANONICAL, REGISTRY, FactorRegistry, FactorSpec
from factors.rolling import UndoExhausted
from factors.standardize import standardize

__all__ = [
    "CANONICAL",
    "MODEL_VERSION",
    "REASON_LABELS",
    "REGISTRY",
    "FactorModel",
    "FactorParams",
    "FactorRegistry",
    "FactorSnapshot",
    "FactorSpec",
    "Reason",
    "UndoExhausted",
    "standardize",
]
