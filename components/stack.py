"""`build_stack`: the whole stack's graph, in one place, for `__main__.py` and the unit tests alike.

`__main__.py` reads the config, calls it and exports `Stack.outputs()`; the unit tests build the same
graph under Pulumi mocks (`tests/support/stack_graphs.py`). Each component gets its catalogue entry's
ports as one handle (`settings.ports[catalogue.KAFKA]`), the object store's clients get its
`ObjectStoreAccess`, and the per-service outputs and the list of services are read off what was built.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import pulumi

import service_catalogue as catalogue
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
from components.runtime import Placement
from components.schema_registry import SchemaRegistry, SchemaRegistryArgs
from components.service import ServiceComponent
from components.spark import Spark, SparkArgs
from components.webhook_capture import WebhookCapture, WebhookCaptureArgs
from pipelines.connectors import debezium_key_schema
from pipelines.monitoring import monitoring_rule_files
from providers.errors import CdcstackError
from providers.schema_subject import SchemaSubject, SchemaSubjectArgs
from stack_config import StackConfig


class UnbuiltServiceError(CdcstackError):
    """A catalogue entry has no component in the stack: its ports would be configured with nothing behind them."""


@dataclass(frozen=True)
class StackSecrets:
    """The stack's secrets, as Pulumi secrets (read from config by `__main__.py` only)."""

    postgres_password: pulumi.Input[str]
    mysql_root_password: pulumi.Input[str]
    object_store_secret_key: pulumi.Input[str]
    alert_smtp_password: pulumi.Input[str] | None = None
    """Unset: the stack's mail capture accepts `stack_config.DEFAULT_ALERT_SMTP_PASSWORD`."""
    alert_slack_api_url: pulumi.Input[str] | None = None
    """Unset: Slack alerts go to the stack's webhook capture."""
    alert_webhook_url: pulumi.Input[str] | None = None
    """Unset: webhook alerts go to the stack's webhook capture."""


