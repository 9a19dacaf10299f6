"""The portfolio commands end to end (``factorcast portfolio``, ``factor regress``,
``factor scan``, ``factor suggest``) on the recorded Binance 1h candles, each
``--json`` against an oracle written here from ANALYTICS.md sections 4-8:

- the closes are read from the candle files here, the exposures from the table of
  ``factorcast replay --exposures-out``, the risk model from ``factor risk
  --json`` and the factor returns from ``factor returns --out`` over the same
  candles; from them plain numpy/pandas recompute the portfolio (weights,
  exposures, Euler risk, VaR/ES, diversification, tilt, groups) and the scan;
- the regressions are statsmodels' OLS with HAC errors and scikit-learn's ridge
  pipeline, fitted here; the optimizer's answer is held to OSQP's over the same
  program.

And the command line's contract for bad input: one line naming it, exit 2,
nothing on stdout; an infeasible target names its constraint and exits 1.
Each command runs once, all of them up front, two at a time.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from numpy.typing import NDArray
from scipy.stats import norm
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from factorcast.factors import CANONICAL, UNIVERSE
from tests.conftest import factorcast
from tests.test_factor_cli import DATA, _grid_of, error_lines, read_table
from tests.test_portfolio_optimizer import osqp_solve, plain_v

pytestmark = pytest.mark.slow

FloatArray = NDArray[np.float64]
BINANCE = DATA / "binance-1h"
BITTREX = str(DATA / "bittrex-5m")
NAMES = (UNIVERSE, *CANONICAL)
BPY = 365 * 24  # bars per year of 1h bars
#: the bar of every run: a cross-section where ALICE and DEGO have no exposures yet
#: (too little history) and BTCST has no bar (an earlier close)
AT = 1_615_802_400_000
VAR_WINDOW = 500
HORIZON = 4
LEVELS = (0.95, 0.99)
RTOL, ATOL = 1e-10, 1e-15
QUANTITIES = {
    "BTC/USDT": 0.5,
    "ETH/USDT": 8.0,
    "ADA/USDT": 6000.0,
    "DOT/USDT": 300.0,
    "LINK/USDT": 250.0,
    "DOGE/USDT": -20000.0,  # a short
    "UNI/USDT": 200.0,
    "ALICE/USDT": 1000.0,
    "DEGO/USDT": 100.0,
    "BTCST/USDT": 5.0,
}
CASH = 4000.0
GROUPS = {  # UNI unmapped, LINK without a region: unclassified
    "BTC/USDT": ("currency", "global"),
    "ETH/USDT": ("platform", "global"),
    "ADA/USDT": ("platform", "europe"),
    "DOT/USDT": ("platform", "europe"),
    "LINK/USDT": ("oracle", ""),
    "DOGE/USDT": ("currency", "americas"),
    "AAVE/USDT": ("defi", "europe"),  # not held
}
WEIGHTS = {
    "BTC/USDT": 0.3,
    "ETH/USDT": 0.25,
    "SOL/USDT": 0.1,
    "DOGE/USDT": -0.05,
    "MATIC/USDT": 0.1,
    "LINK/USDT": 0.1,
}
WANT = {"size": -1.0, "momentum": 1.0}
TOP = 5
TARGET = {"size": -0.5, "momentum": 0.3}
MAX_WEIGHT = 0.25
PENALTY = 2.0
#: ANALYTICS.md section 7's words
WORDS = {
    "market": ("high-beta", "low-beta"),
    "size": ("large", "small"),
    "value": ("cheap", "expensive"),
    "momentum": ("high-momentum", "low-momentum"),
    "volatility": ("high-volatility", "low-volatility"),
    "liquidity": ("liquid", "illiquid"),
}


@dataclass(frozen=True)
class Runs:
    grid: NDArray[np.int64]
    symbols: list[str]
    close: FloatArray  # (grid, n) from the files, NaN where no bar
    exposures: pd.DataFrame  # replay's table
    factor_returns: pd.DataFrame  # timestamp x name
    risk: dict[str, Any]
    out: dict[str, Any]  # label -> the command's JSON
    returns_file: pd.DataFrame


def _run(job: tuple[Path, str, list[str]]) -> None:
    out, label, args = job
    proc = factorcast(*args)
    assert proc.returncode == 0, (label, proc.stderr[-2000:])
    (out / f"{label}.stdout").write_text(proc.stdout)


def _write_csv(path: Path, header: str, rows: list[str]) -> str:
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    out = tmp_path_factory.mktemp("portfolio")
    grid, symbols, close, tf = _grid_of(BINANCE)
    holdings = _write_csv(
        out / "q.csv",
        "symbol,quantity",
        [f"{s},{q}" for s, q in QUANTITIES.items()] + [f"CASH,{CASH}"],
    )
    groups = _write_csv(
        out / "g.csv", "symbol,sector,region", [f"{s},{a},{b}" for s, (a, b) in GROUPS.items()]
    )
    weights = _write_csv(out / "w.csv", "symbol,weight", [f"{s},{w}" for s, w in WEIGHTS.items()])
    # a returns series: two coins and noise, a gap, and rows before the data (not used)
    r = close[1:] / close[:-1] - 1
    rng = np.random.default_rng(7)
    y = 0.6 * r[:, symbols.index("ETH/USDT")] + 0.3 * r[:, symbols.index("ADA/USDT")]
    y = y + rng.normal(0, 0.002, y.size)
    frame = pd.DataFrame({"timestamp": grid[1:], "return": y}).dropna()
    frame = frame[frame.timestamp <= AT].drop(frame.index[100:180])
    early = pd.DataFrame({"timestamp": grid[0] - tf * np.arange(1, 4), "return": 0.01})
    returns_file = pd.concat([early, frame])
    returns_file.to_csv(out / "r.csv", index=False, float_format="%.17g")
    data, at = ["--data", str(BINANCE)], ["--at", str(AT), "--json"]
    jobs = [
        (out, "replay", ["replay", *data, "--quiet", "--exposures-out", str(out / "x.parquet")]),
        (out, "returns", ["factor", "returns", *data, "--quiet", "--out", str(out / "f.parquet")]),
        (out, "risk", ["factor", "risk", *data, *at]),
        (out, "portfolio", ["portfolio", "--holdings", holdings, "--groups", groups,
                            "--horizon", str(HORIZON), *data, *at]),
        (out, "regress", ["factor", "regress", "--holdings", weights, *data, *at]),
        (out, "ridge", ["factor", "regress", "--returns", str(out / "r.csv"), "--method",
                        "ridge", "--lambda", str(PENALTY), *data, *at]),
        (out, "scan", ["factor", "scan", "--want", "size=-1,momentum=1", "--top", str(TOP),
                       *data, *at]),
        (out, "suggest", ["factor", "suggest", "--holdings", weights, "--target",
                          "size=-0.5,momentum=0.3", *data, *at]),
    ]  # fmt: skip
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(_run, jobs))
    fr = read_table(out / "f.parquet")
    labels = ("risk", "portfolio", "regress", "ridge", "scan", "suggest")
    return Runs(
        grid,
        symbols,
        close,
        pd.read_parquet(out / "x.parquet"),
        fr.pivot(index="timestamp", columns="factor", values="return")[list(NAMES)],
        json.loads((out / "risk.stdout").read_text()),
        {k: json.loads((out / f"{k}.stdout").read_text()) for k in labels},
        returns_file,
    )


# -- oracle helpers --------------------------------------------------------------------


def same(got: Any, want: Any, rtol: float = RTOL, atol: float = ATOL) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=float), want, rtol=rtol, atol=atol)


def exposures_at(runs: Runs, ts: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exposures (symbol x factor) and reasons at ``ts``; symbols without a bar
    there have no row."""
    x = runs.exposures[runs.exposures.timestamp == ts]
    values = x.pivot(index="symbol", columns="factor", values="exposure")[list(CANONICAL)]
    reasons = x.pivot(index="symbol", columns="factor", values="reason")[list(CANONICAL)]
    return values, reasons


