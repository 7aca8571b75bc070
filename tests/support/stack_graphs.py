"""The stack's components built under Pulumi mocks, one builder per component (shared by the unit tests).

Each builder builds the component with what it needs (its network, and the services it depends on)
and returns the graph whose `component` is that service. `SERVICE_GRAPHS` has one per built catalogue
service; `process_program_pins` is the whole program's process runtime as the engine diffs it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from components.alertmanager import Alertmanager, AlertmanagerArgs
from components.change_capture import ChangeCapture, ChangeCaptureArgs
from components.delta_sink_job import DeltaSinkJob, DeltaSinkJobArgs
from components.iceberg_catalog import IcebergRestCatalog, IcebergRestCatalogArgs
from components.iceberg_sink_job import IcebergSinkJob, IcebergSinkJobArgs
from components.kafka import Kafka, KafkaArgs
from components.kafka_connect import KafkaConnect, KafkaConnectArgs
from components.mail_capture import MailCapture, MailCaptureArgs
from components.mysql import MySql, MySqlArgs
from components.network import StackNetwork, StackNetworkArgs
from components.object_store import ObjectStore, ObjectStoreArgs
from components.postgres import Postgres, PostgresArgs, PostgresAvroCapture
from components.prometheus import Prometheus, PrometheusArgs, ScrapeTarget
from components.runtime import Placement
from components.schema_registry import SchemaRegistry, SchemaRegistryArgs
from components.service import ServiceComponent
from components.spark import Spark, SparkArgs
from components.webhook_capture import WebhookCapture, WebhookCaptureArgs
from tests.support.pulumi_mocks import Graph, build, pinned_inputs, run_program, settle
from toolchain.layout import PROJECT_ROOT, Toolchain

POSTGRES_PASSWORD = "pg-secret"
MYSQL_PASSWORD = "my'secret"
S3_SECRET = "s3-secret"
SINK_PYTHON = "/venv/bin/python"
SMTP_PASSWORD = "smtp-secret"
SLACK_API_URL = "http://127.0.0.1:28026/slack/T000-slack-token"
WEBHOOK_URL = "http://127.0.0.1:28026/webhook/hook-token"
ALERT_SECRETS = (SMTP_PASSWORD, SLACK_API_URL, WEBHOOK_URL)
"""What Alertmanager's config holds that must stay secret."""
PROGRAM_SECRETS = {"postgresPassword": POSTGRES_PASSWORD, "mysqlRootPassword": MYSQL_PASSWORD, "objectStoreSecretKey": S3_SECRET}
PROCESS_PINS = Path(__file__).resolve().parents[1] / "unit" / "process_runtime_pins.json"
CONNECTOR = ":DebeziumConnector"


def network_in(placement: Placement, opts: pulumi.ResourceOptions) -> StackNetwork:
    return StackNetwork("network", StackNetworkArgs(placement=placement), opts=opts)


def _postgres(placement: Placement, network: StackNetwork, opts: pulumi.ResourceOptions) -> Postgres:
    args = PostgresArgs(placement=placement, network=network, port=25432, password=pulumi.Output.secret(POSTGRES_PASSWORD))
    return Postgres("postgres", args, opts=opts)


def _mysql(placement: Placement, network: StackNetwork, opts: pulumi.ResourceOptions) -> MySql:
    args = MySqlArgs(placement=placement, network=network, port=23306, root_password=pulumi.Output.secret(MYSQL_PASSWORD))
    return MySql("mysql", args, opts=opts)


def _kafka(placement: Placement, network: StackNetwork, opts: pulumi.ResourceOptions) -> Kafka:
    return Kafka("kafka", KafkaArgs(placement=placement, network=network, port=29092, controller_port=29093, metrics_port=29094), opts=opts)


def _connect(placement: Placement, network: StackNetwork, kafka: Kafka, opts: pulumi.ResourceOptions) -> KafkaConnect:
    args = KafkaConnectArgs(placement=placement, network=network, kafka=kafka, port=28083, metrics_port=28084)
    return KafkaConnect("connect", args, opts=opts)