@dataclass(frozen=True)
class Stack:
    """Every component of a built stack."""

    settings: StackConfig
    placement: Placement
    network: StackNetwork
    postgres: Postgres
    mysql: MySql
    kafka: Kafka
    connect: KafkaConnect
    schema_registry: SchemaRegistry
    change_capture: ChangeCapture
    avro_key_contract: SchemaSubject
    object_store: ObjectStore
    iceberg_catalog: IcebergRestCatalog
    iceberg_sink: IcebergSinkJob
    spark: Spark
    delta_sink: DeltaSinkJob
    mail_capture: MailCapture
    webhook_capture: WebhookCapture
    alertmanager: Alertmanager
    prometheus: Prometheus

    def _components(self) -> Iterator[ServiceComponent]:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, ServiceComponent):
                yield value
            elif isinstance(value, Spark):
                yield from value.services

    @property
    def services(self) -> list[ServiceComponent]:
        """One component per catalogue entry, in catalogue order."""
        built = {component.service.name: component for component in self._components()}
        unbuilt = [service.name for service in catalogue.SERVICES if service.name not in built]
        if unbuilt:
            raise UnbuiltServiceError(f"services in service_catalogue.py that components/stack.py does not build: {unbuilt}")
        return [built[service.name] for service in catalogue.SERVICES]

    def service(self, name: str) -> ServiceComponent:
        """The component of catalogue entry `name`."""
        for component in self.services:
            if component.service.name == name:
                return component
        raise KeyError(f"no service {name!r}; the stack has {[component.service.name for component in self.services]}")

    def outputs(self) -> dict[str, Any]:
        """The stack's outputs, by their names in `stack_outputs`."""
        capture, store = self.change_capture, self.object_store.access
        return {
            out.RUNTIME: self.placement.runtime.value,
            out.STATE_DIR: str(self.placement.stack_dir),
            out.SERVICE_PORTS: {service.service.name: service.ports for service in self.services},
            out.SERVICE_LOGS: {service.service.name: service.log_path for service in self.services},
            out.POSTGRES_DSN: self.postgres.dsn,
            out.POSTGRES_HOST: self.postgres.host,
            out.POSTGRES_PORT: self.postgres.port,
            out.MYSQL_DSN: self.mysql.dsn,
            out.MYSQL_HOST: self.mysql.host,
            out.MYSQL_PORT: self.mysql.port,
            out.KAFKA_BOOTSTRAP: self.kafka.bootstrap_servers,
            out.INTERNAL_ADDRESSES: {
                "postgres": pulumi.Output.concat(self.postgres.internal_host, ":", self.postgres.internal_port.apply(str)),
                "mysql": pulumi.Output.concat(self.mysql.internal_host, ":", self.mysql.internal_port.apply(str)),
                "kafka": self.kafka.internal_bootstrap_servers,
            },
            out.CONNECT_URL: self.connect.url,
            out.CONNECTOR_STATUS_URL: capture.status_url,
            out.POSTGRES_CONNECTOR: capture.connectors["postgres"],
            out.MYSQL_CONNECTOR: capture.connectors["mysql"],
            out.POSTGRES_TOPIC_PREFIX: capture.topic_prefixes["postgres"],
            out.MYSQL_TOPIC_PREFIX: capture.topic_prefixes["mysql"],
            out.SCHEMA_REGISTRY_URL: self.schema_registry.url,
            out.SCHEMA_EVENTS_TOPIC: self.schema_registry.events_topic,
            out.AVRO_CONNECTOR: capture.connectors["postgres-avro"],
            out.AVRO_TOPIC_PREFIX: capture.topic_prefixes["postgres-avro"],
            out.AVRO_KEY_SUBJECT: self.avro_key_contract.id,
            out.S3_ENDPOINT: store.endpoint,
            out.S3_ACCESS_KEY_ID: store.access_key_id,
            out.S3_SECRET_ACCESS_KEY: store.secret_access_key,
            out.S3_REGION: store.region,
            out.WAREHOUSE: store.warehouse,
            out.ICEBERG_CATALOG_URI: self.iceberg_catalog.uri,
            out.ICEBERG_CATALOG_PROPERTIES: self.iceberg_catalog.catalog_properties,
            out.ICEBERG_SINK_HEALTH_URL: self.iceberg_sink.health_url,
            out.ICEBERG_SINK_NAMESPACE: self.iceberg_sink.namespace,
            out.SPARK_MASTER_URL: self.spark.master_url,
            out.SPARK_UI_URL: self.spark.ui_url,
            out.SPARK_CONF: self.spark.spark_conf,
            out.DELTA_DATABASE: self.delta_sink.database,
            out.DELTA_WAREHOUSE: self.spark.delta_warehouse,
            out.DELTA_SINK_HEALTH_URL: self.delta_sink.health_url,
            out.MAIL_CAPTURE_URL: self.mail_capture.url,
            out.ALERTMANAGER_URL: self.alertmanager.url,
            out.ALERT_EMAIL_TO: self.settings.alert_email_to,
            out.ALERT_SLACK_CHANNEL: self.settings.alert_slack_channel,
            out.PROMETHEUS_URL: self.prometheus.url,
            out.WEBHOOK_CAPTURE_URL: self.webhook_capture.url,
        }


