"""Bad input and start-up, end to end: one line on stderr naming the problem, exit
code 2, never a traceback; and the recorded-file rules of ``factorcast replay``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from factorcast.strategy.app.settings import load_settings
from factorcast.strategy.app.wiring import warmup_bars
from tests.conftest import FACTORCAST, factorcast

S = 300_000  # 5m in ms
T0 = 1_515_560_100_000  # 2018-01-10 04:55 UTC


def one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """Assert exit code 2 and a single stderr line holding ``words``; return the line."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


# --- start-up ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://nohost:99999", "port must be a number from 1 to 65535"),
        ("redis://127.0.0.1:0", "port must be a number from 1 to 65535"),
        ("http://127.0.0.1:6379", "scheme must be redis://, rediss:// or unix://, not http"),
        ("127.0.0.1:6379", "scheme must be"),
        ("redis://:6379", "no host"),
        ("unix://", "needs the socket's path"),
    ],
)
def test_a_redis_url_that_cannot_work_is_a_config_error(url: str, problem: str) -> None:
    proc = factorcast("run", "--max-bars", "1", env={"FACTORCAST_REDIS__URL": url})
    one_line_error(proc, "config error: redis.url:", problem)


def test_a_redis_url_hides_its_password_in_the_error() -> None:
    proc = factorcast("run", env={"FACTORCAST_REDIS__URL": "http://:pw-Zq81-secret@h:1"})
    line = one_line_error(proc, "config error: redis.url:", "http://:***@h:1")
    assert "pw-Zq81" not in line


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://127.0.0.1:99999", "config error: redis.url: the port must be"),
        ("redis://nohost.invalid:6379", "config error: redis.url: host 'nohost.invalid' does not"),
        ("unix:///nonexistent/redis.sock", "no socket at /nonexistent/redis.sock"),
    ],
)
def test_subscribe_to_a_redis_that_cannot_be_there(url: str, problem: str) -> None:
    one_line_error(factorcast("subscribe", "--url", url, timeout=60), problem)


def test_run_spools_while_a_well_formed_redis_url_has_no_server(tmp_path: Path) -> None:
    proc = factorcast(
        "run",
        "--max-bars",
        "2",
        "--sim-symbols",
        "5",
        "--sim-speed",
        "50",
        "--quiet",
        env={
            "FACTORCAST_REDIS__URL": f"redis://127.0.0.1:{free_port()}",
            "FACTORCAST_LOG__FORMAT": "json",
        },
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line)["event"] for line in proc.stderr.splitlines() if line[:1] == "{"]
    assert "spool_appended" in events


def test_the_metrics_port_in_use_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = factorcast("run", "--max-bars", "1", env={"FACTORCAST_METRICS__PORT": str(port)})
    one_line_error(proc, "config error: metrics.port:", f"127.0.0.1:{port} is already in use")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture
