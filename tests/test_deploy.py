"""The deployment files in deploy/ are valid and agree with the code.

- promtool accepts the Prometheus config and the alert rules, the alert rules fire
  when they should (``promtool test rules``), and every dashboard expression parses
  as PromQL;
- every ``factorcast_*`` name used by an alert or a dashboard panel is a series that
  :class:`factorcast.adapters.observe.metrics.Metrics` exposes, and every factor state
  they name is one of :class:`~factorcast.factors.analytics.HealthState`;
- the compose file, the k8s manifests and the Grafana provisioning parse and point
  at each other (ports, paths, the datasource uid, secret references).

promtool comes from Debian's ``prometheus`` package, which ``make test`` installs.
Without it these tests fail; they do not skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from factorcast.adapters.observe.metrics import Metrics
from factorcast.factors.analytics import HealthState
from factorcast.factors.registry import LIQUIDITY, MOMENTUM, SIZE, VALUE, VOLATILITY

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS_YML = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "factorcast.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "factorcast.yml"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"

METRIC_NAME = re.compile(r"\bfactorcast_[a-z_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
FAMILY_SERIES = {
    "counter": ("_total",),
    "histogram": HISTOGRAM_SUFFIXES,
    "summary": ("_count", "_sum"),
}
PORT = 9464
SECRET_ENV = {"FACTORCAST_REDIS__PASSWORD", "FACTORCAST_SIGNING_KEY"}


# -- promtool -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found on PATH: `make test` installs it "
            "(Debian package prometheus); or run `apt-get install prometheus`"
        )
    return path


def run_promtool(promtool: str, *args: str | Path) -> str:
    proc = subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{out}"
    return out


def test_promtool_check_config(promtool: str) -> None:
    out = run_promtool(promtool, "check", "config", PROMETHEUS_YML)
    assert "1 rule files found" in out


def test_promtool_check_rules(promtool: str) -> None:
    run_promtool(promtool, "check", "rules", ALERTS_YML)


def test_prometheus_scrapes_the_service_and_loads_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    rule_files = [PROMETHEUS_YML.parent / f for f in config["rule_files"]]
    assert rule_files == [ALERTS_YML]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["factorcast"]["static_configs"] for t in sc["targets"]]
    assert targets == [f"factorcast:{PORT}"]
    assert jobs["factorcast"].get("metrics_path", "/metrics") == "/metrics"


FC = {"job": "factorcast", "instance": "fc:9464"}  # the labels of every input series


def state_path(factor: str, *path: tuple[HealthState | None, int]) -> list[dict[str, str]]:
    """The ``factorcast_factor_state`` series of ``factor`` going through ``path``:
    ``(state, n)`` holds ``state`` for ``n`` samples (1 on its series, 0 on the other
    states'); ``(None, n)`` is ``n`` samples with no series (the service is down)."""
    series = []
    for state in HealthState:
        values = []
        for current, n in path:
            value = "_" if current is None else str(int(current is state))
            values.append(value if n == 1 else f"{value}x{n - 1}")
        labels = f'factor="{factor}", state="{state}"'
        series.append(
            {"series": "factorcast_factor_state{{{L}, " + labels + "}}", "values": " ".join(values)}
        )
    return series


def firing(*factors: str, **extra: str) -> list[dict[str, Any]]:
    """The expected factor-health alerts (warnings), one per factor."""
    labels = {k: str(v) for k, v in extra.items()}  # str: a StrEnum is no YAML string
    return [{"sev": "warning", "labels": {**FC, "factor": f, **labels}} for f in factors]


LEFT = "FactorcastFactorLeftWorking"
INVERTED = "FactorcastFactorInverted"
S = HealthState

# The rules' logic, checked on a copy without annotations (promtool compares the
# rendered annotations too; `check rules` above validates their templates).
RULE_TESTS: list[dict[str, Any]] = [
    {
        "name": "stale data fires 3 bars + 2m after the last bar, not before",
        "interval": "1m",
        "input_series": [
            {"series": "factorcast_last_bar_timestamp_seconds{{{L}}}", "values": "60+60x10 660x20"},
            {"series": "factorcast_ready{{{L}}}", "values": "1x30"},
        ],
        "alert_rule_test": [
            {"eval_time": "12m", "alertname": "FactorcastDataStale", "exp_alerts": []},
            {"eval_time": "15m", "alertname": "FactorcastDataStale", "exp_alerts": []},
            {
                "eval_time": "20m",
                "alertname": "FactorcastDataStale",
                "exp_alerts": [{"sev": "critical"}],
            },
            {"eval_time": "20m", "alertname": "FactorcastAbsent", "exp_alerts": []},
        ],
    },
    {
        "name": "no bar ever processed is not 'stale' (that is FactorcastNotReady)",
        "interval": "1m",
        "input_series": [
            {"series": "factorcast_last_bar_timestamp_seconds{{{L}}}", "values": "0x30"},
            {"series": "factorcast_ready{{{L}}}", "values": "0x30"},
        ],
        "alert_rule_test": [
            {"eval_time": "20m", "alertname": "FactorcastDataStale", "exp_alerts": []},
            {"eval_time": "4m", "alertname": "FactorcastNotReady", "exp_alerts": []},
            {
                "eval_time": "20m",
                "alertname": "FactorcastNotReady",
                "exp_alerts": [{"sev": "warning"}],
            },
        ],
    },
    {
        "name": "a service that is not scraped is absent",
        "interval": "1m",
        "input_series": [{"series": "factorcast_spool_depth{{{L}}}", "values": "_x30"}],
        "alert_rule_test": [
            {
                "eval_time": "10m",
                "alertname": "FactorcastAbsent",
                "exp_alerts": [{"sev": "critical", "labels": {"job": "factorcast"}}],
            }
        ],
    },
    {
        "name": "bars processed late",
        "interval": "1m",
        "input_series": [{"series": "factorcast_bar_lag_seconds{{{L}}}", "values": "2x5 45x20"}],
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "FactorcastBarLagHigh", "exp_alerts": []},
            {
                "eval_time": "20m",
                "alertname": "FactorcastBarLagHigh",
                "exp_alerts": [{"sev": "warning"}],
            },
        ],
    },
    {
        "name": "publish failures that go on, then a full spool",
        "interval": "1m",
        "input_series": [
            {"series": "factorcast_publish_failures_total{{{L}}}", "values": "0x5 1+1x20"},
            {"series": "factorcast_spool_full_total{{{L}}}", "values": "0x15 1+1x5"},
            {"series": "factorcast_spool_depth{{{L}}}", "values": "0x5 10+10x30"},
        ],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "FactorcastPublishFailures", "exp_alerts": []},
            {
                "eval_time": "15m",
                "alertname": "FactorcastPublishFailures",
                "exp_alerts": [{"sev": "warning"}],
            },
            {"eval_time": "10m", "alertname": "FactorcastSpoolFull", "exp_alerts": []},
            {
                "eval_time": "18m",
                "alertname": "FactorcastSpoolFull",
                "exp_alerts": [{"sev": "critical"}],
            },
            {"eval_time": "12m", "alertname": "FactorcastSpoolGrowing", "exp_alerts": []},
            {
                "eval_time": "30m",
                "alertname": "FactorcastSpoolGrowing",
                "exp_alerts": [{"sev": "warning"}],
            },
        ],
    },
    {
        "name": "signals dropped once the spool and the memory behind it are full",
        "interval": "1m",
        "input_series": [
            {"series": "factorcast_publications_dropped_total{{{L}}}", "values": "0x10 1+1x5 6x20"},
        ],
        "alert_rule_test": [
            {"eval_time": "9m", "alertname": "FactorcastSignalsDropped", "exp_alerts": []},
            {
                "eval_time": "13m",
                "alertname": "FactorcastSignalsDropped",
                "exp_alerts": [{"sev": "critical"}],
            },
            {"eval_time": "30m", "alertname": "FactorcastSignalsDropped", "exp_alerts": []},
        ],
    },
    {
        "name": "a draining spool is not growing",
        "interval": "1m",
        "input_series": [{"series": "factorcast_spool_depth{{{L}}}", "values": "300-10x30"}],
        "alert_rule_test": [
            {"eval_time": "29m", "alertname": "FactorcastSpoolGrowing", "exp_alerts": []}
        ],
    },
    {
        "name": "exchange errors: one alert per type above 3 a minute",
        "interval": "1m",
        "input_series": [
            {
                "series": 'factorcast_exchange_errors_total{{{L}, type="NetworkError"}}',
                "values": "0+10x30",
            },
            {
                "series": 'factorcast_exchange_errors_total{{{L}, type="RateLimitExceeded"}}',
                "values": "0+1x30",
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": "FactorcastExchangeErrors",
                "exp_alerts": [{"sev": "warning", "labels": {**FC, "type": "NetworkError"}}],
            }
        ],
    },
    {
        "name": "a factor that leaves working fires after 10m, one alert through flat and "
        "inverted; staying working, never working, unrated or warming up is silent",
        "interval": "1m",
        "input_series": [
            *state_path(MOMENTUM, (S.WORKING, 30), (S.FLAT, 20), (S.INVERTED, 40)),
            *state_path(SIZE, (S.UNKNOWN, 10), (S.WORKING, 80)),
            *state_path(VALUE, (S.UNKNOWN, 10), (S.FLAT, 30), (S.INVERTED, 50)),
            *state_path(LIQUIDITY, (S.UNRATED, 90)),
            # working, then a restart: no series, then unknown while warming up
            *state_path(VOLATILITY, (S.WORKING, 30), (None, 5), (S.UNKNOWN, 55)),
        ],
        "alert_rule_test": [
            {"eval_time": "29m", "alertname": LEFT, "exp_alerts": []},
            {"eval_time": "38m", "alertname": LEFT, "exp_alerts": []},
            {"eval_time": "41m", "alertname": LEFT, "exp_alerts": firing(MOMENTUM)},
            {"eval_time": "55m", "alertname": LEFT, "exp_alerts": firing(MOMENTUM)},
            {"eval_time": "85m", "alertname": LEFT, "exp_alerts": firing(MOMENTUM)},
            {"eval_time": "48m", "alertname": INVERTED, "exp_alerts": []},
            {
                "eval_time": "55m",
                "alertname": INVERTED,
                "exp_alerts": firing(VALUE, state=S.INVERTED),
            },
            {
                "eval_time": "85m",
                "alertname": INVERTED,
                "exp_alerts": firing(MOMENTUM, VALUE, state=S.INVERTED),
            },
        ],
    },
    {
        "name": "a factor that comes back within 10m is silent",
        "interval": "1m",
        "input_series": state_path(
            MOMENTUM,
            *[(S.WORKING, 20), (S.FLAT, 8), (S.WORKING, 10), (S.INVERTED, 9)] * 2,
            (S.WORKING, 20),
        ),
        "alert_rule_test": [
            {"eval_time": f"{m}m", "alertname": alert, "exp_alerts": []}
            for m in (27, 37, 46, 55, 74, 83, 93, 100)
            for alert in (LEFT, INVERTED)
        ],
    },
    {
        "name": "a factor that recovers resolves",
        "interval": "1m",
        "input_series": [
            *state_path(VALUE, (S.WORKING, 20), (S.FLAT, 30), (S.WORKING, 30)),
            *state_path(SIZE, (S.INVERTED, 30), (S.WORKING, 50)),
        ],
        "alert_rule_test": [
            {"eval_time": "45m", "alertname": LEFT, "exp_alerts": firing(VALUE)},
            {"eval_time": "55m", "alertname": LEFT, "exp_alerts": []},
            {
                "eval_time": "20m",
                "alertname": INVERTED,
                "exp_alerts": firing(SIZE, state=S.INVERTED),
            },
            {"eval_time": "35m", "alertname": INVERTED, "exp_alerts": []},
            {"eval_time": "79m", "alertname": LEFT, "exp_alerts": []},
        ],
    },
    {
        "name": "a factor left working keeps the alert for a day after it last was working",
        "interval": "2m",
        "input_series": [*state_path(MOMENTUM, (S.WORKING, 30), (S.FLAT, 800))],
        "alert_rule_test": [
            {"eval_time": "2h", "alertname": LEFT, "exp_alerts": firing(MOMENTUM)},
            {
                "eval_time": "24h30m",
                "alertname": LEFT,
                "exp_alerts": firing(MOMENTUM),
            },
            {"eval_time": "25h", "alertname": LEFT, "exp_alerts": []},
        ],
    },
]


