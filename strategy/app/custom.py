"""The custom factors of the settings (``[factors.custom.NAME]``), built for an engine.

Part of the composition root: a model factor's files are read here
(``adapters/files/custom_models.py``; a relative ``path`` is from the working
directory), expressions are compiled and plug-ins imported by
:func:`factors.custom.build_custom`.  Anything that cannot be built is a
:class:`ConfigError` naming the field, exit code 2, before the command connects to
anything (:func:`check`).
"""

from __future__ import annotations

from pathlib import Path

from factorcast.factors.custom import build_custom
from factorcast.factors.expressions import CustomFactor, CustomFactorError, UndoableFactor
from factorcast.strategy.app.settings import ConfigError, Settings

__all__ = ["build", "check", "history_bars"]

#: the field of a custom factor that an error of its mode is about
_FIELD = {"expr": "expr", "plugin": "class", "model": "path"}


def build(settings: Settings) -> dict[str, UndoableFactor]:
    """A fresh object per custom factor of ``settings.factors``, in order."""
    params = settings.factors
    loaded: dict[str, CustomFactor] = {}
    for name, spec in params.custom.items():
        if spec.mode == "model":
            from factorcast.adapters.files.custom_models import load_custom_model

            assert spec.path is not None
            try:
                loaded[name] = load_custom_model(name, Path(spec.path))
            except CustomFactorError as e:
                raise _config_error(settings, name, e) from None
    try:
        return build_custom(params, loaded)
    except CustomFactorError as e:  # expressions and plug-ins say which factor
        raise _config_error(settings, getattr(e, "factor", ""), e) from None


def check(settings: Settings) -> None:
    """Build the custom factors once: a command that could not stops here."""
    if settings.factors.custom:
        build(settings)


def history_bars(settings: Settings) -> int:
    """``factors.history_bars`` with the lookbacks of the plug-ins and model factors
    (known once they are built; the expressions' are in it already)."""
    bars = settings.factors.history_bars
    if all(spec.mode == "expr" for spec in settings.factors.custom.values()):
        return bars
    longest = max(int(f.lookback) for f in build(settings).values())
    return max(bars, longest + 1)


def _config_error(settings: Settings, name: str, e: CustomFactorError) -> ConfigError:
    message = str(e)
    if name not in settings.factors.custom:
        return ConfigError(f"config error: factors.custom: {message}")
    spec = settings.factors.custom[name]
    message = message.removeprefix(f"factor {name!r}: ").removeprefix(f"factor {name!r}")
    return ConfigError(
        f"config error: factors.custom.{name}.{_FIELD[spec.mode]}: {message.lstrip(', ')}"
    )