def build_stack(
    settings: StackConfig, secrets: StackSecrets, placement: Placement, opts: pulumi.ResourceOptions | None = None
) -> Stack:
    """Every service of the stack, wired to the ones it needs; `opts` go to each top-level component."""
    ports = settings.ports

    def common(service: catalogue.ServiceSpec) -> dict[str, Any]:
        return {"placement": placement, "network": network, "ports": ports[service]}

    network = StackNetwork("network", StackNetworkArgs(placement=placement), opts=opts)
    postgres = Postgres("postgres", PostgresArgs(**common(catalogue.POSTGRES), password=secrets.postgres_password), opts=opts)
    mysql = MySql("mysql", MySqlArgs(**common(catalogue.MYSQL), root_password=secrets.mysql_root_password), opts=opts)
    kafka = Kafka("kafka", KafkaArgs(**common(catalogue.KAFKA)), opts=opts)
    connect = KafkaConnect("connect", KafkaConnectArgs(**common(catalogue.CONNECT), kafka=kafka), opts=opts)
    schema_registry = SchemaRegistry("schema-registry", SchemaRegistryArgs(**common(catalogue.SCHEMA_REGISTRY), kafka=kafka), opts=opts)
    avro_capture = PostgresAvroCapture(postgres=postgres, registry=schema_registry)
    change_capture = ChangeCapture(
        "cdc", ChangeCaptureArgs(connect=connect, kafka=kafka, sources=[postgres, mysql, avro_capture]), opts=opts
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
        opts=opts,
    )
    object_store = ObjectStore(
        "object-store",
        ObjectStoreArgs(
            **common(catalogue.OBJECT_STORE),
            access_key_id=settings.object_store_access_key,
            secret_access_key=secrets.object_store_secret_key,
        ),
        opts=opts,
    )
    store = object_store.access
    iceberg_catalog = IcebergRestCatalog(
        "iceberg-catalog",
        IcebergRestCatalogArgs(**common(catalogue.ICEBERG_CATALOG), store=store, persistent=settings.iceberg_catalog_persistent),
        opts=opts,
    )
    sink_sources = {"kafka": kafka, "change_capture": change_capture, "schema_registry": schema_registry}
    iceberg_sink = IcebergSinkJob(
        "iceberg-sink", IcebergSinkJobArgs(**common(catalogue.ICEBERG_SINK), **sink_sources, catalog=iceberg_catalog), opts=opts
    )
    spark = Spark(
        "spark",
        SparkArgs(
            placement=placement,
            network=network,
            store=store,
            iceberg_catalog=iceberg_catalog,
            metastore_ports=ports[catalogue.SPARK_METASTORE],
            master_ports=ports[catalogue.SPARK_MASTER],
            worker_ports=ports[catalogue.SPARK_WORKER],
        ),
        opts=opts,
    )
    delta_sink = DeltaSinkJob(
        "delta-sink", DeltaSinkJobArgs(**common(catalogue.DELTA_SINK), **sink_sources, spark=spark, store=store), opts=opts
    )
    mail_capture = MailCapture("mail-capture", MailCaptureArgs(**common(catalogue.MAIL_CAPTURE)), opts=opts)
    webhook_capture = WebhookCapture(
        "webhook-capture", WebhookCaptureArgs(**common(catalogue.WEBHOOK_CAPTURE)), opts=opts
    )
    alertmanager = Alertmanager(
        "alertmanager",
        AlertmanagerArgs(
            **common(catalogue.ALERTMANAGER),
            mail_capture=mail_capture,
            email_to=settings.alert_email_to,
            email_from=settings.alert_email_from,
            smtp_username=settings.alert_smtp_username,
            smtp_password=secrets.alert_smtp_password or pulumi.Output.secret(stack_config.DEFAULT_ALERT_SMTP_PASSWORD),
            slack_api_url=secrets.alert_slack_api_url or pulumi.Output.secret(webhook_capture.slack_url),
            slack_channel=settings.alert_slack_channel,
            webhook_url=secrets.alert_webhook_url or pulumi.Output.secret(webhook_capture.webhook_url),
            receivers_depend_on=(webhook_capture,),
        ),
        opts=opts,
    )
    prometheus = Prometheus(
        "prometheus",
        PrometheusArgs(
            **common(catalogue.PROMETHEUS),
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
        opts=opts,
    )
    return Stack(
        settings=settings,
        placement=placement,
        network=network,
        postgres=postgres,
        mysql=mysql,
        kafka=kafka,
        connect=connect,
        schema_registry=schema_registry,
        change_capture=change_capture,
        avro_key_contract=avro_key_contract,
        object_store=object_store,
        iceberg_catalog=iceberg_catalog,
        iceberg_sink=iceberg_sink,
        spark=spark,
        delta_sink=delta_sink,
        mail_capture=mail_capture,
        webhook_capture=webhook_capture,
        alertmanager=alertmanager,
        prometheus=prometheus,
    )