def _schema_registry(placement: Placement, network: StackNetwork, kafka: Kafka, opts: pulumi.ResourceOptions) -> SchemaRegistry:
    args = SchemaRegistryArgs(placement=placement, network=network, port=28081, kafka=kafka)
    return SchemaRegistry("schema-registry", args, opts=opts)


def _object_store(placement: Placement, network: StackNetwork, opts: pulumi.ResourceOptions) -> ObjectStore:
    args = ObjectStoreArgs(
        placement=placement, network=network, port=29000, access_key_id="cdcstack", secret_access_key=pulumi.Output.secret(S3_SECRET)
    )
    return ObjectStore("object-store", args, opts=opts)


def _catalog(
    placement: Placement, network: StackNetwork, store: ObjectStore, opts: pulumi.ResourceOptions, persistent: bool = True
) -> IcebergRestCatalog:
    args = IcebergRestCatalogArgs(placement=placement, network=network, store=store, port=28181, persistent=persistent)
    return IcebergRestCatalog("iceberg-catalog", args, opts=opts)


@dataclass(frozen=True)
class CaptureStack:
    """The change capture and the services a sink job takes beside it."""

    capture: ChangeCapture
    kafka: Kafka
    registry: SchemaRegistry


def _capture(placement: Placement, network: StackNetwork, opts: pulumi.ResourceOptions) -> CaptureStack:
    """Postgres, MySQL, Kafka, Connect and the schema registry, with the sources `__main__.py` captures:
    both databases (JSON) and the Postgres tables the Avro connector takes."""
    postgres = _postgres(placement, network, opts)
    mysql = _mysql(placement, network, opts)
    kafka = _kafka(placement, network, opts)
    connect = _connect(placement, network, kafka, opts)
    registry = _schema_registry(placement, network, kafka, opts)
    sources = [postgres, mysql, PostgresAvroCapture(postgres=postgres, registry=registry)]
    capture = ChangeCapture("cdc", ChangeCaptureArgs(connect=connect, kafka=kafka, sources=sources), opts=opts)
    return CaptureStack(capture, kafka, registry)


def connector_configs(graph: Graph[ChangeCapture]) -> dict[str, dict[str, str]]:
    """Each Debezium connector's config by its Pulumi name, checked secret (it holds a password)."""
    configs = {}
    for child in graph.children:
        if child.type_.endswith(CONNECTOR):
            config, secret = settle(child.props["config"])
            assert secret, f"{child.name}'s config (with a password) must be a secret"
            configs[child.name] = config
    return configs


def postgres_graph(placement: Placement) -> Graph[Postgres]:
    return build(lambda opts: _postgres(placement, network_in(placement, opts), opts))


def mysql_graph(placement: Placement) -> Graph[MySql]:
    return build(lambda opts: _mysql(placement, network_in(placement, opts), opts))


def kafka_graph(placement: Placement) -> Graph[Kafka]:
    return build(lambda opts: _kafka(placement, network_in(placement, opts), opts))


def connect_graph(placement: Placement) -> Graph[KafkaConnect]:
    def stack(opts: pulumi.ResourceOptions) -> KafkaConnect:
        network = network_in(placement, opts)
        return _connect(placement, network, _kafka(placement, network, opts), opts)

    return build(stack)


def cdc_graph(placement: Placement) -> Graph[ChangeCapture]:
    """Postgres, MySQL, Kafka, Connect and the schema registry, with the change capture of both
    databases and the Avro capture of Postgres."""
    return build(lambda opts: _capture(placement, network_in(placement, opts), opts).capture)


def schema_registry_graph(placement: Placement) -> Graph[SchemaRegistry]:
    """Kafka and the schema registry publishing its events there."""

    def stack(opts: pulumi.ResourceOptions) -> SchemaRegistry:
        network = network_in(placement, opts)
        return _schema_registry(placement, network, _kafka(placement, network, opts), opts)

    return build(stack)


def object_store_graph(placement: Placement) -> Graph[ObjectStore]:
    return build(lambda opts: _object_store(placement, network_in(placement, opts), opts))


