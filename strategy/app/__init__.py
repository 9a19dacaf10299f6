"""The composition root: the command line, the settings, and one module per command
(:mod:`.run`, :mod:`.replay`, :mod:`.subscribe`, and those in :data:`.cli.COMMANDS`,
such as :mod:`.factor_returns` and :mod:`.portfolio`, with :mod:`.offline` and
:mod:`.market` for what they share) wiring concrete adapters into the
core through its ports.  The only package that imports :mod:`factorcast.adapters`.
"""

from factorcast.strategy.app.cli import main

__all__ = ["main"]
