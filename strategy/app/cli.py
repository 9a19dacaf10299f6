"""The command line: parses arguments, builds the settings once, and hands over to
the composition in :mod:`strategy.app`.

Commands other than ``replay``, ``run``, ``subscribe`` and ``schema`` are modules
listed in :data:`COMMANDS`, each with its ``COMMAND`` (:mod:`.commands` says how
one joins).

Exit codes: 0 success, 1 runtime failure, 2 bad configuration or input (a bad flag
or setting, input a command cannot use, a strategy that cannot be loaded or built, a
state directory or metrics port taken, unusable candle files): then stderr holds one
line naming the problem.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

import orjson

from factorcast.strategy.app import (
    factor_check,
    factor_health,
    factor_regress,
    factor_returns,
    factor_risk,
    factor_scan,
    factor_suggest,
    portfolio,
)
from factorcast.strategy.app.commands import Command, UsageError, positive_int, register
from factorcast.strategy.app.settings import ConfigError, Settings, load_settings
from factorcast.strategy.service import loop_factory
from factorcast.strategy.wire import json_schema

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

#: The command modules (:mod:`.commands`), in the order of ``--help``.
COMMANDS: tuple[Command, ...] = (
    portfolio.COMMAND,
    factor_returns.COMMAND,
    factor_health.COMMAND,
    factor_risk.COMMAND,
    factor_regress.COMMAND,
    factor_scan.COMMAND,
    factor_suggest.COMMAND,
    factor_check.COMMAND,
)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (the usage itself is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="factorcast", description="Factor-driven signal service for crypto trading."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    common = _Parser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML configuration file")
    common.add_argument("--exposures-out", type=Path, help="exposure table (.csv or .parquet)")
    common.add_argument("--signals-out", type=Path, help="signals as JSON lines")
    common.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    common.add_argument("--quiet", action="store_true", help="no progress bar or tables")

    replay = sub.add_parser("replay", parents=[common], help="recorded candles through the engine")
    replay.add_argument("--data", type=Path, required=True, help="freqtrade-layout candle dir")
    replay.add_argument("--timeframe", help="timeframe to read when the directory has several")
    replay.add_argument("--exchange", help="exchange label in signal ids (default: exchange.id)")

    run = sub.add_parser("run", parents=[common], help="the main job: live signals")
    run.add_argument("--max-bars", type=positive_int, help="stop after N live bars")
    run.add_argument(
        "--exchange", help="a ccxt exchange id: use that exchange, not the embedded one"
    )
    run.add_argument("--mode", choices=("ws", "rest"), help="websockets (default) or REST polling")
    run.add_argument("--timeframe", help="bar timeframe, e.g. 1m")
    run.add_argument("--sim-symbols", type=int, help="symbols in the simulated market")
    run.add_argument("--sim-speed", type=float, help="embedded exchange bars per second")
    run.add_argument("--sim-data", type=Path, help="serve these recorded candles instead")

    subscribe = sub.add_parser("subscribe", help="read signals from Redis (a consumer group)")
    subscribe.add_argument("--config", type=Path, help="TOML configuration file")
    subscribe.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    subscribe.add_argument("--url", help="Redis URL (default: redis.url, or the embedded server)")
    subscribe.add_argument("--output", choices=("table", "json"), default="table")
    subscribe.add_argument("--from-start", action="store_true", help="a new group reads history")
    subscribe.add_argument("--group", default="factorcast-subscribers")
    subscribe.add_argument("--consumer", help="consumer name (stable: resumes its pending)")
    subscribe.add_argument("--max-messages", type=positive_int, help="stop after N signals")

    sub.add_parser("schema", help="print the JSON Schema of factorcast.signal/1")
    register(sub, COMMANDS)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line flags as settings (they outrank environment and file)."""
    out: dict[str, dict[str, Any]] = {}

    def put(section: str, key: str, value: Any) -> None:
        if value is not None:
            out.setdefault(section, {})[key] = value

    put("log", "level", args.log_level)
    if args.command == "run":
        if args.exchange:
            put("exchange", "id", args.exchange)
            put("exchange", "embedded", False)
        put("exchange", "timeframe", args.timeframe)
        put("source", "mode", args.mode)
        put("sim", "symbols", args.sim_symbols)
        put("sim", "speed", args.sim_speed)
        put("sim", "data", args.sim_data)
    if args.command == "subscribe":
        put("redis", "url", args.url)  # checked as redis.url
    spec: Command | None = getattr(args, "spec", None)
    if spec is not None:
        for section, values in spec.overrides(args).items():
            for key, value in values.items():
                put(section, key, value)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "schema":
        sys.stdout.write(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK

    from factorcast.adapters.files.recorded import CandleDataError
    from factorcast.adapters.observe.logsetup import configure_logging

    try:
        settings = load_settings(args.config, **_overrides(args))
    except ConfigError as e:
        print(f"factorcast: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # a configuration file that cannot be read
        print(f"factorcast: config file {args.config}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    redactor = configure_logging(settings.log.level, settings.log.format)
    for secret in (
        settings.redis.password,
        settings.signing_key,
        settings.exchange.api_key,
        settings.exchange.secret,
    ):
        if secret is not None:
            redactor.add(secret.get_secret_value())
    spec: Command | None = getattr(args, "spec", None)
    command: Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, object]]
    failures: tuple[type[Exception], ...] = ()  # runtime failures: exit 1
    usage: tuple[type[Exception], ...] = (ConfigError, CandleDataError, UsageError)
    if spec is not None:  # (the command modules touch no exchange: ccxt is not imported)
        command = spec.run
        failures, usage = spec.failures, (*usage, *spec.usage_errors)
    else:
        from factorcast.adapters.exchange.client import FeedError
        from factorcast.adapters.redis.subscriber import SubscriberError
        from factorcast.strategy.app import replay, run, subscribe

        command = {"replay": replay.run, "run": run.run, "subscribe": subscribe.run}[args.command]
        failures = (FeedError, SubscriberError)
    try:
        factory = loop_factory(settings.event_loop)
    except ImportError:
        print("factorcast: event_loop: uvloop is not installed", file=sys.stderr)
        return EXIT_USAGE
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(command(args, settings))
    except usage as e:
        print(f"factorcast: {e}", file=sys.stderr)
        return EXIT_USAGE
    except failures as e:
        print(f"factorcast: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
