"""cdcstack: every service a CDC lakehouse pipeline touches, brought up by one `pulumi up`.

The only place that reads Pulumi config; components get their values through typed Args. The values
are checked by `stack_config` (the same check `scripts/stack.sh` runs before `pulumi up`), and a bad
one stops the program with that one line, no traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pulumi

import service_catalogue
import stack_config
import stack_outputs as out
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
from components.runtime import Placement, resolve_runtime
from components.schema_registry import SchemaRegistry, SchemaRegistryArgs
from components.service import ServiceComponent
from components.spark import Spark, SparkArgs
from components.webhook_capture import WebhookCapture, WebhookCaptureArgs
from pipelines.connectors import debezium_key_schema
from pipelines.monitoring import monitoring_rule_files
from providers.schema_subject import SchemaSubject, SchemaSubjectArgs
from toolchain.layout import PROJECT_ROOT, Toolchain

config = pulumi.Config(stack_config.NAMESPACE)
try:
    settings = stack_config.parse(
        {
            **{key: config.get(key) for key in stack_config.PLAIN_KEYS},
            # Presence only: the secrets themselves are read below with require_secret.
            **{key: stack_config.SECRET_PLACEHOLDER if config.get(key) else None for key in stack_config.SECRET_KEYS},
        }
    )
except stack_config.ConfigError as error:
    # RunError is reported as its message alone; any other exception prints the program's traceback.
    raise pulumi.RunError(str(error)) from None
stack = pulumi.get_stack()
runtime = resolve_runtime(settings.runtime)
state_root = Path(os.environ.get("CDCSTACK_STATE_DIR", PROJECT_ROOT / ".cdcstack"))
placement = Placement(
    runtime=runtime,
    stack_dir=state_root / "stacks" / stack,
    toolchain=Toolchain.discover(),
    docker_network=f"cdcstack-{stack}",
)

ports = settings.ports

network = StackNetwork("network", StackNetworkArgs(placement=placement))
postgres = Postgres(
    "postgres",
    PostgresArgs(
        placement=placement,
        network=network,
        port=ports.main("postgres"),
        password=config.require_secret("postgresPassword"),
    ),
)
mysql = MySql(
    "mysql",
    MySqlArgs(
        placement=placement,
        network=network,
        port=ports.main("mysql"),
        root_password=config.require_secret("mysqlRootPassword"),
    ),
)
kafka = Kafka(
    "kafka",
    KafkaArgs(
        placement=placement,
        network=network,
        port=ports.main("kafka"),
        controller_port=ports.of("kafka", "controller"),
        metrics_port=ports.of("kafka", "metrics"),
    ),
)
connect = KafkaConnect(
    "connect",
    KafkaConnectArgs(placement=placement, network=network, kafka=kafka, port=ports.main("connect"), metrics_port=ports.of("connect", "metrics")),
)
schema_registry = SchemaRegistry(
    "schema-registry",
    SchemaRegistryArgs(placement=placement, network=network, kafka=kafka, port=ports.main("schema-registry")),
)
avro_capture = PostgresAvroCapture(postgres=postgres, registry=schema_registry)
change_capture = ChangeCapture(
    "cdc",
    ChangeCaptureArgs(
        connect=connect,
        kafka=kafka,
        sources=[postgres, mysql, avro_capture],
    ),
)
# The seeded Avro table's key is a contract: FULL, so a change of its primary key's shape (which would
# re-key every consumer) is refused by the registry and fails the connector, instead of passing by.
avro_key_topic = f"{avro_capture.topic_prefix}.inventory.avro_customers"
avro_key_contract = SchemaSubject(
    "avro-customers-key",
    SchemaSubjectArgs(
        subject=f"{avro_key_topic}-key",
        registry_url=schema_registry.url,
        schema=debezium_key_schema(avro_key_topic, [("id", "int")]),
        compatibility="FULL",
        registry_log=schema_registry.log_path,
    ),
)
object_store = ObjectStore(
    "object-store",
    ObjectStoreArgs(
        placement=placement,
        network=network,
        port=ports.main("object-store"),
        access_key_id=settings.object_store_access_key,
        secret_access_key=config.require_secret("objectStoreSecretKey"),
    ),
)
iceberg_catalog = IcebergRestCatalog(
    "iceberg-catalog",
    IcebergRestCatalogArgs(
        placement=placement,
        network=network,
        store=object_store,
        port=ports.main("iceberg-catalog"),
        persistent=settings.iceberg_catalog_persistent,
    ),
)
iceberg_sink = IcebergSinkJob(
    "iceberg-sink",
    IcebergSinkJobArgs(
        placement=placement,
        network=network,
        port=ports.main("iceberg-sink"),
        python=sys.executable,
        project_dir=str(PROJECT_ROOT),
        kafka=kafka,
        change_capture=change_capture,
        schema_registry=schema_registry,
        catalog=iceberg_catalog,
    ),
)
spark = Spark(
    "spark",
    SparkArgs(
        placement=placement,
        network=network,
        store=object_store,
        iceberg_catalog=iceberg_catalog,
        metastore_port=ports.main("spark-metastore"),
        master_port=ports.main("spark-master"),
        master_ui_port=ports.of("spark-master", "ui"),
        worker_port=ports.main("spark-worker"),
        worker_ui_port=ports.of("spark-worker", "ui"),
    ),
)
delta_sink = DeltaSinkJob(
    "delta-sink",
    DeltaSinkJobArgs(
        placement=placement,
        network=network,
        port=ports.main("delta-sink"),
        python=sys.executable,
        project_dir=str(PROJECT_ROOT),
        kafka=kafka,
        change_capture=change_capture,
        schema_registry=schema_registry,
        spark=spark,
        warehouse=object_store.warehouse,
    ),
)
mail_capture = MailCapture(
    "mail-capture",
    MailCaptureArgs(
        placement=placement, network=network, port=ports.main("mail-capture"), smtp_port=ports.of("mail-capture", "smtp")
    ),
)
webhook_capture = WebhookCapture(
    "webhook-capture",
    WebhookCaptureArgs(
        placement=placement, network=network, port=ports.main("webhook-capture"), python=sys.executable, project_dir=str(PROJECT_ROOT)
    ),
)
alertmanager = Alertmanager(
    "alertmanager",
    AlertmanagerArgs(
        placement=placement,
        network=network,
        port=ports.main("alertmanager"),
        mail_capture=mail_capture,
        email_to=settings.alert_email_to,
        email_from=settings.alert_email_from,
        smtp_username=settings.alert_smtp_username,
        smtp_password=config.get_secret("alertSmtpPassword") or pulumi.Output.secret(stack_config.DEFAULT_ALERT_SMTP_PASSWORD),
        slack_api_url=config.get_secret("alertSlackApiUrl") or pulumi.Output.secret(webhook_capture.slack_url),
        slack_channel=settings.alert_slack_channel,
        webhook_url=config.get_secret("alertWebhookUrl") or pulumi.Output.secret(webhook_capture.webhook_url),
        receivers_depend_on=(webhook_capture,),
    ),
)
prometheus = Prometheus(
    "prometheus",
    PrometheusArgs(
        placement=placement,
        network=network,
        port=ports.main("prometheus"),
        alertmanager=alertmanager,
        scrape_targets=[
            ScrapeTarget(service.service.name, service.metrics_address, labels={"service": service.service.name})
            for service in (kafka, connect, iceberg_sink, delta_sink)
        ]
        + [ScrapeTarget("alertmanager", alertmanager.internal_address, labels={"service": "alertmanager"})],
        # The rule files are known by name up front; one of them lists the connectors that must be running.
        rule_files={
            file: change_capture.connector_names.apply(lambda names, file=file: monitoring_rule_files(names)[file])
            for file in monitoring_rule_files()
        },
    ),
)
services: list[ServiceComponent] = [
    postgres,
    mysql,
    kafka,
    connect,
    schema_registry,
    object_store,
    iceberg_catalog,
    iceberg_sink,
    spark.metastore,
    spark.master,
    spark.worker,
    delta_sink,
    mail_capture,
    webhook_capture,
    alertmanager,
    prometheus,
]
# A catalogue entry without its component here would have ports in the config and no service behind them.
unbuilt = sorted({service.name for service in service_catalogue.SERVICES} - {service.service.name for service in services})
if unbuilt:
    raise pulumi.RunError(f"services in service_catalogue.py that __main__.py does not build: {unbuilt}")

pulumi.export(out.RUNTIME, runtime.value)
pulumi.export(out.STATE_DIR, str(placement.stack_dir))
pulumi.export(out.SERVICE_PORTS, {service.service.name: service.ports for service in services})
pulumi.export(out.SERVICE_LOGS, {service.service.name: service.log_path for service in services})
pulumi.export(out.POSTGRES_DSN, postgres.dsn)
pulumi.export(out.POSTGRES_HOST, postgres.host)
pulumi.export(out.POSTGRES_PORT, postgres.port)
pulumi.export(out.MYSQL_DSN, mysql.dsn)
pulumi.export(out.MYSQL_HOST, mysql.host)
pulumi.export(out.MYSQL_PORT, mysql.port)
pulumi.export(out.KAFKA_BOOTSTRAP, kafka.bootstrap_servers)
pulumi.export(out.CONNECT_URL, connect.url)
pulumi.export(out.CONNECTOR_STATUS_URL, change_capture.status_url)
pulumi.export(out.POSTGRES_CONNECTOR, change_capture.connectors["postgres"])
pulumi.export(out.MYSQL_CONNECTOR, change_capture.connectors["mysql"])
pulumi.export(out.POSTGRES_TOPIC_PREFIX, change_capture.topic_prefixes["postgres"])
pulumi.export(out.MYSQL_TOPIC_PREFIX, change_capture.topic_prefixes["mysql"])
pulumi.export(out.SCHEMA_REGISTRY_URL, schema_registry.url)
pulumi.export(out.SCHEMA_EVENTS_TOPIC, schema_registry.events_topic)
pulumi.export(out.AVRO_CONNECTOR, change_capture.connectors["postgres-avro"])
pulumi.export(out.AVRO_TOPIC_PREFIX, change_capture.topic_prefixes["postgres-avro"])
pulumi.export(out.AVRO_KEY_SUBJECT, avro_key_contract.id)
pulumi.export(out.S3_ENDPOINT, object_store.endpoint)
pulumi.export(out.S3_ACCESS_KEY_ID, object_store.access_key_id)
pulumi.export(out.S3_SECRET_ACCESS_KEY, object_store.secret_access_key)
pulumi.export(out.S3_REGION, object_store.region)
pulumi.export(out.WAREHOUSE, object_store.warehouse)
pulumi.export(out.ICEBERG_CATALOG_URI, iceberg_catalog.uri)
pulumi.export(out.ICEBERG_CATALOG_PROPERTIES, iceberg_catalog.catalog_properties)
pulumi.export(out.ICEBERG_SINK_HEALTH_URL, iceberg_sink.health_url)
pulumi.export(out.ICEBERG_SINK_NAMESPACE, iceberg_sink.namespace)
pulumi.export(out.SPARK_MASTER_URL, spark.master_url)
pulumi.export(out.SPARK_UI_URL, spark.ui_url)
pulumi.export(out.SPARK_CONF, spark.spark_conf)
pulumi.export(out.DELTA_DATABASE, delta_sink.database)
pulumi.export(out.DELTA_WAREHOUSE, spark.delta_warehouse)
pulumi.export(out.DELTA_SINK_HEALTH_URL, delta_sink.health_url)
pulumi.export(out.MAIL_CAPTURE_URL, mail_capture.url)
pulumi.export(out.ALERTMANAGER_URL, alertmanager.url)
pulumi.export(out.ALERT_EMAIL_TO, settings.alert_email_to)
pulumi.export(out.ALERT_SLACK_CHANNEL, settings.alert_slack_channel)
pulumi.export(out.PROMETHEUS_URL, prometheus.url)
pulumi.export(out.WEBHOOK_CAPTURE_URL, webhook_capture.url)
