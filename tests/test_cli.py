"""The command line end to end: replay on the shared data, schema, configuration errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest

from factorcast.factors import CANONICAL, FactorParams
from factorcast.strategy.wire import Signal
from tests.conftest import factorcast


def test_replay_exposure_table_layout(replay_run: dict[str, Any]) -> None:
    exp = replay_run["exposures"]
    assert list(exp.columns) == ["timestamp", "symbol", "factor", "raw", "exposure", "reason"]
    # one row per bar time, per symbol in the cross-section, per factor
    assert len(exp) == 57_546 * len(CANONICAL)
    assert exp.groupby(["timestamp", "symbol"]).size().eq(len(CANONICAL)).all()
    assert (exp.groupby(["timestamp", "symbol"])["factor"].agg(tuple) == CANONICAL).all()
    # a NaN exposure always carries its reason, a finite one never does
    assert (exp["reason"][exp["exposure"].isna()] != "ok").all()
    assert (exp["reason"][exp["exposure"].notna()] == "ok").all()
    assert set(exp["reason"]) >= {"ok", "insufficient_history"}
    assert exp["timestamp"].min() == 1515560100000  # 2018-01-10 04:55 UTC, bar open time


def test_replay_summary_and_counts(replay_run: dict[str, Any]) -> None:
    stdout = replay_run["proc"].stdout
    assert "latest exposures" in stdout and "signals by action" in stdout
    actions = pd.Series([s["action"] for s in replay_run["signals"]]).value_counts()
    for action, n in actions.items():
        assert f"{action}" in stdout and str(n) in stdout


def test_replay_signals_follow_the_wire_format(replay_run: dict[str, Any]) -> None:
    signals = replay_run["signals"]
    assert len(signals) == 57_546  # every symbol in every cross-section, holds included
    schema = json.loads(factorcast("schema").stdout)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    ids = set()
    for s in signals[::7]:
        validator.validate(s)
        Signal.model_validate(s)
    for s in signals:
        ids.add(s["id"])
        assert s["id"] == f"trend:binance:{s['symbol']}:5m:{s['bar_ts']}"
        assert {k for k, v in s["exposures"].items() if v is None} == set(s["missing"])
        assert list(s["exposures"]) == list(CANONICAL)
    assert len(ids) == len(signals)
    assert {s["model"] for s in signals} == {FactorParams().tag()}
    assert {s["action"] for s in signals} == {"buy", "sell", "hold"}


def test_signal_exposures_equal_the_exposure_table(replay_run: dict[str, Any]) -> None:
    exp = replay_run["exposures"].set_index(["timestamp", "symbol", "factor"])["exposure"]
    sample = replay_run["signals"][-500:]
    for s in sample:
        for name, value in s["exposures"].items():
            got = exp.loc[(s["bar_ts"], s["symbol"], name)]
            if value is None:
                assert np.isnan(got)
            else:
                assert got == value  # both are exact float64 round trips


def test_parquet_output_equals_csv(
    shared_data: Path, tmp_path: Path, replay_run: dict[str, Any]
) -> None:
    proc = factorcast(
        "replay",
        "--data",
        str(shared_data),
        "--quiet",
        "--exposures-out",
        str(tmp_path / "e.parquet"),
    )
    assert proc.returncode == 0, proc.stderr
    pq = pd.read_parquet(tmp_path / "e.parquet")
    csv = replay_run["exposures"]
    assert list(pq.columns) == list(csv.columns)
    pd.testing.assert_frame_equal(pq.reset_index(drop=True), csv, check_dtype=False)


def test_schema_command_prints_the_shipped_schema() -> None:
    proc = factorcast("schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    shipped = Path(__file__).resolve().parents[1] / "strategy" / "signal.schema.json"
    assert json.loads(shipped.read_text()) == schema
    assert schema["$id"] == "factorcast.signal/1"
    assert {"id", "action", "exposures", "missing", "model"} <= set(schema["required"])


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"FACTORCAST_FACTORS__BETA_WINDOW": "-5"}, "factors.beta_window"),
        ({"FACTORCAST_FACTORS__WEIGHTING": "market_cap"}, "factors.weighting"),
        ({"FACTORCAST_SIGNALS__MIN_CONFIDENCE": "2"}, "signals.min_confidence"),
        ({"FACTORCAST_SIGNALS__WEIGHTS": '{"nonsense": 1}'}, "signals"),
        ({"FACTORCAST_FACTORS__VALUE_LAG": "10"}, "factors"),
        ({"FACTORCAST_NOPE": "1"}, "FACTORCAST_NOPE"),
        ({"FACTORCAST_FACTORS__NOPE": "1"}, "factors.nope"),
        ({"FACTORCAST_EVENT_LOOP": "trio"}, "event_loop"),
    ],
)
def test_bad_config_is_one_line_naming_the_field_exit_2(
    shared_data: Path, env: dict[str, str], field: str
) -> None:
    proc = factorcast("replay", "--data", str(shared_data), env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"config error: {field}" in lines[0]
    assert "Traceback" not in proc.stderr


def test_bad_config_file(tmp_path: Path, shared_data: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[factors]\nbeta_window = 120\nbeta_min_obs = 60\n")
    bad = tmp_path / "bad.toml"
    bad.write_text("[factors]\nvolatility_window = 'twenty'\n")
    broken = tmp_path / "broken.toml"
    broken.write_text("[factors\n")
    proc = factorcast("replay", "--data", str(shared_data), "--config", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("factorcast: config error: factors.volatility_window")
    proc = factorcast("replay", "--data", str(shared_data), "--config", str(broken))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    proc = factorcast("replay", "--data", str(shared_data), "--config", str(tmp_path / "no.toml"))
    assert proc.returncode == 2 and "not found" in proc.stderr
    out = tmp_path / "s.jsonl"
    proc = factorcast(
        "replay",
        "--data",
        str(shared_data),
        "--config",
        str(good),
        "--quiet",
        "--signals-out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    first = json.loads(out.read_text().splitlines()[0])
    assert first["model"] == FactorParams(beta_window=120, beta_min_obs=60).tag()


def test_bad_data_directory_exits_2(tmp_path: Path) -> None:
    proc = factorcast("replay", "--data", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("event_loop", "runs_on"), [("auto", "uvloop"), ("asyncio", "asyncio")])
def test_run_stops_by_itself_after_max_bars(tmp_path: Path, event_loop: str, runs_on: str) -> None:
    out = tmp_path / "run.jsonl"
    proc = factorcast(
        "run",
        "--max-bars",
        "5",
        "--sim-symbols",
        "12",
        "--sim-speed",
        "50",
        "--signals-out",
        str(out),
        env={"FACTORCAST_LOG__FORMAT": "json", "FACTORCAST_EVENT_LOOP": event_loop},
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert [e["event_loop"] for e in events if e["event"] == "exchange_connected"] == [runs_on]
    stopped = [e for e in events if e["event"] == "service_stopped"]
    assert stopped and stopped[0]["live_bars"] == 5
    assert "latest" in proc.stdout  # the live table
    signals = [json.loads(line) for line in out.read_text().splitlines()]
    live_ts = sorted({s["bar_ts"] for s in signals})[-5:]
    last = [s for s in signals if s["bar_ts"] == live_ts[-1]]
    # after the warm-up, exposures exist from the first live bar
    assert sum(v is not None for s in last for v in s["exposures"].values()) > 0.9 * 6 * len(last)


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[redis]\npassword = 918273645\n", "redis.password"),
        ("signing_key = 918273645\n", "signing_key"),
        ('[exchange]\nembedded = false\napi_key = 918273645\nsecret = "s"\n', "exchange.api_key"),
    ],
)
def test_a_bad_secret_is_named_never_shown(tmp_path: Path, toml: str, field: str) -> None:
    """Configuration errors repeat the bad value, except a secret's: it is printed
    before logging (and its redaction) is set up."""
    config = tmp_path / "factorcast.toml"
    config.write_text(toml)
    proc = factorcast("replay", "--data", str(tmp_path), "--config", str(config))
    assert proc.returncode == 2, proc.stderr
    assert field in proc.stderr
    assert "918273645" not in proc.stderr + proc.stdout