def running_service() -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A real `factorcast run` (embedded exchange and Redis) on its own state directory,
    serving: /healthz answers once its signal handlers are in place."""
    state = Path(tempfile.mkdtemp(prefix="fc-state-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTORCAST_")}
    env.update(
        {
            "FACTORCAST_STATE_DIR": str(state),
            "FACTORCAST_METRICS__PORT": str(port),
            "FACTORCAST_SIM__SYMBOLS": "5",
        }
    )
    proc = subprocess.Popen(
        [*FACTORCAST, "run", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}/healthz") or proc.poll() is not None)
        assert proc.poll() is None, "factorcast run ended at start"
        yield proc, state
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_a_second_run_on_the_same_state_dir_names_the_holder(
    running_service: tuple[subprocess.Popen[bytes], Path],
) -> None:
    first, state = running_service
    lock = state / "LOCK"
    assert lock.read_text().strip() == str(first.pid)
    proc = factorcast("run", "--max-bars", "1", env={"FACTORCAST_STATE_DIR": str(state)})
    one_line_error(proc, f"state_dir: {state} is in use", f"(pid {first.pid})")
    assert first.poll() is None  # the first one runs on
    first.send_signal(signal.SIGTERM)
    assert first.wait(60) == 0
    assert lock.read_text() == ""  # no pid left behind


def test_an_unknown_exchange_id() -> None:
    proc = factorcast("run", "--exchange", "nosuchexchange", "--max-bars", "1")
    one_line_error(proc, "config error: exchange.id: unknown ccxt exchange id 'nosuchexchange'")
    proc = factorcast("run", "--exchange", "binanc", "--max-bars", "1")
    one_line_error(proc, "exchange.id", "did you mean binance")


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["run", "--max-bars", "0"], "run: error: argument --max-bars: must be 1 or more, got 0"),
        (["run", "--max-bars", "-1"], "run: error: argument --max-bars: must be 1 or more"),
        (["run", "--max-bars", "many"], "run: error: argument --max-bars: not a whole number"),
        (["subscribe", "--max-messages", "0"], "subscribe: error: argument --max-messages: must"),
        (["run", "--no-such-flag"], ": error: unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_flags_are_one_line(argv: list[str], problem: str) -> None:
    one_line_error(
        factorcast(*argv), f"factorcast {problem}".replace("factorcast :", "factorcast:")
    )


# --- recorded files in replay ------------------------------------------------------------


def _candles(n: int, step: int = S) -> pd.DataFrame:
    ts = pd.to_datetime([T0 + k * step for k in range(n)], unit="ms", utc=True)
    frame = pd.DataFrame({"date": ts, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5})
    frame["volume"] = range(n)
    frame["close"] = [1.0 + 0.001 * k for k in range(n)]
    return frame


def _replay(data: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return factorcast(
        "replay",
        "--data",
        str(data),
        "--quiet",
        *args,
        env={"FACTORCAST_LOG__FORMAT": "json"} | (env or {}),
    )


def _events(proc: subprocess.CompletedProcess[str], name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    return [e for e in lines if e["event"] == name]


def test_replay_sorts_a_reversed_file(tmp_path: Path) -> None:
    _candles(400).to_feather(tmp_path / "ETH_BTC-5m.feather")
    _candles(400).iloc[::-1].to_csv(tmp_path / "LTC_BTC-5m.csv", index=False)
    out = tmp_path / "signals.jsonl"
    proc = _replay(tmp_path, "--signals-out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (started,) = _events(proc, "replay_started")
    assert (started["bars"], started["rejected"]) == (800, 0)
    signals = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(s["symbol"] == "LTC/BTC" for s in signals) == 400
    assert [e["symbol"] for e in _events(proc, "rows_sorted")] == ["LTC/BTC"]


def test_replay_warns_of_a_header_only_file_and_replays_the_others(tmp_path: Path) -> None:
    _candles(300).to_feather(tmp_path / "ETH_BTC-5m.feather")
    _candles(300).to_parquet(tmp_path / "LTC_BTC-5m.parquet")
    empty = tmp_path / "XRP_BTC-5m.csv"
    empty.write_text("date,open,high,low,close,volume\n")
    proc = _replay(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (skipped,) = _events(proc, "file_skipped")
    assert (skipped["file"], skipped["reason"], skipped["level"]) == (
        str(empty),
        "no_rows",
        "warning",
    )
    (started,) = _events(proc, "replay_started")
    assert (started["symbols"], started["bars"]) == (2, 600)


def test_replay_of_hourly_candles_in_a_5m_file_is_an_error(tmp_path: Path) -> None:
    _candles(300).to_feather(tmp_path / "ETH_BTC-5m.feather")
    _candles(50, step=3_600_000).to_csv(tmp_path / "LTC_BTC-5m.csv", index=False)
    line = one_line_error(_replay(tmp_path))
    assert line == (
        f"factorcast: {tmp_path / 'LTC_BTC-5m.csv'}: its bars are 1h apart, not 5m as its name says"
    )


def test_replay_refuses_a_file_over_the_memory_limit(tmp_path: Path) -> None:
    big = tmp_path / "LTC_BTC-5m.csv"
    _candles(3000).to_csv(big, index=False)
    proc = _replay(tmp_path, env={"FACTORCAST_RECORDED__MAX_FILE_SHARE": "1e-9"})  # ~20 bytes
    line = one_line_error(proc, str(big), "KiB, over the ", "limit for a candle file")
    assert "(recorded.max_file_share 1e-09 of the " in line and "GiB of memory available)" in line


def test_replay_share_is_validated() -> None:
    proc = factorcast("replay", "--data", ".", env={"FACTORCAST_RECORDED__MAX_FILE_SHARE": "2"})
    one_line_error(proc, "config error: recorded.max_file_share")


def test_recorded_candles_shorter_than_the_warm_up_are_named(tmp_path: Path) -> None:
    """The embedded exchange serves the warm-up from the recorded candles: too few of
    them is a configuration error naming sim.data and the lengths, not a traceback."""
    for name in ("ETH_BTC", "LTC_BTC", "XRP_BTC"):
        _candles(300).to_feather(tmp_path / f"{name}-5m.feather")
    proc = factorcast("run", "--sim-data", str(tmp_path), "--quiet", "--log-level", "error")
    line = one_line_error(proc, "sim.data", "300 bars", "health and risk windows")
    assert f"fewer than the {warmup_bars(load_settings())} of history" in line