def risk_model(runs: Runs) -> tuple[FloatArray, pd.Series]:
    risk = runs.risk
    assert risk["bar_ts"] == AT and risk["factors"] == list(NAMES) and risk["reason"] == "ok"
    cov = np.array(risk["covariance"], dtype=float)
    specific = pd.Series({s: np.nan if v is None else v for s, v in risk["specific"].items()})
    return cov, specific


def row_of(runs: Runs, ts: int) -> int:
    return int((ts - runs.grid[0]) // (runs.grid[1] - runs.grid[0]))


def simple_returns(runs: Runs) -> FloatArray:
    r = np.full_like(runs.close, np.nan)
    r[1:] = runs.close[1:] / runs.close[:-1] - 1
    return r


def tilt_sentence(x: dict[str, float]) -> str:
    """ANALYTICS.md section 7, written out."""
    items = [(k, v) for k, v in x.items() if k != UNIVERSE]

    def pick(lo: float, hi: float) -> list[tuple[str, float]]:
        chosen = [(k, v) for k, v in items if lo <= abs(v) < hi]
        return sorted(chosen, key=lambda kv: -abs(kv[1]))

    def word(k: str, v: float) -> str:
        return WORDS[k][0] if v > 0 else WORDS[k][1]

    strong = [word(k, v) for k, v in pick(0.5, math.inf)]
    mild = [word(k, v) for k, v in pick(0.25, 0.5)]
    neutral = [k for k, _ in pick(0.0, 0.25)]
    if not strong and not mild:
        return "No factor tilt."
    if strong:
        text = "Tilted to " + ", ".join(strong) + ("; mildly to " + ", ".join(mild) if mild else "")
    else:
        text = "Tilted mildly to " + ", ".join(mild)
    text += "."
    return text + (" Neutral on " + ", ".join(neutral) + "." if neutral else "")


# -- portfolio -------------------------------------------------------------------------


def test_portfolio_equals_a_numpy_recomputation(runs: Runs) -> None:
    got = runs.out["portfolio"]
    t = row_of(runs, AT)
    idx = [runs.symbols.index(s) for s in QUANTITIES]
    asof = pd.DataFrame(runs.close[: t + 1, idx]).ffill().iloc[-1].to_numpy()
    value = np.array(list(QUANTITIES.values())) * asof
    nav = value.sum() + CASH
    w = pd.Series(value / nav, index=list(QUANTITIES))
    assert got["bar_ts"] == AT and got["horizon"] == HORIZON and got["quote"] == "USDT"
    same(got["nav"], nav)
    same([got["weights"][s] for s in w.index], w.to_numpy())

    x_all, reasons = exposures_at(runs, AT)
    covered = [s for s in w.index if s in x_all.index and x_all.loc[s].notna().all()]
    uncovered = {
        s: "missing_bar"
        if s not in x_all.index
        else next(reasons.loc[s, k] for k in CANONICAL if pd.isna(x_all.loc[s, k]))
        for s in w.index
        if s not in covered
    }
    assert uncovered == {
        "ALICE/USDT": "insufficient_history",
        "DEGO/USDT": "insufficient_history",
        "BTCST/USDT": "missing_bar",
    }
    assert got["uncovered"] == uncovered
    wc = w[covered].to_numpy()
    xc = x_all.loc[covered].to_numpy()
    b = np.column_stack([np.ones(len(covered)), xc])
    c = wc[:, None] * b
    x = c.sum(axis=0)
    assert list(got["contributions"]) == covered
    same([[got["contributions"][s][k] for k in NAMES] for s in covered], c)
    same([got["exposures"][k] for k in NAMES], x)
    same(got["covered_weight"], np.abs(wc).sum())

    cov, spec = risk_model(runs)
    d = spec[covered].to_numpy()
    variance = x @ cov @ x + (wc**2 * d).sum()
    sigma = math.sqrt(variance)
    risk = got["risk"]
    same(risk["sigma"], sigma)
    same(risk["sigma_annual"], sigma * math.sqrt(BPY))
    same(risk["sigma_horizon"], sigma * math.sqrt(HORIZON))
    factor_rc = x * (cov @ x) / sigma
    spec_rc = (wc**2 * d).sum() / sigma
    v = b @ cov @ b.T + np.diag(d)
    position_rc = wc * (v @ wc) / sigma
    same([risk["factor_contributions"][k] for k in NAMES], factor_rc)
    same(risk["specific_contribution"], spec_rc)
    same([risk["position_contributions"][s] for s in covered], position_rc)
    same(sum(risk["factor_contributions"].values()) + risk["specific_contribution"], sigma)

    root = math.sqrt(HORIZON)
    for a in LEVELS:
        z = norm.ppf(a)
        same(got["var"]["parametric"][f"{a:g}"], z * sigma * root)
        same(got["es"]["parametric"][f"{a:g}"], sigma * root * norm.pdf(z) / (1 - a))
    cols = [runs.symbols.index(s) for s in covered]
    r = simple_returns(runs)[t - VAR_WINDOW + 1 : t + 1][:, cols]
    r = r[np.isfinite(r).all(axis=1)]
    p = r @ wc
    assert got["var"]["historical_bars"] == len(p) > 400
    for a in LEVELS:
        var = -np.quantile(p, 1 - a)
        same(got["var"]["historical"][f"{a:g}"], var * root)
        same(got["es"]["historical"][f"{a:g}"], -p[p <= -var].mean() * root)

    rc = np.abs(np.append(factor_rc, spec_rc))
    share = rc / rc.sum()
    hhi = (share**2).sum()
    div = got["diversification"]
    same(div["ratio"], (np.abs(wc) * np.sqrt(np.diag(v))).sum() / sigma)
    same(div["score"], (1 - hhi) / (1 - 1 / rc.size))
    same(div["effective_bets"], 1 / hhi)

    assert got["tilt"]["sentence"] == tilt_sentence(dict(zip(NAMES, x, strict=True)))

    frame = pd.DataFrame(c, index=covered, columns=list(NAMES))
    for j, dim in enumerate(("sector", "region")):
        label = pd.Series(
            {s: (GROUPS[s][j] if s in GROUPS and GROUPS[s][j] else "unclassified") for s in covered}
        )
        want = frame.groupby(label).sum()
        groups = got["groups"][dim]
        assert set(groups) == set(want.index)
        assert list(groups)[-1] == "unclassified"
        for g, row in want.iterrows():
            same(groups[g]["weight"], row[UNIVERSE])
            same([groups[g]["contributions"][k] for k in NAMES], row.to_numpy())
            assert groups[g]["members"] == [s for s in covered if label[s] == g]
    assert got["reasons"] == {}


# -- regression ------------------------------------------------------------------------


def factor_returns_to(runs: Runs, ts: int) -> pd.DataFrame:
    f = runs.factor_returns
    return f[f.index <= ts]


def test_regress_holdings_equals_statsmodels_hac(runs: Runs) -> None:
    got = runs.out["regress"]
    f = factor_returns_to(runs, AT)
    rows = [row_of(runs, int(ts)) for ts in f.index]
    cols = [runs.symbols.index(s) for s in WEIGHTS]
    r = simple_returns(runs)[rows][:, cols]
    w = np.array(list(WEIGHTS.values()))
    y = r @ w
    ok = np.isfinite(r).all(axis=1) & np.isfinite(f.to_numpy()).all(axis=1)
    n = int(ok.sum())
    lags = math.floor(4 * (n / 100) ** (2 / 9))
    fit = sm.OLS(y[ok], sm.add_constant(f.to_numpy()[ok])).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags}
    )
    assert got["method"] == "ols" and got["T"] == n and got["maxlags"] == lags > 0
    assert got["first_ts"] == int(f.index[ok][0]) and got["last_ts"] == int(f.index[ok][-1])
    same(got["alpha"], fit.params[0], rtol=1e-9)
    same(got["alpha_annual"], fit.params[0] * BPY, rtol=1e-9)
    same([got["loadings"][k] for k in NAMES], fit.params[1:], rtol=1e-9)
    same([got["se"][k] for k in NAMES], fit.bse[1:], rtol=1e-9)
    same([got["t"][k] for k in NAMES], fit.tvalues[1:], rtol=1e-9)
    same([got["p"][k] for k in NAMES], fit.pvalues[1:], rtol=1e-9, atol=1e-15)
    same([got["alpha_se"], got["alpha_t"]], [fit.bse[0], fit.tvalues[0]], rtol=1e-9)
    same([got["r2"], got["r2_adj"]], [fit.rsquared, fit.rsquared_adj], rtol=1e-9)
    for i, s in enumerate(WEIGHTS):
        own = sm.OLS(r[ok, i], sm.add_constant(f.to_numpy()[ok])).fit()
        pos = got["positions"][s]
        same(pos["alpha"], own.params[0], rtol=1e-8, atol=1e-15)
        same([pos["loadings"][k] for k in NAMES], own.params[1:], rtol=1e-8, atol=1e-12)
    combined = sum(WEIGHTS[s] * np.array(list(got["positions"][s]["loadings"].values()))
                   for s in WEIGHTS)  # fmt: skip
    gap = np.abs(combined - np.array([got["loadings"][k] for k in NAMES])).max()
    assert gap <= got["max_disagreement"] + 1e-15 and got["max_disagreement"] < 1e-10


