"""``factorcast run`` in a real terminal (a tmux pane): what a person sees is one
live table, with the log lines above it.  Skipped where tmux is not installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def test_run_in_a_terminal_shows_one_table_under_its_log(tmp_path: Path) -> None:
    conf = tmp_path / "tmux.conf"
    conf.write_text("set -g history-limit 20000\n")
    socket = f"fc-screen-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTORCAST_")}
    env |= {
        "FACTORCAST_STATE_DIR": str(tmp_path / "state"),
        "FACTORCAST_METRICS__PORT": "0",
        "TERM": "xterm-256color",
    }
    command = (
        f"cd {REPO} && {sys.executable} -m factorcast.strategy.app run --max-bars 25; "
        "echo EXIT=$?; sleep 60"
    )
    tmux = ["tmux", "-L", socket, "-f", str(conf)]
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "160", "-y", "50", command], env=env, check=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            pane = subprocess.run(
                [*tmux, "capture-pane", "-p", "-S", "-20000"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            if "EXIT=" in pane or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
    lines = pane.rstrip().splitlines()
    assert "EXIT=0" in lines, pane
    heads = [i for i, line in enumerate(lines) if line.split()[:2] == ["symbol", "mark"]]
    assert len(heads) == 1, pane  # one table: none torn, none drawn twice
    caption = next(i for i in range(heads[0], len(lines)) if lines[i].startswith("vola "))
    assert not any("[info" in x or "[warning" in x for x in lines[heads[0] : caption]), pane
    assert any("service_started" in x for x in lines[: heads[0]]), pane
