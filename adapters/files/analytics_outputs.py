"""File outputs of the offline analytics (ANALYTICS.md section 13): the factor
returns (``factor returns --out``) and the rank ICs (``factor health --ic-out``),
CSV or Parquet by the file's suffix.

As the exposure table (:mod:`.outputs`): floats at full precision (the shortest
text that reads back to the same float64, up to 17 significant digits), an empty
field (CSV) or a null (Parquet) where a number is missing, with its reason beside
it; timestamps are bar open times in ms UTC.  A file is written whole to a
temporary file beside it and renamed over the path: a reader never sees half of
one, and a run that fails leaves the path as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from factorcast.factors import REASON_LABELS

FACTOR_RETURN_COLUMNS: Final = ("timestamp", "factor", "return", "reason", "r2", "n")
IC_COLUMNS: Final = ("timestamp", "factor", "horizon", "ic", "reason")
#: suffixes of the table formats (any case); anything else is refused
CSV_SUFFIXES: Final = (".csv",)
PARQUET_SUFFIXES: Final = (".parquet", ".pq")


class OutputPathError(ValueError):
    """A table path whose suffix names no known format."""


def table_format(path: Path) -> str:
    """``"csv"`` or ``"parquet"`` by the suffix; :class:`OutputPathError` otherwise."""
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    known = ", ".join((*CSV_SUFFIXES, *PARQUET_SUFFIXES))
    raise OutputPathError(f"{path}: unknown table format {suffix or '(no suffix)'!r}; use {known}")


def factor_returns_frame(
    times: NDArray[np.int64],
    names: Sequence[str],
    returns: NDArray[np.float64],
    reason: NDArray[np.int8],
    r2: NDArray[np.float64],
    n: NDArray[np.int64],
) -> pd.DataFrame:
    """``timestamp,factor,return,reason,r2,n``: one row per bar and per name (in
    ``names``' order); ``reason``, ``r2`` and ``n`` are the bar's regression's."""
    k = len(names)
    labels = np.array(REASON_LABELS, dtype=object)
    return pd.DataFrame(
        {
            "timestamp": np.repeat(times.astype(np.int64), k),
            "factor": np.tile(np.array(names, dtype=object), times.size),
            "return": returns.reshape(-1),
            "reason": np.repeat(labels[reason.astype(np.intp)], k),
            "r2": np.repeat(r2, k),
            "n": np.repeat(n.astype(np.int64), k),
        },
        columns=list(FACTOR_RETURN_COLUMNS),
    )


def ic_frame(
    by_horizon: Sequence[tuple[int, NDArray[np.int64], NDArray[np.float64], NDArray[np.int8]]],
    names: Sequence[str],
) -> pd.DataFrame:
    """``timestamp,factor,horizon,ic,reason`` from ``(h, t, ic (T, K), reason (T, K))``
    per horizon: one row per bar ``t`` (the bar of the exposures), factor and
    horizon, in that order."""
    k = len(names)
    labels = np.array(REASON_LABELS, dtype=object)
    parts = [
        pd.DataFrame(
            {
                "timestamp": np.repeat(t.astype(np.int64), k),
                "factor": np.tile(np.arange(k), t.size),
                "horizon": np.full(t.size * k, h, dtype=np.int64),
                "ic": ic.reshape(-1),
                "reason": labels[reason.reshape(-1).astype(np.intp)],
            }
        )
        for h, t, ic, reason in by_horizon
    ]
    if not parts:
        return pd.DataFrame(columns=list(IC_COLUMNS))
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.sort_values(["timestamp", "factor", "horizon"], kind="stable")
    frame["factor"] = np.array(names, dtype=object)[frame["factor"].to_numpy()]
    return frame.reset_index(drop=True)[list(IC_COLUMNS)]


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` (CSV or Parquet by the suffix) in one piece: to a
    temporary file in the same directory, renamed over ``path`` when complete."""
    fmt = table_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if fmt == "parquet":
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        else:
            frame.to_csv(tmp, index=False)
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
