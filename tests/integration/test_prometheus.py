"""A real Prometheus server scrapes the running service: the `factorcast_` series come
back through its query API, and every metric the dashboard and the alert rules use
exists in a live scrape of the service.

The simulated market has no missing bars here (it drops one at random by default), so
every symbol has exposures at every bar; Prometheus scrapes once a second, so each
series is waited for until its first scrape, never assumed in the first one."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.test_deploy import (
    HISTOGRAM_SUFFIXES,
    METRIC_NAME,
    alert_expressions,
    dashboard_expressions,
)

pytestmark = pytest.mark.integration

SYMBOLS = 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_for(url: str, status: int = 200, timeout: float = 60.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            code, body = get(url)
            if code == status:
                return body
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer {status} in time")


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    """`factorcast run` on embedded defaults, metrics on a free port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTORCAST_")}
    env.update(
        {
            "FACTORCAST_METRICS__PORT": str(port),
            "FACTORCAST_STATE_DIR": tempfile.mkdtemp(prefix="fc-state-"),
            "FACTORCAST_SIM__SYMBOLS": str(SYMBOLS),
            "FACTORCAST_SIM__SPEED": "5",
            "FACTORCAST_SIM__MISSING_PROB": "0",
            "FACTORCAST_LOG__FORMAT": "json",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "factorcast.strategy.app", "run", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/healthz")
        wait_for(f"{url}/readyz")  # warmed up, live bars flowing, Redis reachable
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def prometheus(service: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: `make test` installs Debian's prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    target = service.removeprefix("http://")
    (work / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: factorcast\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/-/ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    _, body = get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def until(
    prometheus: str, expr: str, met: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
) -> list[dict[str, Any]]:
    """The answer to ``expr`` once ``met`` holds for it, or the last one at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = query(prometheus, expr)
        if met(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def symbols_of(result: list[dict[str, Any]]) -> set[str]:
    return {r["metric"]["symbol"] for r in result}


def actions_of(result: list[dict[str, Any]]) -> set[str]:
    return {r["metric"]["action"] for r in result}


def test_prometheus_scrapes_factorcast_series(prometheus: str) -> None:
    (ingested,) = until(prometheus, "factorcast_bars_ingested_total", bool)
    assert float(ingested["value"][1]) > 0
    assert ingested["metric"]["job"] == "factorcast"
    actions = {"buy", "sell", "hold"}
    signals = until(prometheus, "factorcast_signals_total", lambda r: actions_of(r) == actions)
    assert actions_of(signals) == actions
    (ready,) = until(prometheus, "factorcast_ready", lambda r: [x["value"][1] for x in r] == ["1"])
    assert ready["value"][1] == "1"
    (steps,) = query(prometheus, "factorcast_engine_step_duration_seconds_count")
    assert float(steps["value"][1]) > 0
    exposures = until(prometheus, "factorcast_exposure", lambda r: len(symbols_of(r)) == SYMBOLS)
    assert len(symbols_of(exposures)) == SYMBOLS
    (build,) = query(prometheus, "factorcast_build_info")
    assert build["metric"]["exchange"] == "sim" and build["metric"]["model"].startswith("fc6-")


def test_dashboard_and_alerts_use_only_metrics_of_a_live_scrape(service: str) -> None:
    _, body = get(f"{service}/metrics")
    text = body.decode()
    live = set(METRIC_NAME.findall(text))  # HELP/TYPE lines declare every family
    used = {
        name
        for _, expr in [*alert_expressions(), *dashboard_expressions()]
        for name in METRIC_NAME.findall(expr)
    }
    assert used, "no metric names found in the dashboard and rules"
    missing = []
    for name in sorted(used):
        base = next((name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name)
        if name not in live and base not in live:
            missing.append(name)
    assert not missing, f"not in a live scrape: {missing}"


def test_health_endpoints(service: str) -> None:
    assert get(f"{service}/healthz")[0] == 200
    # ready is a state of the moment (the last live bar under two bars old, none
    # late): a slow machine may catch it between two bars, so it is waited for
    body = wait_for(f"{service}/readyz")
    assert json.loads(body)["ready"] is True
