"""Alert and recording rules, Prometheus config, the dashboard's queries: checked by promtool."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.conftest import REPO, require_tool

MONITORING = REPO / "monitoring"


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool("promtool")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=MONITORING, capture_output=True, text=True, timeout=120)


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_rule_file_is_valid(promtool: str) -> None:
    files = sorted(str(p.relative_to(MONITORING)) for p in MONITORING.glob("*/*.yml"))
    files = [f for f in files if f.startswith(("alerts/", "rules/"))]
    result = run(promtool, "check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_where_they_should_and_nowhere_else(promtool: str) -> None:
    result = run(promtool, "test", "rules", "tests/alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_is_valid(promtool: str) -> None:
    result = run(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_runbook_alerts_exist_with_their_runbook_links() -> None:
    for name, alert in (
        ("service-down", "ServiceDown"),
        ("high-error-rate", "HighErrorRate"),
        ("kafka-lag", "KafkaConsumerLag"),
        ("github-filing", "GitHubFilingStalled"),
    ):
        (rule,) = yaml.safe_load((MONITORING / "alerts" / f"{name}.yml").read_text())["groups"][0][
            "rules"
        ]
        assert rule["alert"] == alert
        anchor = rule["annotations"]["runbook_url"].split("#")[1]
        assert f"### {alert}" in (REPO / "docs" / "OPERATIONS.md").read_text()
        assert anchor == alert.lower()


def test_every_dashboard_query_parses(promtool: str, tmp_path: Path) -> None:
    dashboard = load(MONITORING / "grafana" / "generate_dashboard.py")
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": expr}
                    for i, expr in enumerate(dashboard.queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_files_are_up_to_date() -> None:
    slo = load(MONITORING / "generate_slo_rules.py")
    assert (MONITORING / "rules" / "slo.yml").read_text() == slo.render()
    dashboard = load(MONITORING / "grafana" / "generate_dashboard.py")
    committed = (MONITORING / "grafana" / "ai-pipeline-dashboard.json").read_text()
    assert committed == dashboard.render()
    assert json.loads(committed)["panels"]


def test_alertmanager_example_routes_critical_alerts_to_the_pager() -> None:
    config = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())
    (critical,) = config["route"]["routes"]
    assert critical["receiver"] == "pager"
    assert {r["name"] for r in config["receivers"]} == {"pager", "chat"}
