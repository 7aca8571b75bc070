"""Prometheus, Alertmanager and the mail capture under Pulumi mocks, for both runtimes; their generated
configs checked by the real `promtool` and `amtool` (file checks, nothing is started)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

import service_catalogue
from components.alertmanager import TEMPLATE_FILE, TEMPLATES, Alertmanager
from components.prometheus import Prometheus, PrometheusArgs, ScrapeTarget, scrape_jobs
from components.runtime import Placement
from components.stack import build_stack
from tests.support.pulumi_mocks import Graph, build, settle
from tests.support.stack_graphs import ALERT_SECRETS, SLACK_API_URL, SMTP_PASSWORD, UNIT_SETTINGS, WEBHOOK_URL, service_graph, unit_secrets

RUNTIMES = ["process_placement", "docker_placement"]
PROMETHEUS_PORTS = UNIT_SETTINGS.ports[service_catalogue.PROMETHEUS]
ALERTMANAGER_PORTS = UNIT_SETTINGS.ports[service_catalogue.ALERTMANAGER]
MAIL_CAPTURE_PORTS = UNIT_SETTINGS.ports[service_catalogue.MAIL_CAPTURE]
ICEBERG_SINK_PORTS = UNIT_SETTINGS.ports[service_catalogue.ICEBERG_SINK]
READINESS = {
    "prometheus": f"http://127.0.0.1:{PROMETHEUS_PORTS.main}/-/ready",
    "alertmanager": f"http://127.0.0.1:{ALERTMANAGER_PORTS.main}/-/ready",
    "mail-capture": f"http://127.0.0.1:{MAIL_CAPTURE_PORTS.main}/readyz",
}
MONITORING = ["prometheus", "alertmanager", "mail-capture"]
CUSTOM_PROMETHEUS = "custom-prometheus"
LAG_RULES = """\
groups:
  - name: cdc
    rules:
      - alert: SinkLagHigh
        expr: cdcstack_sink_lag_seconds > 5
        for: 2s
        labels: {severity: warning, service: iceberg-sink}
        annotations: {summary: "{{ $labels.table }} is behind", value: "{{ $value }}", runbook: "run `make up`"}
"""


def custom_prometheus_graph(
    placement: Placement,
    scrape_targets: Callable[[Alertmanager], Sequence[ScrapeTarget]] = lambda _: (),
    rule_files: Mapping[str, pulumi.Input[str]] | None = None,
) -> Graph[Prometheus]:
    """A second Prometheus ("custom-prometheus") beside the unit stack's, with targets and rules of
    the test's own, sending to the stack's Alertmanager; only its own resources are in the graph."""

    def program(opts: pulumi.ResourceOptions) -> Prometheus:
        stack = build_stack(UNIT_SETTINGS, unit_secrets(), placement, opts)
        args = PrometheusArgs(
            placement=placement,
            network=stack.network,
            ports=UNIT_SETTINGS.ports[service_catalogue.PROMETHEUS],
            alertmanager=stack.alertmanager,
            scrape_targets=scrape_targets(stack.alertmanager),
            rule_files=rule_files or {},
        )
        return Prometheus(CUSTOM_PROMETHEUS, args, opts=opts)

    return build(program).subgraph(lambda prometheus: prometheus)


def flag(argv: list[str], name: str) -> str:
    """The value of `--name=value` in argv (exactly one)."""
    [value] = [argument.split("=", 1)[1] for argument in argv if argument.startswith(f"--{name}=")]
    return value


def option(argv: list[str], name: str) -> str:
    """The value following `--name` in argv."""
    return argv[argv.index(f"--{name}") + 1]


def process_files(graph: Graph[Any], service: str) -> tuple[dict[str, str], dict[str, str]]:
    """(files, secret_files) of the service's LocalService, the secret ones checked secret."""
    child = graph.named(f"{service}-process")
    files, files_secret = settle(child.props["files"])
    secret_files, secret = settle(child.props["secret_files"])
    assert secret or not secret_files
    assert not files_secret, f"{service}'s plain files became a secret"
    return files, secret_files