def _rule_tests(rules_path: Path) -> dict[str, Any]:
    selector = ", ".join(f'{k}="{v}"' for k, v in FC.items())
    tests = []
    for case in RULE_TESTS:
        series = [
            {"series": s["series"].format(L=selector), "values": s["values"]}
            for s in case["input_series"]
        ]
        checks = []
        for check in case["alert_rule_test"]:
            alerts = []
            for exp in check["exp_alerts"]:
                labels = exp.get("labels", FC)
                alerts.append({"exp_labels": {"severity": exp["sev"], **labels}})
            checks.append({**check, "exp_alerts": alerts})
        tests.append(
            {
                "name": case["name"],
                "interval": case["interval"],
                "input_series": series,
                "alert_rule_test": checks,
            }
        )
    return {"rule_files": [str(rules_path)], "evaluation_interval": "15s", "tests": tests}


def test_alert_rules_fire_when_they_should(promtool: str, tmp_path: Path) -> None:
    rules = yaml.safe_load(ALERTS_YML.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    stripped = tmp_path / "alerts.yml"
    stripped.write_text(yaml.safe_dump(rules))
    tested = {c["alertname"] for case in RULE_TESTS for c in case["alert_rule_test"]}
    defined = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert tested <= defined
    spec = tmp_path / "alerts_test.yml"
    spec.write_text(yaml.safe_dump(_rule_tests(stripped), sort_keys=False))
    run_promtool(promtool, "test", "rules", spec)


# -- metric names -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exposed() -> dict[str, str]:
    """Every series name a Metrics instance exposes -> its family's type.

    Labelled metrics are exercised once so that each has a sample; a family still
    without one (declared, its HELP and TYPE served) stands for the series of its type.
    ``_created`` series are left out (the image switches them off)."""
    metrics = Metrics(per_symbol_exposures=True)
    metrics.bar_rejected("nan_price")
    metrics.exchange_error("NetworkError")
    metrics.reconnect("ws")
    metrics.signals({"buy": 1, "sell": 1, "hold": 1})
    metrics.set_queue_depth("cross_sections", 0)
    metrics.set_build_info(version="0", model="m", exchange="x", timeframe="1m")
    metrics.set_exposures(["A/B"], ["f"], np.ones((1, 1)))
    text = generate_latest(metrics.registry).decode()
    names: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                names[sample.name] = family.type
        if not family.samples:
            for suffix in FAMILY_SERIES.get(family.type, ("",)):
                names[family.name + suffix] = family.type
    return names


def alert_expressions() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(ALERTS_YML.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule["alert"], str(rule["expr"])


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_panels() -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return panels


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for var in dashboard()["templating"]["list"]:
        query = var.get("query")
        if var["type"] == "query":
            yield f"variable {var['name']}", query["query"] if isinstance(query, dict) else query


def unknown_names(expr: str, exposed: dict[str, str]) -> list[str]:
    """Names in ``expr`` that are not series of Metrics (histograms only by suffix)."""
    unknown = []
    for name in METRIC_NAME.findall(expr):
        if name in exposed:
            continue
        base = next((name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        hint = f" (histogram {base})" if base and f"{base}_bucket" in exposed else ""
        unknown.append(name + hint)
    return unknown


def test_alert_rules_use_only_exposed_metrics(exposed: dict[str, str]) -> None:
    used = set()
    for alert, expr in alert_expressions():
        names = METRIC_NAME.findall(expr)
        assert names, f"{alert}: no factorcast_ metric in {expr!r}"
        assert not unknown_names(expr, exposed), f"{alert}: {unknown_names(expr, exposed)}"
        used.update(names)
    for required in (
        "factorcast_bar_lag_seconds",
        "factorcast_last_bar_timestamp_seconds",
        "factorcast_publish_failures_total",
        "factorcast_spool_depth",
        "factorcast_spool_full_total",
        "factorcast_publications_dropped_total",
        "factorcast_exchange_errors_total",
        "factorcast_ready",
        "factorcast_factor_state",
    ):
        assert required in used, f"no alert on {required}"


def test_dashboard_uses_only_exposed_metrics(exposed: dict[str, str]) -> None:
    seen = 0
    for where, expr in dashboard_expressions():
        assert not unknown_names(expr, exposed), f"{where}: {unknown_names(expr, exposed)}"
        seen += len(METRIC_NAME.findall(expr))
    assert seen > 0


def test_unknown_names_catches_typos_and_bare_histograms(exposed: dict[str, str]) -> None:
    assert unknown_names("rate(factorcast_bars_ingested_total[5m])", exposed) == []
    assert unknown_names("factorcast_bars_ingested", exposed) == ["factorcast_bars_ingested"]
    bucket = "factorcast_engine_step_duration_seconds_bucket"
    assert unknown_names(f"rate({bucket}[5m])", exposed) == []
    assert unknown_names("factorcast_engine_step_duration_seconds", exposed) != []
    assert unknown_names("factorcast_publish_latency_seconds_count", exposed) == []


def test_dashboard_expressions_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Each panel query, with Grafana's variables filled in, as a recording rule."""
    substitutions = {
        "$__rate_interval": "1m",
        "$__interval": "15s",
        "$instance": ".*",
        "$symbol": "BTC/USDT",
        "$horizon": "1",
    }
    rules = []
    for i, (_, expr) in enumerate(dashboard_expressions()):
        if expr.startswith("label_values("):
            continue  # a Grafana function, not PromQL
        promql = expr
        for var, value in substitutions.items():
            promql = promql.replace(var, value)
        assert "$" not in promql, f"unsubstituted variable in {expr!r}"
        rules.append({"record": f"dashboard:expr_{i}", "expr": promql})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool(promtool, "check", "rules", path)


STATE_MATCHER = re.compile(r'\bstate=~?"([^"]*)"')
STATE_CODE = re.compile(r'state="(\w+)"\} == 1\) \* (\d+)')


def test_factor_states_are_the_health_states() -> None:
    """The rules and panels match only states the service has, and the state
    timeline names each state's code as its query assigns it."""
    states = {str(s) for s in HealthState}
    exprs = [expr for _, expr in [*alert_expressions(), *dashboard_expressions()]]
    named = {v for e in exprs for m in STATE_MATCHER.findall(e) for v in m.split("|")}
    assert named and named <= states, named - states
    (panel,) = [p for p in dashboard_panels() if p["type"] == "state-timeline"]
    (target,) = panel["targets"]
    codes = [(int(n), s) for s, n in STATE_CODE.findall(target["expr"])]
    assert sorted(s for _, s in codes) == sorted(states)
    assert len({n for n, _ in codes}) == len(codes), "two states share a code"
    (mapping,) = panel["fieldConfig"]["defaults"]["mappings"]
    assert {int(k): v["text"] for k, v in mapping["options"].items()} == dict(codes)


def test_state_timeline_shows_the_worst_current_state(promtool: str, tmp_path: Path) -> None:
    """The state timeline's query, on one instance going through every state and one
    staying working, gives the code its value mappings name as the worse state."""
    (panel,) = [p for p in dashboard_panels() if p["type"] == "state-timeline"]
    expr = panel["targets"][0]["expr"].replace("$instance", ".*")
    (mapping,) = panel["fieldConfig"]["defaults"]["mappings"]
    code = {v["text"]: float(k) for k, v in mapping["options"].items()}
    severity = [S.UNKNOWN, S.UNRATED, S.WORKING, S.FLAT, S.INVERTED]  # worst last
    other = {**FC, "instance": "fc2:9464"}
    series = []
    for labels, path in (
        (FC, [(state, 5) for state in severity]),
        (other, [(S.WORKING, 5 * len(severity))]),
    ):
        selector = ", ".join(f'{k}="{v}"' for k, v in labels.items())
        for s in state_path(MOMENTUM, *path):
            series.append({"series": s["series"].format(L=selector), "values": s["values"]})
    checks = [
        {
            "expr": expr,
            "eval_time": f"{5 * i + 2}m",
            "exp_samples": [
                {
                    "labels": f'{{factor="{MOMENTUM}"}}',
                    "value": code[max(state, S.WORKING, key=severity.index)],
                }
            ],
        }
        for i, state in enumerate(severity)
    ]
    test = {"interval": "1m", "input_series": series, "promql_expr_test": checks}
    spec = tmp_path / "timeline_test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [], "tests": [test]}, sort_keys=False))
    run_promtool(promtool, "test", "rules", spec)


# -- Grafana ------------------------------------------------------------------------------


def test_dashboard_layout_and_datasource() -> None:
    board = dashboard()
    assert board["uid"] == "factorcast"
    panels = dashboard_panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, p["title"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"panel {p['title']!r} overlaps another"
        cells |= area
        for target in p.get("targets", []):
            assert target["refId"] and target["expr"], p["title"]
            assert target["datasource"]["uid"] == "${datasource}", p["title"]

    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    (source,) = [d for d in provisioned if d["type"] == "prometheus"]
    variable = next(v for v in board["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == source["uid"]
    assert source["url"] == "http://prometheus:9090"

    titles = " | ".join(p["title"].lower() for p in panels)
    for wanted in (
        "bars per second",
        "signals by action",
        "bar lag",
        "engine step latency",
        "publish latency",
        "exchange errors by type",
        "spool depth",
        "cross-section completeness",
        "exposures (symbol x factor)",
        "factor states",
        "cumulative factor returns",
        "factor returns per bar",
        "rolling ic",
        "icir",
        "factor alerts by kind",
    ):
        assert wanted in titles, f"no {wanted!r} panel"


def test_grafana_provisioning_matches_the_compose_mounts() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    mounts = dict(
        (v.split(":")[1], v.split(":")[0]) for v in compose["services"]["grafana"]["volumes"]
    )
    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    for provider in providers:
        dashboards_dir = provider["options"]["path"]
        assert (DEPLOY / mounts[dashboards_dir]).resolve() == DASHBOARD.parent
    assert (DEPLOY / mounts["/etc/grafana/provisioning"]).resolve() == DATASOURCES.parents[1]


# -- compose, k8s, Dockerfile --------------------------------------------------------------


def test_compose_file() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) >= {"factorcast", "redis", "prometheus", "grafana"}
    app = services["factorcast"]
    assert (DEPLOY / app["build"]["context"]).resolve() == REPO
    assert (REPO / app["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert app["environment"] == {
        "FACTORCAST_REDIS__URL": "redis://redis:6379/0",
        "FACTORCAST_METRICS__HOST": "0.0.0.0",
        "FACTORCAST_METRICS__PORT": str(PORT),
        "FACTORCAST_LOG__FORMAT": "json",
    }
    prom_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    assert (DEPLOY / prom_mounts["/etc/prometheus"]).resolve() == PROMETHEUS_YML.parent
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"compose mounts missing {source}"
            else:
                assert source in compose["volumes"], f"undeclared volume {source}"


def k8s_documents() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                assert doc["kind"] not in docs, f"two {doc['kind']} documents"
                docs[doc["kind"]] = doc
    return docs


def test_k8s_manifests() -> None:
    docs = k8s_documents()
    assert set(docs) == {"ConfigMap", "Deployment", "Service", "Kustomization"}
    listed = {K8S / r for r in docs["Kustomization"]["resources"]}
    assert listed == set(K8S.glob("*.yaml")) - {K8S / "kustomization.yaml"}

    pod = docs["Deployment"]["spec"]["template"]["spec"]
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert docs["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": PORT}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False

    config_map = docs["ConfigMap"]
    assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == [
        config_map["metadata"]["name"]
    ]
    env = config_map["data"]
    assert all(k.startswith("FACTORCAST_") and isinstance(v, str) for k, v in env.items())
    assert env["FACTORCAST_METRICS__HOST"] == "0.0.0.0"
    assert env["FACTORCAST_METRICS__PORT"] == str(PORT)
    assert not SECRET_ENV & env.keys(), "secrets belong in a Secret, not the ConfigMap"
    secret_refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
    }
    assert set(secret_refs) == SECRET_ENV

    (service_port,) = docs["Service"]["spec"]["ports"]
    assert service_port["port"] == PORT and service_port["targetPort"] == "metrics"


def test_dockerfile_builds_what_pyproject_packages() -> None:
    import tomllib

    text = DOCKERFILE.read_text()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\w+)", text, re.MULTILINE)
    assert [name for _, name in stages] == ["builder", "runtime"]
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.MULTILINE)
    copied = set(re.findall(r"^COPY\s+(?!--)(.+?)\s+\S+$", text, re.MULTILINE))
    sources = {s.rstrip("/") for line in copied for s in line.split()}
    # the folders that install as factorcast.<folder>
    packages = {p.split(".")[1] for p in project["tool"]["setuptools"]["packages"]}
    assert packages | {"pyproject.toml", project["project"]["readme"]} <= sources
    assert "factorcast" in project["project"]["scripts"]
    assert re.search(r"^USER\s+(?!0\b|root\b)\S+", text, re.MULTILINE)
    assert re.search(rf"^EXPOSE\s+{PORT}$", text, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["factorcast"\]$', text, re.MULTILINE)
    assert re.search(r'^CMD \["run", "--quiet"\]$', text, re.MULTILINE)