def lakehouse_graph(placement: Placement, persistent: bool = True) -> Graph[IcebergRestCatalog]:
    """The object store and the Iceberg REST catalog on it."""

    def stack(opts: pulumi.ResourceOptions) -> IcebergRestCatalog:
        network = network_in(placement, opts)
        return _catalog(placement, network, _object_store(placement, network, opts), opts, persistent)

    return build(stack)


def sink_graph(placement: Placement) -> Graph[IcebergSinkJob]:
    """The whole stack up to the Iceberg sink job."""

    def stack(opts: pulumi.ResourceOptions) -> IcebergSinkJob:
        network = network_in(placement, opts)
        captured = _capture(placement, network, opts)
        catalog = _catalog(placement, network, _object_store(placement, network, opts), opts)
        args = IcebergSinkJobArgs(
            placement=placement,
            network=network,
            port=28190,
            python=SINK_PYTHON,
            project_dir=str(PROJECT_ROOT),
            kafka=captured.kafka,
            change_capture=captured.capture,
            schema_registry=captured.registry,
            catalog=catalog,
        )
        return IcebergSinkJob("iceberg-sink", args, opts=opts)

    return build(stack)


def _spark(placement: Placement, network: StackNetwork, opts: pulumi.ResourceOptions) -> Spark:
    store = _object_store(placement, network, opts)
    args = SparkArgs(
        placement=placement,
        network=network,
        store=store,
        iceberg_catalog=_catalog(placement, network, store, opts),
        metastore_port=21527,
        master_port=27077,
        master_ui_port=28480,
        worker_port=27078,
        worker_ui_port=28481,
    )
    return Spark("spark", args, opts=opts)


def spark_graph(placement: Placement, part: Callable[[Spark], ServiceComponent]) -> Graph[ServiceComponent]:
    """The object store, the Iceberg catalog and the Spark cluster; the graph's component is `part` of it."""
    return build(lambda opts: part(_spark(placement, network_in(placement, opts), opts)))


def spark_cluster_graph(placement: Placement) -> Graph[Spark]:
    """The object store, the Iceberg catalog and the Spark cluster, which is the graph's component."""
    return build(lambda opts: _spark(placement, network_in(placement, opts), opts))


def delta_sink_graph(placement: Placement) -> Graph[DeltaSinkJob]:
    """The whole stack up to the Delta sink job."""

    def stack(opts: pulumi.ResourceOptions) -> DeltaSinkJob:
        network = network_in(placement, opts)
        captured = _capture(placement, network, opts)
        spark = _spark(placement, network, opts)
        args = DeltaSinkJobArgs(
            placement=placement,
            network=network,
            port=28191,
            python=SINK_PYTHON,
            project_dir=str(PROJECT_ROOT),
            kafka=captured.kafka,
            change_capture=captured.capture,
            schema_registry=captured.registry,
            spark=spark,
            warehouse="s3://warehouse/",
        )
        return DeltaSinkJob("delta-sink", args, opts=opts)

    return build(stack)


def _mail_capture(placement: Placement, network: StackNetwork, opts: pulumi.ResourceOptions) -> MailCapture:
    return MailCapture("mail-capture", MailCaptureArgs(placement=placement, network=network, port=28025, smtp_port=21025), opts=opts)


def _alertmanager(placement: Placement, network: StackNetwork, opts: pulumi.ResourceOptions) -> Alertmanager:
    args = AlertmanagerArgs(
        placement=placement,
        network=network,
        port=29193,
        mail_capture=_mail_capture(placement, network, opts),
        email_to="oncall@cdcstack.local",
        email_from="alertmanager@cdcstack.local",
        smtp_username="alertmanager",
        smtp_password=pulumi.Output.secret(SMTP_PASSWORD),
        slack_api_url=pulumi.Output.secret(SLACK_API_URL),
        slack_channel="#cdcstack-alerts",
        webhook_url=pulumi.Output.secret(WEBHOOK_URL),
    )
    return Alertmanager("alertmanager", args, opts=opts)


