"""The stack's alert rules under the real `promtool` (Prometheus 2.42): they load, their unit tests
(monitoring/rules/cdc_test.yml) pass, and every alert is tested firing and not firing and carries
what Alertmanager's routes and a reader need."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.monitoring import DECLARED_CONNECTORS_FILE, RULES_DIR, declared_connectors_rules, monitoring_rule_files
from toolchain.errors import MissingToolchainError
from toolchain.layout import Toolchain

RULES = RULES_DIR / "cdc.yml"
RULE_TESTS = RULES_DIR / "cdc_test.yml"
ALERT_LABELS = ("severity", "team", "service")
ANNOTATIONS = ("summary", "description", "value", "runbook")


@pytest.fixture(scope="module")
def promtool() -> str:
    try:
        return Toolchain.discover().promtool_binary
    except MissingToolchainError as missing:
        pytest.fail(f"promtool (Debian's prometheus package) is needed to check the alert rules: {missing}")


def run(promtool: str, *args: str, cwd: Path) -> str:
    done = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"] if "alert" in rule}


def test_every_rule_file_the_stack_writes_loads(promtool: str, tmp_path: Path) -> None:
    files = monitoring_rule_files(["cdcstack-postgres", "cdcstack-mysql", "cdcstack-postgres-avro"])
    assert sorted(files) == ["cdc.yml", DECLARED_CONNECTORS_FILE]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    output = run(promtool, "check", "rules", *sorted(files), cwd=tmp_path)
    assert "SUCCESS: 5 rules found" in output and "SUCCESS: 3 rules found" in output


def test_a_stack_without_connectors_declares_none(promtool: str, tmp_path: Path) -> None:
    (tmp_path / DECLARED_CONNECTORS_FILE).write_text(declared_connectors_rules([]))
    assert "SUCCESS: 0 rules found" in run(promtool, "check", "rules", DECLARED_CONNECTORS_FILE, cwd=tmp_path)


def test_the_rules_pass_their_promtool_unit_tests(promtool: str) -> None:
    assert "SUCCESS" in run(promtool, "test", "rules", RULE_TESTS.name, cwd=RULES_DIR)


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases: dict[str, set[bool]] = {name: set() for name in alerts()}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases[case["alertname"]].add(bool(case["exp_alerts"]))
    assert {name: sorted(seen) for name, seen in cases.items()} == {name: [False, True] for name in cases}


def test_every_alert_has_routing_labels_and_annotations_with_its_value() -> None:
    assert sorted(alerts()) == ["CdcLagHigh", "ConnectorTaskNotRunning", "DeadLettersGrowing", "ServiceDown", "SinkStalled"]
    for name, rule in alerts().items():
        assert all(rule["labels"].get(label) for label in ALERT_LABELS), name
        assert all(rule["annotations"].get(annotation) for annotation in ANNOTATIONS), name
        assert "$value" in rule["annotations"]["description"], name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        # Tuned for a test stack: an alert fires within seconds, not minutes.
        assert re.fullmatch(r"\d+s", rule.get("for", "0s")), name


def test_a_declared_connector_the_worker_does_not_report_fires_through_the_written_files(promtool: str, tmp_path: Path) -> None:
    """The generated declarations and the rules together, as Prometheus loads them from its work dir."""
    for name, text in monitoring_rule_files(["cdcstack-postgres", "cdcstack-mysql"]).items():
        (tmp_path / name).write_text(text)
    status = 'kafka_connect_connector_status{job="connect",instance="connect:9404",connector="cdcstack-postgres",status="running"}'
    suite = {
        "rule_files": ["cdc.yml", DECLARED_CONNECTORS_FILE],
        "evaluation_interval": "5s",
        "tests": [
            {
                "interval": "5s",
                "input_series": [{"series": status, "values": "1x20"}],
                "alert_rule_test": [
                    {
                        "eval_time": "1m",
                        "alertname": "ConnectorTaskNotRunning",
                        "exp_alerts": [
                            {
                                "exp_labels": {"connector": "cdcstack-mysql", "status": "absent", "severity": "critical", "team": "cdc", "service": "connect"},
                                "exp_annotations": {
                                    "summary": "Connector cdcstack-mysql is absent",
                                    "value": "absent",
                                    "description": "The Connect worker does not report the declared connector cdcstack-mysql (for 10 s; value 1), "
                                    "so its tables' changes are not captured.",
                                    "runbook": alerts()["ConnectorTaskNotRunning"]["annotations"]["runbook"],
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "declared_test.yml").write_text(json.dumps(suite))
    assert "SUCCESS" in run(promtool, "test", "rules", "declared_test.yml", cwd=tmp_path)
