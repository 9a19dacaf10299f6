"""`factorcast run` publishing to a real Redis server: the wire round trip, outages,
crashes, shutdown, and secrets.  Every test drives the real service process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from factorcast.adapters.redis.server import EmbeddedRedis
from factorcast.adapters.redis.spool import Spool
from factorcast.adapters.redis.wire import decode_publication
from factorcast.strategy.wire import Signal, verify
from tests.conftest import factorcast

pytestmark = pytest.mark.integration

SYMBOLS = 6
BASE_ENV = {
    "FACTORCAST_LOG__FORMAT": "json",
    "FACTORCAST_SIM__MISSING_PROB": "0",
    "FACTORCAST_SIM__SYMBOLS": str(SYMBOLS),
}


class Service:
    """`factorcast run` in the background, its JSON log events collected."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("FACTORCAST_")}
        full.update({"FACTORCAST_METRICS__PORT": "0", **BASE_ENV, **env})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "factorcast.strategy.app", "run", "--quiet", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=full,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == name:
                    out.append(event)
        return out

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


def client(server: EmbeddedRedis, password: str | None = None) -> redis.Redis:
    return redis.Redis.from_url(server.url, password=password)


def stream(r: redis.Redis) -> list[tuple[str, dict[str, Any]]]:
    return [
        (entry_id.decode(), json.loads(fields[b"data"]))
        for entry_id, fields in r.xrange("factorcast:signals")
    ]