def webhook_capture_graph(placement: Placement) -> Graph[WebhookCapture]:
    def capture(opts: pulumi.ResourceOptions) -> WebhookCapture:
        args = WebhookCaptureArgs(
            placement=placement, network=network_in(placement, opts), port=28026, python=SINK_PYTHON, project_dir=str(PROJECT_ROOT)
        )
        return WebhookCapture("webhook-capture", args, opts=opts)

    return build(capture)


def mail_capture_graph(placement: Placement) -> Graph[MailCapture]:
    return build(lambda opts: _mail_capture(placement, network_in(placement, opts), opts))


def alertmanager_graph(placement: Placement) -> Graph[Alertmanager]:
    """The mail capture and Alertmanager sending its emails there."""
    return build(lambda opts: _alertmanager(placement, network_in(placement, opts), opts))


def prometheus_graph(
    placement: Placement,
    scrape_targets: Callable[[Alertmanager], Sequence[ScrapeTarget]] = lambda _: (),
    rule_files: Mapping[str, pulumi.Input[str]] | None = None,
) -> Graph[Prometheus]:
    """The mail capture, Alertmanager and Prometheus sending it alerts, scraping `scrape_targets(alertmanager)`."""

    def stack(opts: pulumi.ResourceOptions) -> Prometheus:
        network = network_in(placement, opts)
        alertmanager = _alertmanager(placement, network, opts)
        args = PrometheusArgs(
            placement=placement,
            network=network,
            port=29090,
            alertmanager=alertmanager,
            scrape_targets=scrape_targets(alertmanager),
            rule_files=rule_files or {},
        )
        return Prometheus("prometheus", args, opts=opts)

    return build(stack)


SERVICE_GRAPHS: dict[str, Callable[[Placement], Graph[Any]]] = {
    "postgres": postgres_graph,
    "mysql": mysql_graph,
    "kafka": kafka_graph,
    "connect": connect_graph,
    "schema-registry": schema_registry_graph,
    "object-store": object_store_graph,
    "iceberg-catalog": lakehouse_graph,
    "iceberg-sink": sink_graph,
    "spark-metastore": lambda placement: spark_graph(placement, lambda spark: spark.metastore),
    "spark-master": lambda placement: spark_graph(placement, lambda spark: spark.master),
    "spark-worker": lambda placement: spark_graph(placement, lambda spark: spark.worker),
    "delta-sink": delta_sink_graph,
    "mail-capture": mail_capture_graph,
    "webhook-capture": webhook_capture_graph,
    "alertmanager": alertmanager_graph,
    "prometheus": prometheus_graph,
}
"""One builder per catalogue service; the graph's component is that service."""


def service_graph(name: str, placement: Placement) -> Graph[ServiceComponent]:
    return SERVICE_GRAPHS[name](placement)


def process_program_pins(state_dir: Path) -> dict[str, dict[str, Any]]:
    """`__main__.py` on the process runtime of a stack named "dev", every cdcstack resource as the
    engine diffs it (see `pulumi_mocks.pinned_inputs`), with its state under `state_dir`."""
    previous = os.environ.get("CDCSTACK_STATE_DIR")
    os.environ["CDCSTACK_STATE_DIR"] = str(state_dir)
    try:
        run = run_program(PROJECT_ROOT / "__main__.py", {"runtime": "process"}, PROGRAM_SECRETS, stack="dev")
    finally:
        if previous is None:
            os.environ.pop("CDCSTACK_STATE_DIR")
        else:
            os.environ["CDCSTACK_STATE_DIR"] = previous
    places = {
        str(state_dir): "<state>",
        str(Toolchain.discover().cache_dir): "<toolchain>",
        sys.executable: "<python>",
        str(PROJECT_ROOT): "<project>",
    }
    return pinned_inputs(run, places)


def write_process_pins() -> None:
    """Rewrites the pins `test_components_process` holds the process runtime to (after a deliberate change)."""
    with tempfile.TemporaryDirectory() as state_dir:
        PROCESS_PINS.write_text(json.dumps(process_program_pins(Path(state_dir)), indent=1, sort_keys=True) + "\n")
