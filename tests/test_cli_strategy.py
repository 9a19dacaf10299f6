"""Strategy plug-ins that cannot be used: one line naming ``strategy.name`` or
``strategy.params`` on stderr, exit code 2, no traceback, and, for ``run``, before
anything is asked of the exchange."""

from __future__ import annotations

import json
import os
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import factorcast

#: Plug-in modules the cases name, importable by the command through PYTHONPATH.
PLUGINS = {
    "fc_plugin_ok": """
        import numpy as np

        from factorcast.strategy.strategies import Decision


        class Flat:
            name = "flat"

            def __init__(self, symbols, lookback=3):
                if lookback < 1:
                    raise ValueError("lookback must be >= 1")
                self.n = len(symbols)

            def decide(self, xs, factors):
                n = self.n
                return Decision(np.zeros(n, np.int8), np.zeros(n), np.zeros(n, bool))


        class Nameless:
            def __init__(self, symbols):
                pass

            def decide(self, xs, factors):
                raise AssertionError("never called")


        class NotAStrategy:
            def __init__(self, symbols):
                pass


        def helper(symbols):
            return Flat(symbols)


        LIMIT = 5
        """,
    "fc_plugin_missing_dep": "import fc_no_such_dependency\n",
    "fc_plugin_raises": "raise ImportError('fc_plugin_raises needs libfoo 2')\n",
    "fc_plugin_crashes": "raise RuntimeError('configuration of the plug-in\\nis broken')\n",
}

CASES = [
    # a module that does not exist, or whose package does not
    ("fc_no_such_module:Flat", {}, "name", "no module named 'fc_no_such_module'"),
    ("fc_no_such_pkg.sub.Flat", {}, "name", "no module named 'fc_no_such_pkg'"),
    # a module that fails while it is imported
    (
        "fc_plugin_missing_dep:Flat",
        {},
        "name",
        "cannot import 'fc_plugin_missing_dep': ModuleNotFoundError: "
        "No module named 'fc_no_such_dependency'",
    ),
    (
        "fc_plugin_raises:Flat",
        {},
        "name",
        "cannot import 'fc_plugin_raises': ImportError: fc_plugin_raises needs libfoo 2",
    ),
    (
        "fc_plugin_crashes:Flat",
        {},
        "name",
        "cannot import 'fc_plugin_crashes': RuntimeError: configuration of the plug-in is broken",
    ),
    # an attribute missing
    ("fc_plugin_ok:Nope", {}, "name", "module 'fc_plugin_ok' has no attribute 'Nope'"),
    ("fc_plugin_ok.Nope", {}, "name", "module 'fc_plugin_ok' has no attribute 'Nope'"),
    # an object that is not a strategy class
    ("fc_plugin_ok:helper", {}, "name", "is not a strategy class but a function object"),
    ("fc_plugin_ok:LIMIT", {}, "name", "is not a strategy class but a int object"),
    ("fc_plugin_ok:NotAStrategy", {}, "name", "it has no decide(xs, factors) method"),
    ("fc_plugin_ok:Nameless", {}, "name", "builds no strategy: it has no name"),
    ("nope", {}, "name", "'nope' is neither a built-in strategy (trend) nor module:Class"),
    # parameters the constructor refuses: by its signature, or by its own checks
    ("trend", {"fats": 5}, "params", "trend: got an unexpected keyword argument 'fats'"),
    ("trend", {"fast": 30, "slow": 26}, "params", "trend: trend needs 1 <= fast < slow"),
    ("fc_plugin_ok:Flat", {"lookback": 0}, "params", "lookback must be >= 1"),
    ("fc_plugin_ok:Flat", {"window": 5}, "params", "unexpected keyword argument 'window'"),
]


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp("plugins")
    for module, source in PLUGINS.items():
        (directory / f"{module}.py").write_text(textwrap.dedent(source))
    return os.pathsep.join(p for p in (str(directory), os.environ.get("PYTHONPATH")) if p)


def _env(plugin_path: str, name: str, params: dict[str, object]) -> dict[str, str]:
    return {
        "PYTHONPATH": plugin_path,
        "FACTORCAST_STRATEGY__NAME": name,
        "FACTORCAST_STRATEGY__PARAMS": json.dumps(params),
    }


def _assert_one_line(stderr: str, field: str, message: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"factorcast: config error: strategy.{field}: "), lines[0]
    assert message in lines[0]
    assert "Traceback" not in stderr


@pytest.mark.parametrize(("name", "params", "field", "message"), CASES)
def test_replay_refuses_the_strategy_in_one_line(
    plugin_path: str,
    shared_data: Path,
    name: str,
    params: dict[str, object],
    field: str,
    message: str,
) -> None:
    proc = factorcast("replay", "--data", str(shared_data), env=_env(plugin_path, name, params))
    assert proc.returncode == 2, proc.stderr
    _assert_one_line(proc.stderr, field, message)


@pytest.fixture
def exchange_port() -> Iterator[socket.socket]:
    """A port the run is pointed at as its exchange: whatever connects there shows."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


@pytest.mark.parametrize(
    ("name", "params", "field", "message"),
    [case for case in CASES if case[0] in ("fc_plugin_raises:Flat", "fc_plugin_ok:helper")]
    + [case for case in CASES if case[0] == "trend"],
)
def test_run_refuses_the_strategy_before_it_connects(
    plugin_path: str,
    exchange_port: socket.socket,
    name: str,
    params: dict[str, object],
    field: str,
    message: str,
) -> None:
    url = f"http://127.0.0.1:{exchange_port.getsockname()[1]}"
    env = {
        **_env(plugin_path, name, params),
        "FACTORCAST_EXCHANGE__API_URL": url,
        "FACTORCAST_EXCHANGE__WS_URL": url.replace("http", "ws"),
        "FACTORCAST_EXCHANGE__SYMBOLS": '["BTC/USDT", "ETH/USDT", "SOL/USDT"]',
    }
    proc = factorcast("run", "--exchange", "binance", "--max-bars", "1", env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    _assert_one_line(proc.stderr, field, message)
    with pytest.raises(BlockingIOError):  # nothing connected to the exchange
        exchange_port.accept()


def test_a_usable_plugin_runs(plugin_path: str, shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "signals.jsonl"
    proc = factorcast(
        "replay",
        "--data",
        str(shared_data),
        "--quiet",
        "--signals-out",
        str(out),
        env=_env(plugin_path, "fc_plugin_ok:Flat", {"lookback": 2}),
    )
    assert proc.returncode == 0, proc.stderr
    first = json.loads(out.read_text().splitlines()[0])
    assert first["id"].startswith("flat:")