def wait_until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_signals_round_trip_through_stream_pubsub_hash_and_heartbeat(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    key = "integration-signing-key"
    r = client(redis_server)
    pubsub = r.pubsub()
    pubsub.subscribe("factorcast:signals")
    try:
        proc = factorcast(
            "run",
            "--max-bars",
            "8",
            "--sim-speed",
            "20",
            "--quiet",
            env={
                **BASE_ENV,
                "FACTORCAST_REDIS__URL": redis_server.url,
                "FACTORCAST_SIGNING_KEY": key,
            },
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        entries = stream(r)
        assert len(entries) == 8 * SYMBOLS  # live bars only: warm-up is not published
        for entry_id, signal_obj in entries:
            Signal.model_validate(signal_obj)
            assert verify(signal_obj, key.encode())
            ms, seq = entry_id.split("-")
            assert int(ms) == signal_obj["bar_ts"] and int(seq) < SYMBOLS
        assert len({s["id"] for _, s in entries}) == len(entries)
        raw = [fields[b"data"] for _, fields in r.xrange("factorcast:signals")]
        received = []
        deadline = time.monotonic() + 5
        while len(received) < len(raw) and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
            if message and message["type"] == "message":
                received.append(message["data"])
        assert received == raw  # the same JSON, byte for byte, in order
        states = {k.decode(): json.loads(v) for k, v in r.hgetall("factorcast:exposures").items()}
        last_bar = entries[-1][1]["bar_ts"]
        assert len(states) == SYMBOLS
        assert all(s["bar_ts"] == last_bar for s in states.values())
        assert {k for k, v in states[entries[-1][1]["symbol"]]["exposures"].items()} == set(
            entries[-1][1]["exposures"]
        )
        assert r.ttl("factorcast:heartbeat") > 0
    finally:
        pubsub.close()
        r.close()

    sub = factorcast(
        "subscribe",
        "--url",
        redis_server.url,
        "--output",
        "json",
        "--from-start",
        "--max-messages",
        "12",
        env={"FACTORCAST_SIGNING_KEY": key},
        timeout=60,
    )
    assert sub.returncode == 0, sub.stderr[-2000:]
    assert [json.loads(x) for x in sub.stdout.splitlines()] == [s for _, s in entries[:12]]


def test_redis_outage_mid_run_loses_and_doubles_nothing(redis_server: EmbeddedRedis) -> None:
    bars = 40
    service = Service(
        "--max-bars",
        str(bars),
        "--sim-speed",
        "10",
        env={"FACTORCAST_REDIS__URL": redis_server.url, "FACTORCAST_STATE_DIR": tempfile.mkdtemp()},
    )
    r = client(redis_server)
    try:
        wait_until(lambda: r.xlen("factorcast:signals") >= 8 * SYMBOLS)
    finally:
        r.close()
    redis_server.stop()  # killed mid-run
    # Redis stays away for ten bars, however slowly they come: each went to the spool.
    wait_until(lambda: len(service.events("spool_appended")) >= 10)
    redis_server.start()
    assert service.wait() == 0, service.output[-3000:]
    r = client(redis_server)
    try:
        entries = stream(r)
    finally:
        r.close()
    ids = [s["id"] for _, s in entries]
    assert len(ids) == len(set(ids)) == bars * SYMBOLS  # every signal exactly once
    bar_times = sorted({s["bar_ts"] for _, s in entries})
    assert len(bar_times) == bars
    assert [e[0] for e in entries] == sorted(
        (e[0] for e in entries), key=lambda x: tuple(map(int, x.split("-")))
    )


def test_service_killed_and_restarted_writes_no_duplicate(redis_server: EmbeddedRedis) -> None:
    env = {
        "FACTORCAST_REDIS__URL": redis_server.url,
        "FACTORCAST_STATE_DIR": tempfile.mkdtemp(),
        "FACTORCAST_SIM__EPOCH_MS": str(1_790_000_000_000 // 60_000 * 60_000),
    }
    first = Service("--max-bars", "25", "--sim-speed", "10", env=env)
    r = client(redis_server)
    try:
        wait_until(lambda: r.xlen("factorcast:signals") >= 10 * SYMBOLS)
        first.proc.send_signal(signal.SIGKILL)
        first.wait()
        written_before = r.xlen("factorcast:signals")
        second = Service("--max-bars", "25", "--sim-speed", "20", env=env)
        assert second.wait() == 0, second.output[-3000:]
        entries = stream(r)
    finally:
        r.close()
    ids = [s["id"] for _, s in entries]
    assert written_before >= 10 * SYMBOLS
    assert len(ids) == len(set(ids)) == 25 * SYMBOLS  # the same 25 bars, each once
    connected = second.events("sink_connected")
    assert connected and connected[0]["last_id"] is not None  # resumed from the stream


def test_sigterm_finishes_the_bar_flushes_and_exits_0(redis_server: EmbeddedRedis) -> None:
    service = Service(
        "--sim-speed",
        "10",
        env={"FACTORCAST_REDIS__URL": redis_server.url, "FACTORCAST_STATE_DIR": tempfile.mkdtemp()},
    )
    r = client(redis_server)
    try:
        wait_until(lambda: r.xlen("factorcast:signals") >= 5 * SYMBOLS)
        service.proc.send_signal(signal.SIGTERM)
        assert service.wait(60) == 0, service.output[-3000:]
        entries = stream(r)
    finally:
        r.close()
    stopped = service.events("service_stopped")
    assert stopped, service.output[-2000:]
    assert len({s["bar_ts"] for _, s in entries}) == stopped[0]["live_bars"]
    assert len(entries) == stopped[0]["live_bars"] * SYMBOLS


def test_redis_password_never_appears_in_logs_or_errors() -> None:
    password = "pw-Zq81-never-print-me"
    with EmbeddedRedis(password=SecretStr(password), unix_socket=False) as server:
        ok = factorcast(
            "run",
            "--max-bars",
            "3",
            "--sim-speed",
            "20",
            "--quiet",
            env={
                **BASE_ENV,
                "FACTORCAST_REDIS__URL": server.url,
                "FACTORCAST_REDIS__PASSWORD": password,
                "FACTORCAST_LOG__LEVEL": "debug",
            },
        )
        assert ok.returncode == 0, ok.stderr[-2000:]
        assert password not in ok.stdout + ok.stderr
        r = client(server, password)
        try:
            assert r.xlen("factorcast:signals") == 3 * SYMBOLS
        finally:
            r.close()
        in_url = server.url.replace("redis://", f"redis://:{password}@")
        wrong = "wrong-pw-Xk2-never-print-me"
        for env in (
            {"FACTORCAST_REDIS__URL": in_url},
            {"FACTORCAST_REDIS__URL": server.url, "FACTORCAST_REDIS__PASSWORD": wrong},
        ):
            proc = factorcast(
                "run",
                "--max-bars",
                "2",
                "--sim-speed",
                "20",
                "--quiet",
                env={**BASE_ENV, **env, "FACTORCAST_LOG__LEVEL": "debug"},
            )
            text = proc.stdout + proc.stderr
            assert password not in text and wrong not in text
        sub = factorcast(
            "subscribe",
            "--url",
            server.url,
            "--output",
            "json",
            "--max-messages",
            "1",
            env={"FACTORCAST_REDIS__PASSWORD": wrong},
            timeout=60,
        )
        assert sub.returncode != 0
        assert wrong not in sub.stdout + sub.stderr


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_full_spool_keeps_the_service_running_not_ready_and_loses_no_spooled_bar(
    tmp_path: Path,
) -> None:
    """Runs until the checks are done, then stops on SIGTERM: the refusal lasts as
    long as the test needs it, whatever the machine's speed."""
    state = tmp_path / "state"
    service = Service(
        "--sim-speed",
        "10",
        env={
            "FACTORCAST_REDIS__URL": "redis://127.0.0.1:1",  # nothing listens: down throughout
            "FACTORCAST_REDIS__SPOOL_MAX_BYTES": str(2**20),  # the least the config allows
            "FACTORCAST_SIM__SYMBOLS": "50",  # about 30 KB a bar: full after some 35 bars
            "FACTORCAST_STATE_DIR": str(state),
        },
    )
    try:
        wait_until(lambda: service.events("spool_full") or service.proc.poll() is not None)
        assert service.proc.poll() is None, service.output[-3000:]
        url = service.events("metrics_serving")[0]["url"]
        # The spool refuses from here to the end of the run: not ready all along.
        status, body = http_get(f"{url}/readyz")
        assert status == 503, body
        assert json.loads(body)["details"]["redis"] == "down: spool full"
        status, text = http_get(f"{url}/metrics")
        assert status == 200
        refused = [
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("factorcast_spool_full_total ")
        ]
        assert refused and refused[0] >= 1
    finally:
        if service.proc.poll() is None:
            service.proc.send_signal(signal.SIGTERM)
        code = service.wait()
    assert code == 0, service.output[-3000:]
    assert "Traceback" not in service.output
    bars = service.events("service_stopped")[0]["live_bars"]
    first = service.events("spool_full")[0]
    assert (first["reason"], first["level"]) == ("max_bytes", "error")

    spooled = len(service.events("spool_appended"))
    (lost,) = service.events("publications_dropped")  # held in memory when it stopped
    assert lost["reason"] == "shutdown"
    assert spooled + lost["dropped"] == bars  # every live bar spooled or counted
    with Spool(state / "spool") as spool:  # what a restart replays: intact, in order
        pubs = [decode_publication(r.payload) for r in spool.pending()]
    assert len(pubs) == spooled
    times = [p.bar_ts for p in pubs]
    assert times == sorted(set(times)) and times[-1] < lost["first_bar_ts"]
    assert all(0 < len(p.signals) <= 50 for p in pubs)  # a late symbol may be missing