def test_regress_returns_file_equals_sklearn_ridge(runs: Runs) -> None:
    got = runs.out["ridge"]
    f = factor_returns_to(runs, AT)
    y = runs.returns_file.set_index("timestamp")["return"].reindex(f.index).to_numpy()
    ok = np.isfinite(y) & np.isfinite(f.to_numpy()).all(axis=1)
    fs, ys = f.to_numpy()[ok], y[ok]
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=PENALTY)).fit(fs, ys)
    loadings = pipe[-1].coef_ / pipe[0].scale_
    alpha = ys.mean() - loadings @ fs.mean(axis=0)
    fitted = pipe.predict(fs)
    r2 = 1 - ((ys - fitted) ** 2).sum() / ((ys - ys.mean()) ** 2).sum()
    k = fs.shape[1]
    assert got["method"] == "ridge" and got["lambda"] == PENALTY and got["T"] == int(ok.sum())
    assert got["input"] == "returns" and got["positions"] is None
    assert got["reasons"] == {"positions": "no_holdings"}
    assert got["maxlags"] is None and got["se"][UNIVERSE] is None
    same([got["loadings"][n] for n in NAMES], loadings, rtol=1e-8, atol=1e-12)
    same(got["alpha"], alpha, rtol=1e-8, atol=1e-14)
    same(got["r2"], r2, rtol=1e-9)
    same(got["r2_adj"], 1 - (ys.size - 1) / (ys.size - k - 1) * (1 - r2), rtol=1e-9)


