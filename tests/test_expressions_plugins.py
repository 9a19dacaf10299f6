"""Mode ``plugin``: loading ``package.module:Class`` with one-line errors; the
protocol a plug-in satisfies."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from factorcast.factors.expressions import (
    Bar,
    CustomFactor,
    Expression,
    PluginError,
    Undoable,
    bars_of_panel,
    load_plugin,
)
from tests.expr_oracle import Oracle
from tests.test_expressions_properties import random_panel

_names = itertools.count()

GOOD = '''
import numpy as np

class MeanClose:
    """The mean close over the last `window` grid steps (NaN if a bar is missing)."""

    def __init__(self, window=3):
        self.window = window
        self.lookback = window - 1
        self.rows = []

    def update(self, bar):
        self.rows = [*self.rows, np.where(bar.present, bar.close, np.nan)][-self.window:]
        if len(self.rows) < self.window:
            return np.full(len(bar.present), np.nan)
        return np.mean(self.rows, axis=0)
'''


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> str:
    """A fresh importable module holding ``source``; its name."""
    name = f"fc_plugin_{next(_names)}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_load_plugin_builds_the_class_with_its_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _module(tmp_path, monkeypatch, GOOD)
    plugin = load_plugin("mean_close", f"{module}:MeanClose", {"window": 4})
    assert isinstance(plugin, CustomFactor)
    assert not isinstance(plugin, Undoable)
    assert plugin.lookback == 3
    fields, present = random_panel(5)
    actual = np.array([plugin.update(b) for b in bars_of_panel(fields, present)])
    expected = Oracle(fields, present)(("ts_mean", ("close",), 4))
    # the plug-in leaves absent symbols' values as they come; compare where present
    np.testing.assert_allclose(actual[present], expected[present], rtol=1e-12)


def test_expressions_satisfy_the_plugin_protocol() -> None:
    expr = Expression.compile("proto", "ts_mean(close, 3)")
    assert isinstance(expr, CustomFactor)
    assert isinstance(expr, Undoable)


BAD_SOURCES = {
    "raises": "raise RuntimeError('no config file\\nhere')\n",
    "syntax": "def broken(:\n",
    "members": """
LOOKBACK = 1

def function():
    return 1

class NoUpdate:
    lookback = 2

class BadLookback:
    lookback = -1
    def update(self, bar):
        return bar.close

class FloatLookback:
    lookback = 2.5
    def update(self, bar):
        return bar.close

class Strict:
    lookback = 0
    def __init__(self, window):
        self.window = window
    def update(self, bar):
        return bar.close
""",
}

# target (with {m} for the module of BAD_SOURCES[key]), key, params, words of the error
BAD = [
    ("no_colon_here", None, None, "expected 'package.module:Class'"),
    (":Thing", None, None, "expected 'package.module:Class'"),
    ("{m}:", "members", None, "expected 'package.module:Class'"),
    ("no_such_module_fc:Thing", None, None, "cannot import 'no_such_module_fc'"),
    ("{m}:Thing", "raises", None, "importing failed: RuntimeError: no config file here"),
    ("{m}:Thing", "syntax", None, "importing failed: SyntaxError"),
    ("{m}:Missing", "members", None, "has no 'Missing'"),
    ("{m}:function", "members", None, "'function' is not a class"),
    ("{m}:NoUpdate", "members", None, "has no update(bar) method"),
    ("{m}:BadLookback", "members", None, "lookback must be an int >= 0, got -1"),
    ("{m}:FloatLookback", "members", None, "lookback must be an int >= 0, got 2.5"),
    ("{m}:Strict", "members", None, "cannot create it: TypeError"),
    ("{m}:Strict", "members", {"window": 3, "extra": 1}, "cannot create it: TypeError"),
]


@pytest.mark.parametrize(("target", "key", "params", "words"), BAD, ids=[b[3] for b in BAD])
def test_plugin_errors_are_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    key: str | None,
    params: dict[str, object] | None,
    words: str,
) -> None:
    if key is not None:
        target = target.format(m=_module(tmp_path, monkeypatch, BAD_SOURCES[key]))
    with pytest.raises(PluginError) as caught:
        load_plugin("my_plugin", target, params)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"factor 'my_plugin': plugin {target!r}: ")
    assert words in message
    assert isinstance(caught.value, ValueError)


def test_a_plugin_sees_every_grid_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty grid steps reach the plug-in as bars without any symbol present."""
    module = _module(tmp_path, monkeypatch, GOOD)
    plugin = load_plugin("mean_close", f"{module}:MeanClose", {"window": 2})
    one = Bar(*(np.ones(3) for _ in range(6)), present=np.ones(3, dtype=bool))
    values: list[NDArray[np.float64]] = [plugin.update(b) for b in (one, Bar.empty(3), one)]
    assert np.isnan(values[1]).all() and np.isnan(values[2]).all()
