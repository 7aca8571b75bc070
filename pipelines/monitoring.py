"""The monitoring files of the project, for the components that write them into a service's work dir:
Prometheus' alert rules (`monitoring/rules/*.yml`) and the JMX exporter's configs (`monitoring/jmx/`).
No Pulumi here.

The rules are tuned for a test stack (seconds, not minutes); `monitoring/rules/cdc_test.yml` is
their `promtool test rules` suite and is not a rule file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

MONITORING_DIR = Path(__file__).resolve().parent.parent / "monitoring"
RULES_DIR = MONITORING_DIR / "rules"
JMX_DIR = MONITORING_DIR / "jmx"
DECLARED_CONNECTORS_FILE = "declared-connectors.yml"
"""The generated rule file naming the stack's connectors (ConnectorTaskNotRunning's "absent")."""
DECLARED_CONNECTOR_SERIES = "cdcstack:declared_connector"
JMX_EXPORTER_CONFIG_FILE = "jmx-exporter.yml"
"""What a JVM service's work dir calls its JMX exporter config."""


def declared_connectors_rules(connectors: Sequence[str]) -> str:
    """A rule file recording `cdcstack:declared_connector{connector=<name>} 1` for each connector the
    stack registers, so an alert can tell a connector the worker does not report from one it never had.
    JSON, which is YAML too."""
    rules = [{"record": DECLARED_CONNECTOR_SERIES, "expr": "vector(1)", "labels": {"connector": name}} for name in sorted(set(connectors))]
    return json.dumps({"groups": [{"name": "cdcstack-declared-connectors", "rules": rules}]}, indent=2) + "\n"


def monitoring_rule_files(declared_connectors: Sequence[str] = ()) -> dict[str, str]:
    """{file name: text} of every rule file Prometheus loads: the project's rules and the declared connectors."""
    files = {path.name: path.read_text() for path in sorted(RULES_DIR.glob("*.yml")) if not path.stem.endswith("_test")}
    files[DECLARED_CONNECTORS_FILE] = declared_connectors_rules(declared_connectors)
    return files


def jmx_exporter_config(service: str) -> str:
    """The JMX exporter's rules for `service` (kafka, connect)."""
    path = JMX_DIR / f"{service}.yml"
    if not path.is_file():
        raise FileNotFoundError(f"no JMX exporter config for {service!r} at {path}; there are {sorted(p.stem for p in JMX_DIR.glob('*.yml'))}")
    return path.read_text()