# -- scan and suggest ------------------------------------------------------------------


def test_scan_equals_a_pandas_recomputation(runs: Runs) -> None:
    got = runs.out["scan"]
    x_all, _ = exposures_at(runs, AT)
    cov, spec = risk_model(runs)
    x = x_all[x_all.notna().all(axis=1)]
    t = np.array([WANT.get(k, 0.0) for k in CANONICAL])
    b = np.column_stack([np.ones(len(x)), x.to_numpy()])
    var = np.einsum("ij,jk,ik->i", b, cov, b) + spec[x.index].to_numpy()
    table = pd.DataFrame(index=x.index)
    table["alignment"] = x.to_numpy() @ t / np.linalg.norm(t)
    table["purity"] = table["alignment"] / np.linalg.norm(x.to_numpy(), axis=1)
    table["efficiency"] = table["alignment"] / np.sqrt(var)
    table = table.sort_values("efficiency", ascending=False, kind="stable")
    assert got["want"] == WANT and got["bar_ts"] == AT
    assert [s["symbol"] for s in got["symbols"]] == list(table.index)
    for col in ("alignment", "purity", "efficiency"):
        same([s[col] for s in got["symbols"]], table[col].to_numpy())
    same([got["symbols"][0]["exposures"][k] for k in CANONICAL], x.loc[table.index[0]])
    top = list(table.index[:TOP])
    basket = got["basket"]
    assert basket["symbols"] == top
    wb = np.full(TOP, 1 / TOP)
    bt = np.column_stack([np.ones(TOP), x.loc[top].to_numpy()])
    same([basket["exposures"][k] for k in NAMES], wb @ bt)
    v = plain_v(cov, spec[top].to_numpy(), x.loc[top].to_numpy())
    same(basket["sigma"], math.sqrt(wb @ v @ wb))


