"""Custom factors through the command line: bad definitions stop a command at
start-up (exit 2, one line naming the factor, the field and the column), the
shipped examples run, a plug-in's values reach the exposure table, the model tag
follows the custom factors, and ``factor check``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.linear_model import Ridge

from factorcast.adapters.files.custom_models import save_custom_model
from factorcast.strategy.app.settings import load_settings
from factorcast.strategy.app.wiring import build_engine
from tests.conftest import REPO, factorcast
from tests.custom_oracle import load_grid, standardize

EXAMPLES = REPO / "examples" / "custom_factors.toml"


def one_line_exit_2(args: list[str], *expected: str) -> str:
    proc = factorcast(*args, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for part in expected:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('expr = "-1 * ts_sum(retuns, 24)"', ("factors.custom.rev.expr: column 13:", "'retuns'")),
        ('expr = "ts_mean(close)"', ("factors.custom.rev.expr: column 1:", "takes 2 arguments")),
        ('expr = "ts_std(close, 2.5)"', ("factors.custom.rev.expr: column 15:", "whole number")),
        ('expr = "delta(close, 0)"', ("factors.custom.rev.expr: column 14:", "at least 1")),
        (
            'mode = "plugin"\nclass = "tests.no_such_module:Nope"',
            ("factors.custom.rev.class:", "cannot import 'tests.no_such_module'"),
        ),
        (
            'mode = "plugin"\nclass = "tests.custom_plugins:RangeMean"\nparams = { window = 0 }',
            ("factors.custom.rev.class:", "window must be 1 or more"),
        ),
        (
            'mode = "model"\npath = "no/such/model.json"',
            ("factors.custom.rev.path:", "cannot read"),
        ),
    ],
)
def test_a_bad_custom_factor_stops_at_start_up(
    tmp_path: Path, shared_data: Path, table: str, expected: tuple[str, ...]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f"[factors.custom.rev]\n{table}\n")
    args = ["replay", "--data", str(shared_data), "--config", str(config)]
    one_line_exit_2(args, "factorcast: config error: ", *expected)


def test_a_name_clash_stops_run_before_it_connects(tmp_path: Path) -> None:
    config = tmp_path / "clash.toml"
    config.write_text('[factors.custom.momentum]\nexpr = "delta(close, 5)"\n')
    one_line_exit_2(
        ["run", "--config", str(config), "--max-bars", "1"],
        "config error: factors.custom.momentum: the name is already taken",
    )


def test_the_examples_replay_and_every_custom_factor_has_exposures(
    shared_data: Path, tmp_path: Path
) -> None:
    """The shipped examples: ten factors after the six, each with finite exposures,
    in the signals' exposures and in the exposure table."""
    out = tmp_path / "exposures.csv"
    signals = tmp_path / "signals.jsonl"
    proc = factorcast(
        "replay", "--data", str(shared_data), "--config", str(EXAMPLES), "--quiet",
        "--exposures-out", str(out), "--signals-out", str(signals),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = list(load_settings(EXAMPLES).factors.custom)
    assert len(names) == 10
    table = pd.read_csv(out, keep_default_na=False, na_values={"raw": [""], "exposure": [""]})
    finite = table.dropna(subset=["exposure"]).groupby("factor").size()
    for name in names:
        assert finite.get(name, 0) > 1000, name
    last = json.loads(signals.read_text().splitlines()[-1])
    assert list(last["exposures"])[6:] == names
    assert set(last["missing"]) <= set(last["exposures"])


def test_a_plugin_reaches_the_exposure_table(shared_data: Path, tmp_path: Path) -> None:
    config = tmp_path / "plugin.toml"
    config.write_text(
        '[factors.custom.rng]\nmode = "plugin"\nclass = "tests.custom_plugins:RangeMean"\n'
        "params = { window = 4 }\nweight = 0.0\n"
    )
    out = tmp_path / "exposures.csv"
    proc = factorcast(
        "replay", "--data", str(shared_data), "--config", str(config), "--quiet",
        "--exposures-out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    grid = load_grid(None, shared_data)
    ratio = (grid.frame("high") - grid.frame("low")) / grid.frame("close")
    windows = sliding_window_view(ratio.to_numpy(), 4, axis=0)  # whole windows, no running sum
    mean = np.vstack([np.full((3, ratio.shape[1]), np.nan), windows.mean(axis=-1)])
    want = pd.DataFrame(mean, index=ratio.index, columns=ratio.columns)
    table = pd.read_csv(out, keep_default_na=False, na_values={"raw": [""], "exposure": [""]})
    got = table[table["factor"] == "rng"].pivot(index="timestamp", columns="symbol")
    raw = got["raw"].reindex(index=want.index, columns=want.columns)
    rows = grid.present
    np.testing.assert_allclose(raw.to_numpy()[rows], want.to_numpy()[rows], rtol=1e-12)
    exposure = got["exposure"].reindex(index=want.index, columns=want.columns)
    for t in range(0, len(grid.ts), 97):
        if rows[t].any():
            z, _ = standardize(pd.Series(np.where(rows[t], want.iloc[t], np.nan)))
            expected = np.full(rows.shape[1], np.nan)
            expected[z.index] = z.to_numpy()
            np.testing.assert_allclose(exposure.iloc[t], expected, rtol=1e-9, atol=1e-12)


def test_the_model_tag_changes_with_the_model_file(tmp_path: Path) -> None:
    """A model factor's tag follows its files: the same path, another estimator,
    another tag (and a configuration without it, another still)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 2)), rng.normal(size=50)
    meta = tmp_path / "m.json"
    features = [("a", "ts_mean(returns, 3)"), ("b", "(high - low) / close")]
    symbols = ("A/USDT", "B/USDT", "C/USDT")
    settings = load_settings(factors={"custom": {"ml": {"mode": "model", "path": str(meta)}}})
    tags = []
    for alpha in (1.0, 2.0, 2.0):
        save_custom_model(meta, Ridge(alpha=alpha).fit(X, y), features)
        tags.append(build_engine(settings, symbols, 60_000, analytics=False).model.tag)
    plain = build_engine(load_settings(), symbols, 60_000, analytics=False).model.tag
    assert tags[0] != tags[1] == tags[2] != plain


def test_factor_check_prints_lookback_tree_and_last_bar_values(shared_data: Path) -> None:
    proc = factorcast("factor", "check", "-1 * ts_sum(returns, 12) / ts_std(close, 5)")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("(lookback 12 bars)")
    assert any("ts_sum(·, d=12)" in line and "lookback 12" in line for line in lines)
    assert any("ts_std(·, d=5)" in line and "lookback 4" in line for line in lines)

    proc = factorcast("factor", "check", "-1 * ts_sum(returns, 12)", "--data", str(shared_data))
    assert proc.returncode == 0, proc.stderr
    grid = load_grid(None, shared_data)
    close = grid.frame("close")
    want = -(close / close.shift(1) - 1).rolling(12, min_periods=12).sum().iloc[-1]
    shown = {}
    for line in proc.stdout.splitlines():
        m = re.fullmatch(r"  (\S+)\s+(\S+)(?:\s+(\S+))?", line)
        if m:
            shown[m.group(1)] = m.group(2) if m.group(2) != "null" else m.group(3)
    assert set(shown) == set(grid.symbols)
    for symbol in grid.symbols:
        if np.isfinite(want[symbol]):
            assert float(shown[symbol]) == pytest.approx(want[symbol], rel=1e-9, abs=1e-15)
        else:
            assert shown[symbol] in ("missing_bar", "insufficient_history", "undefined")

    one_line_exit_2(
        ["factor", "check", "ts_rank(close, 3"], "factorcast: factor 'expr', column", "("
    )


def test_factor_check_of_an_example_by_name() -> None:
    proc = factorcast("factor", "check", "alpha006", "--config", str(EXAMPLES))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("alpha006 = -1 * correlation(open, volume, 10)")
    assert "(lookback 9 bars)" in proc.stdout.splitlines()[0]
