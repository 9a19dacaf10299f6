"""How a command module joins the command line.

A command is one module of :mod:`strategy.app` that defines ``COMMAND``, a
:class:`Command`: where it sits (``("factor", "returns")`` is ``factorcast factor
returns``; ``("portfolio",)`` a top-level command), its help, a function that adds
its arguments to its parser, an ``async`` function that runs it with the parsed
arguments and the settings, and optionally the settings its flags override and
the exceptions it raises for bad input (``usage_errors``) and for runtime failures
(``failures``).
:mod:`strategy.app.cli` lists the modules (``cli.COMMANDS``) and calls
:func:`register`; a command group (the first word of a longer path) is made on
first use, its help taken from :data:`GROUPS`.

Every such command takes ``--config`` and ``--log-level`` (the settings are built
from them before it runs).  Exit codes are the command line's: a command raises
:class:`UsageError` (or ``ConfigError``, ``CandleDataError``, or one of its
``usage_errors``) for bad input, which prints its one line and exits 2; one of its
``failures`` prints its line and exits 1.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from factorcast.strategy.app.settings import Settings

N = TypeVar("N", int, float)

#: Overrides of the settings, by section and key (they outrank environment and file).
Overrides = dict[str, dict[str, Any]]

#: Command groups and their help.
GROUPS: dict[str, str] = {
    "factor": "factor analytics: factor returns, health, risk, regression, scanner, optimizer",
}


class UsageError(Exception):
    """Bad input a command finds itself (a bar not in the data, ...): one line, exit 2."""


def _no_overrides(args: argparse.Namespace) -> Overrides:
    return {}


@dataclass(frozen=True, slots=True)
class Command:
    path: tuple[str, ...]
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, object]]
    overrides: Callable[[argparse.Namespace], Overrides] = _no_overrides
    #: more exceptions that are bad input (one line, exit 2) ...
    usage_errors: tuple[type[Exception], ...] = ()
    #: ... and runtime failures (one line, exit 1)
    failures: tuple[type[Exception], ...] = ()


def register(sub: argparse._SubParsersAction[Any], commands: Iterable[Command]) -> None:
    """Add each command's parser under ``sub`` (the top-level subcommands); the
    parsed namespace carries the command as ``args.spec``."""
    base = argparse.ArgumentParser(add_help=False)
    base.add_argument("--config", type=Path, help="TOML configuration file")
    base.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    groups: dict[tuple[str, ...], argparse._SubParsersAction[Any]] = {(): sub}
    for command in commands:
        *group, name = command.path
        parent = _group(groups, tuple(group))
        parser = parent.add_parser(name, parents=[base], help=command.help)
        parser.description = command.help
        command.arguments(parser)
        parser.set_defaults(spec=command)


def _group(
    groups: dict[tuple[str, ...], argparse._SubParsersAction[Any]], path: tuple[str, ...]
) -> argparse._SubParsersAction[Any]:
    if path not in groups:
        outer = _group(groups, path[:-1])
        what = GROUPS.get(path[-1], "")
        parser = outer.add_parser(path[-1], help=what, description=what)
        groups[path] = parser.add_subparsers(dest="_".join((*path, "command")), required=True)
    return groups[path]


# -- argument types shared by the commands --------------------------------------------


def _number_type(
    parse: Callable[[str], N], noun: str, ok: Callable[[N], bool], rule: str
) -> Callable[[str], N]:
    """An argparse type: ``parse`` the text (else "not a ``noun``"), then ``ok`` on
    the value (else "``rule``, got ...")."""

    def check(text: str) -> N:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {noun}: {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{rule}, got {text}")
        return value

    return check


positive_int = _number_type(int, "whole number", lambda v: v >= 1, "must be 1 or more")
nonnegative_int = _number_type(int, "whole number", lambda v: v >= 0, "must be 0 or more")
positive_float = _number_type(
    float, "number", lambda v: math.isfinite(v) and v > 0, "must be a positive number"
)
nonnegative_float = _number_type(
    float, "number", lambda v: math.isfinite(v) and v >= 0, "must be 0 or more"
)


def int_list(text: str) -> tuple[int, ...]:
    """``"1,4,16"`` -> ``(1, 4, 16)``: whole numbers, 1 or more, each once."""
    parts = [p.strip() for p in text.split(",")]
    values = tuple(positive_int(p) for p in parts)
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"a number is named twice: {text!r}")
    return values


def table_path(text: str) -> Path:
    """A table file to write, CSV or Parquet by its suffix."""
    from factorcast.adapters.files.analytics_outputs import OutputPathError, table_format

    path = Path(text)
    try:
        table_format(path)
    except OutputPathError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a directory")
    return path


_DIGITS = re.compile(r"-?[0-9]+")


def timestamp_ms(text: str) -> int:
    """A bar open time: milliseconds since the epoch, or ISO-8601 (UTC unless it
    says otherwise: ``2021-07-17T20:00:00Z``, ``2021-07-17 20:00``)."""
    if _DIGITS.fullmatch(text.strip()):
        return int(text)
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (ms since the epoch, or ISO-8601 such as 2021-07-17T20:00Z)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