def test_suggest_equals_osqp(runs: Runs) -> None:
    got = runs.out["suggest"]
    x_all, _ = exposures_at(runs, AT)
    cov, spec = risk_model(runs)
    ok = x_all.notna().all(axis=1) & spec.reindex(x_all.index).notna()
    program = list(x_all.index[ok])  # the universe's order, as the exposure table's
    x = x_all.loc[program].to_numpy()
    w = np.array([WEIGHTS.get(s, 0.0) for s in program])
    assert all(s in program for s in WEIGHTS) and got["left_out"] == {}
    v = plain_v(cov, spec[program].to_numpy(), x)
    status, w_osqp = osqp_solve(v, x, w, TARGET, MAX_WEIGHT, long_only=True)
    assert status == "solved"
    new = np.array([got["weights"].get(s, 0.0) for s in program])
    trades = np.array([got["trades"].get(s, 0.0) for s in program])
    same(trades, new - w, atol=1e-15)
    objective = (new - w) @ v @ (new - w)
    oracle = (w_osqp - w) @ v @ (w_osqp - w)
    assert abs(objective - oracle) <= 1e-4 * oracle
    same(got["objective"], objective, rtol=1e-9)
    for k, value in TARGET.items():
        assert abs(new @ x[:, CANONICAL.index(k)] - value) <= 1e-6
    assert abs(new.sum() - w.sum()) <= 1e-6
    assert new.min() >= 0 and new.max() <= MAX_WEIGHT
    b = np.column_stack([np.ones(len(program)), x])
    same([got["exposures"][k] for k in NAMES], new @ b, atol=1e-12)
    same([got["current_exposures"][k] for k in NAMES], w @ b, atol=1e-12)
    same(got["turnover"], np.abs(new - w).sum(), rtol=1e-9)
    same(got["tracking_error_annual"], math.sqrt(objective * BPY), rtol=1e-9)
    assert got["tilt"]["sentence"] == tilt_sentence(got["exposures"])


