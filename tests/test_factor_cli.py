"""The offline factor commands end to end (``factorcast factor returns|health|risk``)
on the shared Bittrex 5m and Binance 1h candles, against oracles written here from
ANALYTICS.md: statsmodels WLS per bar (section 1), scipy's Spearman per bar and a
pandas recomputation of the rolling IC statistics, the factor-return track and the
state machine (section 2), the EWMA factor covariance (section 3); and the command
line's contract for bad input.

The closes are read from the candle files here; the exposures come from the
exposure table of ``factorcast replay --exposures-out`` over the same candles (and,
for ``adv`` weighting, with the weights, from the factor model run here).  Each
command runs once per dataset, all of them up front, two at a time.
"""

from __future__ import annotations

import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from numpy.typing import NDArray
from scipy import stats

from factorcast.factors import CANONICAL, UNIVERSE, FactorParams
from tests.conftest import REPO, factorcast
from tests.test_factor_returns import replay

DATA = REPO.parent / "shared" / "data"
K = len(CANONICAL)
NAMES = (UNIVERSE, *CANONICAL)
TOL = 1e-9  # factor returns against statsmodels (ANALYTICS.md's own check)
EXACT = 1e-12  # sums of the same numbers in another order
RETURN_COLUMNS = ["timestamp", "factor", "return", "reason", "r2", "n"]
IC_COLUMNS = ["timestamp", "factor", "horizon", "ic", "reason"]
#: the defaults of ANALYTICS.md sections 2 and 3 and SIGNALS.md's directions
WINDOW, MIN_OBS, T_ENTER, T_EXIT = 200, 30, 2.0, 1.0
RISK_WINDOW, HALF_LIFE = 500, 90.0
DECAY = (1, 2, 4, 8, 16, 32, 64)
DIRECTIONS = {"market": 1, "size": -1, "value": 1, "momentum": 1, "volatility": -1, "liquidity": 1}
HORIZONS = {"bittrex-5m": (1, 4, 16), "binance-1h": (1, 4)}
#: binance: the risk model at a bar in the middle (as ISO-8601); bittrex: at the last
RISK_AT_STEP = 2500

FloatArray = NDArray[np.float64]

pytestmark = pytest.mark.slow


def read_json(text: str) -> Any:
    return json.loads(text)


# -- the runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    name: str
    grid: NDArray[np.int64]
    tf: int
    symbols: list[str]
    close: FloatArray  # (T, n), read from the files here
    exposure: FloatArray  # (T, n, K), the factor model's
    returns: pd.DataFrame
    returns_json: dict[str, Any]
    ic: pd.DataFrame
    health: dict[str, Any]
    risk: dict[str, Any]
    risk_step: int  # the grid step of the risk model asked for
    out: Path


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dataset]:
    """Every command once per dataset, two at a time, while the factor model runs
    over the same candles here for the oracles' exposures."""
    jobs: list[tuple[Path, str, list[str]]] = []
    dirs: dict[str, Path] = {}
    risk_step: dict[str, int] = {}
    for name, horizons in HORIZONS.items():
        out = dirs[name] = tmp_path_factory.mktemp(name)
        data = ["--data", str(DATA / name)]
        ic_out = out / ("ic.csv" if name.startswith("bittrex") else "ic.parquet")
        at: list[str] = []
        risk_step[name] = -1
        if name.startswith("binance"):  # the risk model at a bar in the middle, in ISO-8601
            grid = _grid_of(DATA / name)[0]
            risk_step[name] = RISK_AT_STEP
            when = datetime.fromtimestamp(int(grid[RISK_AT_STEP]) / 1000, tz=UTC)
            at = ["--at", when.strftime("%Y-%m-%dT%H:%M:%SZ")]
        jobs += [
            (out, "returns", ["factor", "returns", *data, "--json", "--out", str(out / "r.csv")]),
            (out, "health", ["factor", "health", *data, "--json", "--ic-out", str(ic_out),
                             "--horizons", ",".join(map(str, horizons))]),
            (out, "risk", ["factor", "risk", *data, "--json", *at]),
        ]  # fmt: skip
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = pool.map(_run, jobs)
        models = {name: replay(DATA / name, FactorParams()) for name in HORIZONS}
        list(done)
    out = {}
    for name, d in dirs.items():
        grid, symbols, close, tf = _grid_of(DATA / name)
        model = models[name]
        assert np.array_equal(model.ts, grid)
        assert np.array_equal(model.close, close, equal_nan=True)  # same symbols, same bars
        ic_path = d / ("ic.csv" if name.startswith("bittrex") else "ic.parquet")
        step = risk_step[name] % grid.size
        out[name] = Dataset(
            name,
            grid,
            tf,
            symbols,
            close,
            model.exposure,
            read_table(d / "r.csv"),
            read_json((d / "returns.stdout").read_text()),
            read_table(ic_path),
            read_json((d / "health.stdout").read_text()),
            read_json((d / "risk.stdout").read_text()),
            step,
            d,
        )
    return out