def container_files(graph: Graph[Any], service: str) -> tuple[dict[str, str], dict[str, str]]:
    """(files, secret_files) of the service's container launch, by path in its work dir, the secret ones checked secret."""
    child = graph.named(f"{service}-container")
    launch, launch_secret = settle(child.props["launch"])
    secret_launch, secret = settle(child.props["secret_launch"])
    assert secret, f"{service}'s secret launch is not a Pulumi secret"
    assert not launch_secret, f"{service}'s plain launch became a secret"
    return launch["files"], secret_launch["secret_files"]


def written(folder: Path, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return folder


def test_process_prometheus_is_debians_bound_to_loopback_with_its_files_and_tsdb_in_its_work_dir(process_placement: Placement) -> None:
    graph = service_graph("prometheus", process_placement)
    service = graph.inputs_named("prometheus-process")
    argv, workdir = service["argv"], Path(service["workdir"])
    assert argv[0] == process_placement.toolchain.prometheus_binary == "/usr/bin/prometheus"
    assert flag(argv, "web.listen-address") == f"127.0.0.1:{PROMETHEUS_PORTS.main}" and "--web.enable-lifecycle" in argv
    assert flag(argv, "config.file") == str(workdir / "prometheus.yml") and flag(argv, "storage.tsdb.path") == str(workdir / "data")
    assert service["ports"] == [PROMETHEUS_PORTS.main] and service["host"] == "127.0.0.1"
    assert flag(argv, "rules.alert.resend-delay") == "2s"
    config = yaml.safe_load(process_files(graph, "prometheus")[0]["prometheus.yml"])
    assert config["global"] == {"scrape_interval": "5s", "scrape_timeout": "5s", "evaluation_interval": "2s"}


def test_process_alertmanager_is_debians_on_loopback_without_a_cluster_port(process_placement: Placement) -> None:
    service = service_graph("alertmanager", process_placement).inputs_named("alertmanager-process")
    argv, workdir = service["argv"], Path(service["workdir"])
    assert argv[0] == process_placement.toolchain.alertmanager_binary == "/usr/bin/prometheus-alertmanager"
    assert flag(argv, "web.listen-address") == f"127.0.0.1:{ALERTMANAGER_PORTS.main}"
    # Empty: no gossip listener on 0.0.0.0:9094.
    assert "--cluster.listen-address=" in argv
    assert flag(argv, "config.file") == str(workdir / "alertmanager.yml") and flag(argv, "storage.path") == str(workdir / "data")
    assert flag(argv, "web.external-url") == f"http://127.0.0.1:{ALERTMANAGER_PORTS.main}"
    assert service["ports"] == [ALERTMANAGER_PORTS.main] and service["host"] == "127.0.0.1"


def test_process_mail_capture_is_mailpit_on_loopback_accepting_any_login(process_placement: Placement) -> None:
    service = service_graph("mail-capture", process_placement).inputs_named("mail-capture-process")
    argv, workdir = service["argv"], Path(service["workdir"])
    assert argv[0] == process_placement.toolchain.mailpit_binary and Path(argv[0]).parent == process_placement.toolchain.mailpit_bin_dir
    assert (option(argv, "listen"), option(argv, "smtp")) == (f"127.0.0.1:{MAIL_CAPTURE_PORTS.main}", f"127.0.0.1:{MAIL_CAPTURE_PORTS.of('smtp')}")
    assert Path(option(argv, "database")).parent == workdir / "data" and ["mkdir", "-p", "data"] in service["init"]
    assert {"--smtp-auth-accept-any", "--smtp-auth-allow-insecure", "--disable-version-check"} <= set(argv)
    assert service["ports"] == list(MAIL_CAPTURE_PORTS.numbers) and service["host"] == "127.0.0.1"


@pytest.mark.parametrize("service", MONITORING)
def test_health_is_the_services_own_readiness_endpoint_on_both_runtimes(
    service: str, process_placement: Placement, docker_placement: Placement
) -> None:
    probe = {"kind": "http", "url": READINESS[service]}
    assert settle(service_graph(service, process_placement).named(f"{service}-process").props["health"])[0] == probe
    assert settle(service_graph(service, docker_placement).named(f"{service}-container").props["health"])[0] == probe


@pytest.mark.parametrize("placement_fixture", RUNTIMES)
def test_the_receivers_secrets_are_only_in_secret_inputs(placement_fixture: str, request: pytest.FixtureRequest) -> None:
    graph = service_graph("alertmanager", request.getfixturevalue(placement_fixture))
    found_in_a_secret = set()
    for child in graph.children:
        for key, value in child.props.items():
            resolved, secret = settle(value)
            text = json.dumps(resolved, default=str)
            held = {needle for needle in ALERT_SECRETS if needle in text}
            assert secret or not held, f"{child.name}.{key} holds {held} in plain text"
            found_in_a_secret |= held
    assert found_in_a_secret == set(ALERT_SECRETS)


def test_process_alertmanager_has_its_config_as_a_secret_file_and_its_templates_as_a_plain_one(process_placement: Placement) -> None:
    graph = service_graph("alertmanager", process_placement)
    files, secret_files = process_files(graph, "alertmanager")
    assert files == {TEMPLATE_FILE: TEMPLATES}
    assert list(secret_files) == ["alertmanager.yml"]
    assert not settle(graph.named("alertmanager-process").props["env"])[0]


@pytest.mark.parametrize(("placement_fixture", "smarthost"), [("process_placement", f"127.0.0.1:{MAIL_CAPTURE_PORTS.of('smtp')}"), ("docker_placement", f"mail-capture:{MAIL_CAPTURE_PORTS.of('smtp')}")])
def test_amtool_accepts_the_generated_config_with_every_receiver_sending_resolved(
    placement_fixture: str, smarthost: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    placement = request.getfixturevalue(placement_fixture)
    graph = service_graph("alertmanager", placement)
    files, secret_files = (process_files if placement_fixture == "process_placement" else container_files)(graph, "alertmanager")
    assert list(secret_files) == ["alertmanager.yml"]
    folder = written(tmp_path, {**files, **secret_files})
    # From another folder: the templates are found relative to the config, as Alertmanager finds them.
    check = subprocess.run(
        [placement.toolchain.amtool_binary, "check-config", str(folder / "alertmanager.yml")],
        capture_output=True, text=True, timeout=60, check=False, cwd="/",
    )
    assert check.returncode == 0 and "1 templates" in check.stdout, check.stdout + check.stderr
    config = yaml.safe_load((folder / "alertmanager.yml").read_text())
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    [email] = receivers["email"]["email_configs"]
    login = (email["auth_username"], email["auth_password"])
    assert (email["smarthost"], email["require_tls"], login) == (smarthost, False, ("alertmanager", SMTP_PASSWORD))
    assert (email["to"], email["from"]) == ("oncall@cdcstack.local", "alertmanager@cdcstack.local")
    [slack] = receivers["slack"]["slack_configs"]
    assert (slack["api_url"], slack["channel"]) == (SLACK_API_URL, "#cdcstack-alerts")
    [webhook] = receivers["webhook"]["webhook_configs"]
    assert webhook["url"] == WEBHOOK_URL
    assert all(entry["send_resolved"] for entry in (email, slack, webhook))


def test_alerts_are_grouped_by_alert_connector_and_table_and_routed_by_severity(process_placement: Placement) -> None:
    _, secret_files = process_files(service_graph("alertmanager", process_placement), "alertmanager")
    route = yaml.safe_load(secret_files["alertmanager.yml"])["route"]
    assert route["group_by"] == ["alertname", "connector", "table"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("1s", "2s", "1h")
    assert route["receiver"] == "webhook"
    by_severity = {
        child["matchers"][0]: [(grandchild["receiver"], grandchild.get("continue", False)) for grandchild in child["routes"]]
        for child in route["routes"]
    }
    assert by_severity == {
        'severity="critical"': [("email", True), ("slack", True), ("webhook", False)],
        'severity="warning"': [("slack", True), ("webhook", False)],
    }


def test_a_service_down_inhibits_the_other_alerts_of_its_service(process_placement: Placement) -> None:
    _, secret_files = process_files(service_graph("alertmanager", process_placement), "alertmanager")
    rules = yaml.safe_load(secret_files["alertmanager.yml"])["inhibit_rules"]
    assert {
        "source_matchers": ['alertname="ServiceDown"'],
        "target_matchers": ['alertname!="ServiceDown"'],
        "equal": ["service"],
    } in rules


def test_the_email_template_names_the_alert_connector_table_value_and_runbook(process_placement: Placement, tmp_path: Path) -> None:
    """Rendered by amtool with Alertmanager's own template functions."""
    alert = {
        "status": "firing",
        "labels": {"alertname": "SinkLagHigh", "severity": "critical", "connector": "cdcstack-postgres", "table": "pg.inventory.orders"},
        "annotations": {"summary": "orders is behind", "value": "42.5", "runbook": "run `make up`"},
        "startsAt": "2026-01-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": f"http://127.0.0.1:{PROMETHEUS_PORTS.main}/graph",
    }
    group = {"alertname": "SinkLagHigh", "connector": "cdcstack-postgres", "table": "pg.inventory.orders"}
    data = {
        "receiver": "email",
        "status": "firing",
        "alerts": [alert],
        "groupLabels": group,
        "commonLabels": alert["labels"],
        "commonAnnotations": {},
        "externalURL": f"http://127.0.0.1:{ALERTMANAGER_PORTS.main}",
    }
    (tmp_path / "data.json").write_text(json.dumps(data))
    templates = written(tmp_path, {TEMPLATE_FILE: TEMPLATES}) / TEMPLATE_FILE

    def render(name: str) -> str:
        result = subprocess.run(
            [process_placement.toolchain.amtool_binary, "template", "render", f"--template.glob={templates}",
             f'--template.text={{{{ template "{name}" . }}}}', f"--template.data={tmp_path / 'data.json'}"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    subject = render("cdcstack.email.subject")
    assert subject.startswith("[FIRING:1] SinkLagHigh") and "cdcstack-postgres" in subject and "pg.inventory.orders" in subject
    body = render("cdcstack.email.text")
    expected_lines = ("SinkLagHigh", "critical", "Connector: cdcstack-postgres", "Table: pg.inventory.orders", "Value: 42.5", "Runbook: run `make up`")
    for expected in expected_lines:
        assert expected in body, f"{expected!r} not in:\n{body}"


@pytest.mark.parametrize(
    ("placement_fixture", "alertmanager", "self_address"),
    [("process_placement", f"127.0.0.1:{ALERTMANAGER_PORTS.main}", f"127.0.0.1:{PROMETHEUS_PORTS.main}"), ("docker_placement", f"alertmanager:{ALERTMANAGER_PORTS.main}", f"127.0.0.1:{PROMETHEUS_PORTS.main}")],
)
def test_promtool_accepts_prometheus_yml_with_its_rules_and_targets(
    placement_fixture: str, alertmanager: str, self_address: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    placement = request.getfixturevalue(placement_fixture)
    graph = custom_prometheus_graph(
        placement,
        lambda manager: [
            ScrapeTarget("alertmanager", manager.internal_address, labels={"service": "alertmanager"}),
            ScrapeTarget("iceberg-sink", pulumi.Output.from_input(f"127.0.0.1:{ICEBERG_SINK_PORTS.main}"), labels={"service": "iceberg-sink"}),
        ],
        {"cdc.yml": pulumi.Output.from_input(LAG_RULES)},
    )
    files, _ = (process_files if placement_fixture == "process_placement" else container_files)(graph, CUSTOM_PROMETHEUS)
    assert files["rules/cdc.yml"] == LAG_RULES
    folder = written(tmp_path, files)
    check = subprocess.run(
        [placement.toolchain.promtool_binary, "check", "config", str(folder / "prometheus.yml")],
        capture_output=True, text=True, timeout=60, check=False, cwd="/",
    )
    assert check.returncode == 0 and "1 rule files found" in check.stdout, check.stdout + check.stderr
    config = yaml.safe_load(files["prometheus.yml"])
    assert config["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": [alertmanager]}]}]
    assert config["rule_files"] == ["rules/cdc.yml"]
    targets = {job["job_name"]: [static["targets"] for static in job["static_configs"]] for job in config["scrape_configs"]}
    assert targets == {"prometheus": [[self_address]], "alertmanager": [[alertmanager]], "iceberg-sink": [[f"127.0.0.1:{ICEBERG_SINK_PORTS.main}"]]}


def test_targets_of_one_job_are_one_scrape_job_and_must_share_a_path() -> None:
    jobs = scrape_jobs([(ScrapeTarget("sinks", "a", labels={"service": "iceberg-sink"}), "a:1"), (ScrapeTarget("sinks", "b"), "b:2")])
    assert jobs == [
        {
            "job_name": "sinks",
            "metrics_path": "/metrics",
            "static_configs": [{"targets": ["a:1"], "labels": {"service": "iceberg-sink"}}, {"targets": ["b:2"]}],
        }
    ]
    with pytest.raises(ValueError, match="scrape job 'sinks' has targets on /metrics and /other"):
        scrape_jobs([(ScrapeTarget("sinks", "a"), "a:1"), (ScrapeTarget("sinks", "b", "/other"), "b:2")])


def test_a_rule_file_name_with_a_folder_is_refused(process_placement: Placement) -> None:
    with pytest.raises(ValueError, match=r"plain \*\.yml or \*\.yaml names, not \['../cdc.yml'\]"):
        custom_prometheus_graph(process_placement, rule_files={"../cdc.yml": LAG_RULES})


@pytest.mark.parametrize("placement_fixture", RUNTIMES)
def test_each_starts_after_what_it_sends_to(placement_fixture: str, request: pytest.FixtureRequest) -> None:
    placement = request.getfixturevalue(placement_fixture)
    server = "process" if placement_fixture == "process_placement" else "container"
    prometheus = service_graph("prometheus", placement).named(f"prometheus-{server}")
    alertmanager = service_graph("alertmanager", placement).named(f"alertmanager-{server}")
    assert "alertmanager" in [dependency._name for dependency in prometheus.opts.depends_on]
    assert "mail-capture" in [dependency._name for dependency in alertmanager.opts.depends_on]


@pytest.mark.parametrize(
    ("placement_fixture", "internal_smtp"), [("process_placement", f"127.0.0.1:{MAIL_CAPTURE_PORTS.of('smtp')}"), ("docker_placement", f"mail-capture:{MAIL_CAPTURE_PORTS.of('smtp')}")]
)
def test_the_outputs_are_loopback_urls_and_the_smtp_address(placement_fixture: str, internal_smtp: str, request: pytest.FixtureRequest) -> None:
    placement = request.getfixturevalue(placement_fixture)
    mail = service_graph("mail-capture", placement).component
    assert settle(mail.url)[0] == f"http://127.0.0.1:{MAIL_CAPTURE_PORTS.main}"
    assert (settle(mail.smtp_host)[0], settle(mail.smtp_port)[0]) == ("127.0.0.1", MAIL_CAPTURE_PORTS.of("smtp"))
    assert settle(mail.internal_smtp_address)[0] == internal_smtp
    assert settle(service_graph("alertmanager", placement).component.url)[0] == f"http://127.0.0.1:{ALERTMANAGER_PORTS.main}"
    assert settle(service_graph("prometheus", placement).component.url)[0] == f"http://127.0.0.1:{PROMETHEUS_PORTS.main}"