def test_json_has_the_keys_of_section_13(runs: Runs) -> None:
    keys = {
        "portfolio": {"bar_ts", "weights", "exposures", "contributions", "covered_weight",
                      "uncovered", "risk", "var", "es", "diversification", "tilt", "groups"},
        "regress": {"method", "T", "maxlags", "alpha", "alpha_annual", "loadings", "se", "t",
                    "p", "r2", "r2_adj", "positions", "max_disagreement"},
        "scan": {"want", "symbols", "basket"},
        "suggest": {"weights", "trades", "exposures", "tilt", "objective",
                    "tracking_error_annual", "turnover"},
    }  # fmt: skip
    for label, want in keys.items():
        assert want <= set(runs.out[label]), label
    p = runs.out["portfolio"]
    assert set(p["risk"]) >= {"sigma", "sigma_annual", "factor_contributions",
                              "specific_contribution", "position_contributions"}  # fmt: skip
    assert set(p["var"]) >= {"parametric", "historical", "historical_bars"}
    assert set(p["tilt"]["factors"]["size"]) == {"exposure", "strength", "word"}
    assert set(runs.out["scan"]["basket"]) >= {"symbols", "exposures", "sigma"}
    assert set(runs.out["scan"]["symbols"][0]) >= {"symbol", "alignment", "purity",
                                                   "efficiency", "exposures"}  # fmt: skip