def _run(job: tuple[Path, str, list[str]]) -> None:
    out, label, args = job
    proc = factorcast(*args)
    assert proc.returncode == 0, (label, proc.stderr[-2000:])
    (out / f"{label}.stdout").write_text(proc.stdout)
    (out / f"{label}.stderr").write_text(proc.stderr)


def _grid_of(directory: Path) -> tuple[NDArray[np.int64], list[str], FloatArray, int]:
    """The grid from the first bar to the last, the symbols, closes (grid x symbol,
    NaN where no bar) and the timeframe in ms, read from the files here."""
    series: dict[str, tuple[NDArray[np.int64], FloatArray]] = {}
    for f in sorted(directory.iterdir()):
        m = re.fullmatch(r"([A-Z0-9]+)_([A-Z0-9]+)-\w+\.(feather|json)", f.name)
        if m is None:
            continue
        if m[3] == "feather":
            df = pd.read_feather(f)
            ts = (df["date"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
            series[f"{m[1]}/{m[2]}"] = (ts.to_numpy(np.int64), df["close"].to_numpy(float))
        else:
            rows = np.array(json.loads(f.read_text()), dtype=np.float64)
            series[f"{m[1]}/{m[2]}"] = (rows[:, 0].astype(np.int64), rows[:, 4])
    series = dict(sorted(series.items()))  # by symbol, as the exposures are
    every = np.unique(np.concatenate([ts for ts, _ in series.values()]))
    tf = int(np.bincount(np.diff(every) // 1000).argmax()) * 1000
    grid = np.arange(every[0], every[-1] + tf, tf, dtype=np.int64)
    close = np.full((grid.size, len(series)), np.nan)
    for j, (ts, c) in enumerate(series.values()):
        close[(ts - grid[0]) // tf, j] = c
    return grid, list(series), close, tf


def read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":  # empty fields are missing numbers; the labels stay text
        return pd.read_csv(
            path, keep_default_na=False, na_values={c: [""] for c in ("return", "r2", "ic")}
        )
    return pd.read_parquet(path)


@pytest.fixture(params=list(HORIZONS))
def ds(request: pytest.FixtureRequest, datasets: dict[str, Dataset]) -> Dataset:
    return datasets[request.param]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 1000 bars of the Bittrex files (a copy in a temporary directory):
    the runs that compare two ways of writing or weighting, and the decay figures
    (their oracles take a while per bar)."""
    out = tmp_path_factory.mktemp("small")
    data = out / "data"
    data.mkdir()
    for f in sorted((DATA / "bittrex-5m").glob("*.feather")):
        pd.read_feather(f).iloc[:1000].reset_index(drop=True).to_feather(data / f.name)
    (out / "adv.toml").write_text('[factors]\nweighting = "adv"\n')
    base = ["factor", "returns", "--data", str(data), "--quiet"]
    jobs = [
        (out, "csv", [*base, "--out", str(out / "r.csv")]),
        (out, "parquet", [*base, "--out", str(out / "r.parquet")]),
        (out, "adv", [*base, "--config", str(out / "adv.toml"), "--out", str(out / "r_adv.csv")]),
        (out, "health", ["factor", "health", "--data", str(data), "--json", "--ic-out",
                         str(out / "ic.csv"), "--horizons", ",".join(map(str, DECAY))]),
    ]  # fmt: skip
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(_run, jobs))
    return out


# -- factor returns ---------------------------------------------------------------


def test_returns_table_layout(ds: Dataset) -> None:
    r = ds.returns
    assert list(r.columns) == RETURN_COLUMNS
    # one row per grid step from the first bar to the last, per name, registry order
    assert len(r) == ds.grid.size * len(NAMES)
    assert np.array_equal(r["timestamp"].to_numpy()[:: len(NAMES)], ds.grid)
    assert (r["factor"].to_numpy().reshape(-1, len(NAMES)) == NAMES).all()
    assert set(r["reason"]) <= {"ok", "too_few_symbols", "singular"}
    assert (r["return"].isna() == (r["reason"] != "ok")).all()
    assert ds.returns_json["bars"] == ds.grid.size
    assert ds.returns_json["bar_ts"] == ds.grid[-1]


def close_enough(ours: FloatArray, oracle: FloatArray, scale: float) -> bool:
    """Within ``TOL`` relative; entries near 0 within ``1e-3 * TOL`` of the bar's scale."""
    return bool(np.all(np.abs(ours - oracle) <= TOL * np.abs(oracle) + 1e-3 * TOL * scale))


def check_wls(
    table: pd.DataFrame, close: FloatArray, exposure: FloatArray, weights: FloatArray | None
) -> int:
    """Every bar of ``table`` against statsmodels WLS of ANALYTICS.md section 1;
    returns the number of bars with a regression."""
    steps = close.shape[0]
    f = table["return"].to_numpy(float).reshape(steps, len(NAMES))
    r2 = table["r2"].to_numpy(float)[:: len(NAMES)]
    n = table["n"].to_numpy()[:: len(NAMES)]
    reason = table["reason"].to_numpy()[:: len(NAMES)]
    assert reason[0] == "too_few_symbols"
    fitted = 0
    for t in range(1, steps):
        with np.errstate(invalid="ignore", divide="ignore"):
            r = close[t] / close[t - 1] - 1
            v = np.ones_like(r) if weights is None else np.sqrt(weights[t - 1])
        x = exposure[t - 1]
        sample = np.isfinite(r) & np.isfinite(x).all(axis=1) & np.isfinite(v) & (v > 0)
        assert n[t] == sample.sum(), t
        if sample.sum() < K + 2:
            assert reason[t] == "too_few_symbols" and np.isnan(f[t]).all(), t
            continue
        design = sm.add_constant(x[sample], has_constant="add")
        if np.linalg.matrix_rank(design * np.sqrt(v[sample])[:, None]) < K + 1:
            assert reason[t] == "singular" and np.isnan(f[t]).all(), t
            continue
        assert reason[t] == "ok", t
        fit = sm.WLS(r[sample], design, weights=v[sample]).fit()
        scale = float(np.abs(r[sample]).max())
        assert close_enough(f[t], fit.params, scale), (t, f[t], fit.params)
        if np.ptp(r[sample]) == 0:  # every return equal (a flat bar): no R^2
            assert np.isnan(r2[t]), t
        else:
            assert abs(r2[t] - fit.rsquared) <= TOL * max(1.0, abs(fit.rsquared)), t
        fitted += 1
    return fitted


def test_returns_equal_statsmodels_wls_bar_by_bar(ds: Dataset) -> None:
    fitted = check_wls(ds.returns, ds.close, ds.exposure, None)
    assert fitted > 0.9 * ds.grid.size


def test_returns_with_adv_weights_from_the_config(small: Path) -> None:
    """``factors.weighting = "adv"`` from ``--config``: ``v_i = sqrt(weight_i)`` at
    ``t-1``, the weights and exposures from the factor model over the same candles."""
    grid, _, close, _ = _grid_of(small / "data")
    model = replay(small / "data", FactorParams(weighting="adv"))
    assert np.array_equal(model.ts, grid)
    assert np.array_equal(model.close, close, equal_nan=True)
    table = read_table(small / "r_adv.csv")
    assert list(table.columns) == RETURN_COLUMNS
    fitted = check_wls(table, close, model.exposure, model.weights)
    assert fitted > grid.size - 300  # all but the warm-up
    equal = read_table(small / "r.csv")["return"].to_numpy(float)
    assert not np.allclose(table["return"].to_numpy(float), equal, equal_nan=True)


def test_returns_parquet_by_suffix_reads_back_equal(small: Path) -> None:
    pq = pd.read_parquet(small / "r.parquet")
    assert list(pq.columns) == RETURN_COLUMNS
    pd.testing.assert_frame_equal(pq, read_table(small / "r.csv"), check_dtype=False)


def test_csv_floats_are_written_at_full_precision(ds: Dataset) -> None:
    text = (ds.out / "r.csv").read_text().splitlines()[1:]
    fields = [line.split(",")[2] for line in text if line.split(",")[2]]
    assert all(repr(float(s)) == s for s in fields)
    assert max(len(s.lstrip("-").replace(".", "").lstrip("0")) for s in fields) >= 16


# -- factor health ----------------------------------------------------------------


def spearman_oracle(x: FloatArray, y: FloatArray) -> tuple[FloatArray, list[str]]:
    """Per column of ``x`` (symbols x factors), scipy's Spearman with ``y`` over the
    rows where both are finite; NaN with the reason of section 2 where undefined."""
    rho = np.full(x.shape[1], np.nan)
    why = ["ok"] * x.shape[1]
    by_mask: dict[bytes, list[int]] = {}
    for k in range(x.shape[1]):
        mask = np.isfinite(x[:, k]) & np.isfinite(y)
        by_mask.setdefault(mask.tobytes(), []).append(k)
    for key, ks in by_mask.items():
        mask = np.frombuffer(key, dtype=bool)
        if mask.sum() < 3:
            for k in ks:
                why[k] = "too_few_symbols"
            continue
        spread = [k for k in ks if np.ptp(x[mask, k]) > 0 and np.ptp(y[mask]) > 0]
        for k in set(ks) - set(spread):
            why[k] = "no_dispersion"
        if spread:
            m = stats.spearmanr(np.column_stack([x[mask][:, spread], y[mask]])).statistic
            rho[spread] = m if np.ndim(m) == 0 else np.asarray(m)[-1, :-1]
    return rho, why


def ic_matrices(ds: Dataset, h: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The --ic-out file at horizon ``h``: ICs and reasons, bar ``t`` x factor."""
    at_h = ds.ic[ds.ic["horizon"] == h]
    ic = at_h.pivot(index="timestamp", columns="factor", values="ic")[list(CANONICAL)]
    why = at_h.pivot(index="timestamp", columns="factor", values="reason")[list(CANONICAL)]
    return ic, why


def test_ic_out_equals_scipy_spearman(ds: Dataset) -> None:
    assert list(ds.ic.columns) == IC_COLUMNS
    every = 1 if ds.name.startswith("bittrex") else 61
    checked = 0
    for h in HORIZONS[ds.name]:
        ic, why = ic_matrices(ds, h)
        # every grid step t whose t + h the run reached, each factor once
        assert np.array_equal(ic.index.to_numpy(), ds.grid[: ds.grid.size - h])
        assert (ds.ic["horizon"] == h).sum() == ic.size
        ic_values, reasons = ic.to_numpy(float), why.to_numpy()
        step = every if h == 1 else every * 7
        for t in range(0, ds.grid.size - h, step):
            with np.errstate(invalid="ignore", divide="ignore"):
                y = ds.close[t + h] / ds.close[t] - 1
            want, want_why = spearman_oracle(ds.exposure[t], y)
            assert list(reasons[t]) == want_why, (t, h)
            assert np.allclose(ic_values[t], want, rtol=EXACT, atol=EXACT, equal_nan=True), (t, h)
            checked += int(np.isfinite(want).sum())
    assert checked > (30_000 if ds.name.startswith("bittrex") else 500)


def rolling_ic(ds: Dataset, h: int = 1) -> dict[str, pd.DataFrame]:
    """The rolling IC statistics of section 2 at every grid step ``T``, recomputed
    with pandas from the --ic-out file: the ICs of ``t = T-h-W+1 .. T-h``."""
    known = ic_matrices(ds, h)[0].reindex(ds.grid - h * ds.tf)  # IC[T-h], known at T
    known.index = ds.grid
    window = known.rolling(WINDOW, min_periods=1)
    n = window.count()
    enough = n >= MIN_OBS
    mean = window.mean().where(enough)
    std = window.std(ddof=1).where(enough)
    icir = mean / std.where(std > 0)
    d = pd.Series(DIRECTIONS)[list(CANONICAL)]
    hits = (np.sign(known) == d).astype(float).where(known.notna())
    hit = hits.rolling(WINDOW, min_periods=1).sum() / n
    return {
        "n": n,
        "mean_ic": mean,
        "std_ic": std,
        "icir": icir,
        "t_stat": icir * np.sqrt(n),
        "hit_rate": hit.where(enough),
    }


def test_health_json_keys_and_nulls(ds: Dataset) -> None:
    report = ds.health
    assert {"bar_ts", "window", "horizons", "factors", "alerts"} <= set(report)
    assert report["bar_ts"] == ds.grid[-1]
    assert report["window"] == WINDOW
    assert report["horizons"] == list(HORIZONS[ds.name])
    assert list(report["factors"]) == list(CANONICAL)
    figures = {
        "state", "mean_ic", "std_ic", "icir", "t_stat", "n", "hit_rate", "ic_half_life",
        "rank_autocorrelation", "quintile_spread", "cum_return", "max_drawdown",
    }  # fmt: skip
    for name, f in report["factors"].items():
        assert figures <= set(f), name
        assert f["state"] in {"unknown", "unrated", "working", "flat", "inverted"}
        nulls = {k for k in figures if f[k] is None}
        assert set(f["reasons"]) == nulls, name
        assert all(isinstance(v, str) and v for v in f["reasons"].values())
        assert list(f["decay"]) == ["1", "2", "4", "8", "16", "32", "64"]
        assert set(f["horizons"]) == {str(h) for h in HORIZONS[ds.name]}
    for a in report["alerts"]:
        assert a["schema"] == "factorcast.alert/1"
        assert a["id"] == f"{a['kind']}:{a['factor']}:{a['bar_ts']}"
        assert a["window"] == WINDOW and a["horizon"] == 1


def test_health_figures_equal_a_pandas_recomputation(ds: Dataset) -> None:
    stats_at = {k: v.iloc[-1] for k, v in rolling_ic(ds).items()}
    f = ds.returns["return"].to_numpy(float).reshape(ds.grid.size, len(NAMES))[-WINDOW:]
    for k, name in enumerate(CANONICAL):
        got = ds.health["factors"][name]
        assert got["n"] == stats_at["n"][name]
        for field in ("mean_ic", "std_ic", "icir", "t_stat", "hit_rate"):
            want = float(stats_at[field][name])
            assert got[field] == pytest.approx(want, rel=EXACT, abs=EXACT), (name, field)
        track = f[:, 1 + k][np.isfinite(f[:, 1 + k])]
        wealth = np.cumprod(1 + track)
        peak = np.maximum(np.maximum.accumulate(wealth), 1.0)
        assert got["cum_return"] == pytest.approx(wealth[-1] - 1, rel=EXACT, abs=EXACT)
        assert got["max_drawdown"] == pytest.approx((wealth / peak - 1).min(), rel=EXACT, abs=EXACT)


def test_alerts_follow_the_state_machine(ds: Dataset) -> None:
    """The state path of section 2 from the recomputed t statistics, bar by bar
    from the first bar; one alert per transition, in time order."""
    t_stat = rolling_ic(ds)["t_stat"]
    want: list[tuple[str, str, int, str, str]] = []
    states = dict.fromkeys(CANONICAL, "unknown")
    for ts, row in zip(ds.grid, t_stat.itertuples(index=False), strict=True):
        for name, t in zip(CANONICAL, row, strict=True):
            before, after = states[name], next_state(states[name], t, DIRECTIONS[name])
            kind = alert_kind(before, after)
            if kind is not None:
                want.append((kind, name, int(ts), before, after))
            states[name] = after
    got = [
        (a["kind"], a["factor"], a["bar_ts"], a["from_state"], a["to_state"])
        for a in ds.health["alerts"]
    ]
    assert got == want
    assert len(got) > 3
    assert {name: f["state"] for name, f in ds.health["factors"].items()} == states
    stats_by_bar = rolling_ic(ds)
    for a in ds.health["alerts"][:20]:
        assert a["t_stat"] == pytest.approx(
            stats_by_bar["t_stat"].loc[a["bar_ts"], a["factor"]], rel=EXACT
        )
        assert a["n"] == stats_by_bar["n"].loc[a["bar_ts"], a["factor"]]


def next_state(state: str, t: float, d: int) -> str:
    if math.isnan(t):
        return "unknown"
    if d == 0:
        return "unrated"
    s = d * t
    if state == "working" and s >= T_EXIT:
        return "working"
    if state == "inverted" and s <= -T_EXIT:
        return "inverted"
    return "working" if s >= T_ENTER else "inverted" if s <= -T_ENTER else "flat"


def alert_kind(before: str, after: str) -> str | None:
    if before == after:
        return None
    if after == "inverted":
        return "factor_inverted"
    if before == "working" and after == "flat":
        return "factor_decay"
    if after == "working" and before in ("flat", "inverted"):
        return "factor_recovered"
    return None


def test_decay_figures_follow_their_definitions(small: Path) -> None:
    """The decay curve (the mean of the finite ICs of --ic-out per horizon) and the
    IC half-life from it; alphalens' rank autocorrelation with scipy, and the
    quintile spread with pandas.qcut, bar by bar."""
    report = read_json((small / "health.stdout").read_text())
    ic = read_table(small / "ic.csv")
    curve = ic.groupby(["factor", "horizon"])["ic"].mean().unstack()
    grid, _, close, _ = _grid_of(small / "data")
    x = replay(small / "data", FactorParams()).exposure
    autocorr = np.full((grid.size, K), np.nan)
    spread = np.full((grid.size, K), np.nan)
    for t in range(grid.size):
        if t > 0:
            for k in range(K):
                autocorr[t, k] = spearman_oracle(x[t, :, k : k + 1], x[t - 1, :, k])[0][0]
        if t + 1 < grid.size:
            with np.errstate(invalid="ignore", divide="ignore"):
                r = close[t + 1] / close[t] - 1
            for k in range(K):
                ok = np.isfinite(x[t, :, k]) & np.isfinite(r)
                if ok.sum() >= 10:
                    q = pd.qcut(pd.Series(x[t, ok, k]).rank(method="first"), 5, labels=False)
                    spread[t, k] = r[ok][q == 4].mean() - r[ok][q == 0].mean()
    assert np.isfinite(spread).sum() > 1000
    for k, name in enumerate(CANONICAL):
        got = report["factors"][name]
        want = [float(curve.loc[name, h]) for h in DECAY]
        assert [got["decay"][str(h)] for h in DECAY] == pytest.approx(want, rel=EXACT, abs=EXACT)
        d = DIRECTIONS[name]
        half = next(
            (h for h, m in zip(DECAY, want, strict=True) if d * m <= 0.5 * d * want[0]), None
        )
        assert got["ic_half_life"] == (half if d * want[0] > 0 else None), name
        if got["ic_half_life"] is None:
            assert got["reasons"]["ic_half_life"] in ("ic_against_direction", "not_halved")
        assert got["rank_autocorrelation"] == pytest.approx(
            np.nanmean(autocorr[:, k]), rel=EXACT, abs=EXACT
        )
        assert got["quintile_spread"] == pytest.approx(
            np.nanmean(spread[:, k]), rel=EXACT, abs=EXACT
        )


# -- factor risk ------------------------------------------------------------------


def test_risk_json_equals_the_ewma_covariance_of_the_factor_returns(ds: Dataset) -> None:
    risk = ds.risk
    assert {"bar_ts", "factors", "covariance", "specific", "fallback", "model"} <= set(risk)
    assert risk["factors"] == list(NAMES)
    last = ds.risk_step
    assert risk["bar_ts"] == ds.grid[last]
    f = ds.returns["return"].to_numpy(float).reshape(ds.grid.size, len(NAMES))
    window = np.arange(max(0, last - RISK_WINDOW + 1), last + 1)
    window = window[np.isfinite(f[window]).all(axis=1)]
    a = 2.0 ** (-(ds.grid[last] - ds.grid[window]) / ds.tf / HALF_LIFE)
    a /= a.sum()
    want = (f[window] * a[:, None]).T @ f[window]
    got = np.array(risk["covariance"], dtype=float)
    scale = np.sqrt(np.outer(np.diag(want), np.diag(want)))
    assert np.all(np.abs(got - want) <= EXACT * scale), np.abs(got - want) / scale
    assert risk["n_obs"] == window.size
    assert set(risk["specific"]) == set(ds.symbols)
    assert set(risk["fallback"]) <= set(ds.symbols)
    assert all(v is None or v > 0 for v in risk["specific"].values())


# -- bad input --------------------------------------------------------------------


BITTREX = str(DATA / "bittrex-5m")


def error_lines(stderr: str) -> list[str]:
    """stderr without the JSON log lines (the log of the run before the error)."""
    return [line for line in stderr.splitlines() if line and not line.startswith("{")]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["factor", "returns", "--data", "/nonexistent/candles", "--out", "{out}/r.csv"], "exist"),
        (["factor", "returns", "--data", BITTREX, "--out", "{out}/r.txt"], "--out"),
        (["factor", "returns", "--data", BITTREX, "--timeframe", "7x", "--out", "{out}/r.csv"],
         "timeframe"),
        (["factor", "returns", "--data", BITTREX, "--timeframe", "1h", "--out", "{out}/r.csv"],
         "1h"),
        (["factor", "health", "--data", BITTREX, "--horizons", "1,x"], "--horizons"),
        (["factor", "health", "--data", BITTREX, "--horizons", "1,4,4"], "--horizons"),
        (["factor", "health", "--data", BITTREX, "--horizons", "4,16"], "health"),
        (["factor", "health", "--data", BITTREX, "--window", "0"], "--window"),
        (["factor", "health", "--data", BITTREX, "--ic-out", "{out}/ic.json"], "--ic-out"),
        (["factor", "health", "--data", BITTREX, "--config", "{out}/missing.toml"], "config"),
        (["factor", "health", "--data", BITTREX, "--config", "{out}"], "config"),
        (["factor", "health", "--data", BITTREX, "--config", "{out}/bad.toml"], "config"),
        (["factor", "risk", "--data", BITTREX, "--at", "yesterday"], "--at"),
        (["factor", "risk", "--data", BITTREX, "--at", "1515560100001"], "off the grid"),
        (["factor", "risk", "--data", BITTREX, "--at", "2018-02-01T00:00Z"], "outside"),
        (["factor", "risk", "--data", BITTREX, "--at", "2018-01-10T04:50Z"], "outside"),
        (["factor"], "factor"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, args: list[str], says: str
) -> None:
    (tmp_path / "bad.toml").write_text("[health\nwindow = 5\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    proc = factorcast(*(a.replace("{out}", str(tmp_path)) for a in args))
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert says in lines[0], lines[0]
    assert proc.stdout == ""
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_failed_run_leaves_an_existing_output_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    out.write_text("keep me\n")
    proc = factorcast(
        "factor", "returns", "--data", BITTREX, "--timeframe", "1h", "--out", str(out)
    )
    assert proc.returncode == 2
    assert out.read_text() == "keep me\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]


def test_json_prints_nothing_else_on_stdout(datasets: dict[str, Dataset]) -> None:
    for ds in datasets.values():
        for label in ("returns", "health", "risk"):
            stdout = (ds.out / f"{label}.stdout").read_text()
            assert stdout.lstrip().startswith("{") and stdout.rstrip().endswith("}")
            read_json(stdout)  # one JSON object, nothing around it
            assert "analytics_finished" in (ds.out / f"{label}.stderr").read_text()
