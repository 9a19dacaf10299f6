"""What the project installs: one import name, ``factorcast``, and nothing else in
site-packages (a package called ``adapters`` or ``strategy`` would clash with PyPI's
and with a user's own modules)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("factors", "strategy", "adapters")


def declared_packages() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    return set(project["tool"]["setuptools"]["packages"])


def test_every_package_in_the_tree_is_declared_and_no_other() -> None:
    found = {
        "factorcast." + ".".join(init.parent.relative_to(REPO).parts)
        for folder in FOLDERS
        for init in (REPO / folder).rglob("__init__.py")
    }
    assert found == declared_packages()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(out),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (built,) = out.glob("factorcast-*.whl")
    return built


def test_the_wheel_installs_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
    tops = {name.split("/")[0] for name in names}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert tops - dist_info == {"factorcast"}
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    with zipfile.ZipFile(wheel) as whl:
        assert whl.read(top_level).decode().split() == ["factorcast"]


def test_the_wheel_holds_the_code_and_the_schema_and_nothing_of_the_repository(
    wheel: Path,
) -> None:
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
    assert "factorcast/factors/model.py" in names
    assert "factorcast/strategy/app/cli.py" in names
    assert "factorcast/adapters/exchange/source.py" in names
    assert "factorcast/strategy/signal.schema.json" in names
    for absent in ("tests/", "bench/", "deploy/"):
        assert not any(n.startswith(f"factorcast/{absent}") for n in names), absent
    packages = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith("__init__.py")}
    assert packages == declared_packages()


def test_the_command_runs_from_the_installed_name() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "factorcast.strategy.app", "schema"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"factorcast.signal/1"' in proc.stdout or "factorcast.signal/1" in proc.stdout


def test_the_core_contract_names_every_module_of_the_core() -> None:
    """The import-linter contract that keeps the core off adapters and the root lists
    the core's modules by hand: a new module must join it, or it is unchecked."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    (contract,) = [
        c
        for c in project["tool"]["importlinter"]["contracts"]
        if "factorcast.strategy.app" in c.get("forbidden_modules", [])
        and "factorcast.adapters" in c.get("forbidden_modules", [])
    ]
    core = {
        f"factorcast.strategy.{p.stem}"
        for p in (REPO / "strategy").glob("*.py")
        if p.stem != "__init__"
    } | {
        f"factorcast.strategy.{p.name}"
        for p in (REPO / "strategy").iterdir()
        if (p / "__init__.py").exists() and p.name != "app"
    }
    assert set(contract["source_modules"]) == core