# -- bad input -------------------------------------------------------------------------

H = "symbol,weight\nETH/BTC,0.5\nLTC/BTC,0.3\n"
BAD: list[tuple[str, dict[str, str], list[str], str]] = [
    ("unknown symbol", {"h.csv": "symbol,weight\nETH/BTC,0.5\nFOO/BTC,0.1\n"},
     ["portfolio", "--holdings", "{h.csv}"], "unknown symbol FOO/BTC"),
    ("duplicate symbol", {"h.csv": "symbol,weight\nETH/BTC,0.5\nETH/BTC,0.1\n"},
     ["portfolio", "--holdings", "{h.csv}"], "duplicate symbol ETH/BTC"),
    ("both", {"h.csv": "symbol,weight,quantity\nETH/BTC,0.5,3\n"},
     ["portfolio", "--holdings", "{h.csv}"], "ETH/BTC has both weight and quantity"),
    ("neither", {"h.csv": "symbol,weight,quantity\nETH/BTC,,\n"},
     ["factor", "suggest", "--holdings", "{h.csv}", "--target", "size=-0.5"],
     "ETH/BTC has neither weight nor quantity"),
    ("mixed quote", {"h.csv": "symbol,weight\nETH/BTC,0.5\nETH/USDT,0.5\n"},
     ["portfolio", "--holdings", "{h.csv}"], "mixed quote currency"),
    ("nav", {"h.csv": "symbol,quantity\nETH/BTC,1\nCASH,-5\n"},
     ["factor", "regress", "--holdings", "{h.csv}"], "NAV <= 0"),
    ("unknown target", {"h.csv": H},
     ["factor", "suggest", "--holdings", "{h.csv}", "--target", "beta=1"],
     "target: unknown factor 'beta'"),
    ("unknown want", {}, ["factor", "scan", "--want", "size=-1,universe=1"],
     "want: unknown factor 'universe'"),
    ("no overlap", {"r.csv": "timestamp,return\n1700000000000,0.01\n1700000300000,0.02\n"},
     ["factor", "regress", "--returns", "{r.csv}"], "does not overlap"),
    ("mapping twice", {"h.csv": H, "g.csv": "symbol,sector\nETH/BTC,a\nETH/BTC,b\n"},
     ["portfolio", "--holdings", "{h.csv}", "--groups", "{g.csv}"],
     "symbol ETH/BTC appears twice"),
    ("at with redis", {"h.csv": H},
     ["portfolio", "--holdings", "{h.csv}", "--redis", "redis://127.0.0.1:1", "--at", "0"],
     "--at: only with --data"),
]  # fmt: skip


def _bad(case: tuple[str, dict[str, str], list[str], str], tmp: Path) -> tuple[str, Any, str]:
    name, files, args, says = case
    where = tmp / name.replace(" ", "_")
    where.mkdir()
    for fname, text in files.items():
        (where / fname).write_text(text)
    argv = [a.replace("{", str(where) + "/").replace("}", "") for a in args]
    if "--redis" not in argv and "--data" not in argv:
        argv += ["--data", BITTREX]
    return name, factorcast(*argv), says


def test_bad_input_is_one_line_exit_2_and_nothing_on_stdout(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: _bad(c, tmp_path), BAD))
    for name, proc, says in results:
        assert proc.returncode == 2, (name, proc.stderr[-1500:])
        lines = error_lines(proc.stderr)
        assert len(lines) == 1, (name, proc.stderr)
        assert says in lines[0], (name, lines[0])
        assert proc.stdout == "", name


def test_infeasible_target_names_the_constraint_and_exits_1(tmp_path: Path) -> None:
    holdings = tmp_path / "h.csv"
    holdings.write_text(H)
    proc = factorcast(
        "factor", "suggest", "--holdings", str(holdings), "--target", "momentum=5",
        "--data", BITTREX, "--json",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-1500:]
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "target momentum=5 is out of reach" in lines[0], lines
    assert proc.stdout == ""
