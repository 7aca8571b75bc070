"""Every service of the stack, in one place: its name, ports (config keys and defaults) and what
healthy means. No Pulumi here.

`stack_config` parses the ports from it (`settings.ports[name]`); each component takes its entry
(`components.service.ServiceComponent`), and `__main__.py` keys the `service_ports` and
`service_logs` outputs by it and refuses to run when an entry has no component. The tests'
throwaway stacks take a free port for every key in it, and the life-cycle tests check every
service in it. A service that is not here cannot be half-registered; one that is here and not
built fails the program and the catalogue test, unless it is named in `PENDING`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PortSpec:
    """One port a service listens on, on 127.0.0.1."""

    config_key: str
    """`cdcstack:<key>` in Pulumi.<stack>.yaml."""
    default: int
    role: str = "main"
    """What listens there: "main" (clients connect here), or another listener of the same service."""


@dataclass(frozen=True)
class ServiceSpec:
    """What the rest of the stack needs to know about a service, whatever its runtime."""

    name: str
    """The component's name, its folder under the stack's services dir, and its key in every output."""
    title: str
    ports: tuple[PortSpec, ...]
    """The first is the main port."""
    healthy_when: str
    """What the health check asks, the same on both runtimes (dependents are gated on it)."""

    @property
    def port_keys(self) -> tuple[str, ...]:
        return tuple(port.config_key for port in self.ports)

    def port_index(self, role: str) -> int:
        """Where the port of `role` is in `ports` (and in every per-service port list built from it)."""
        for index, port in enumerate(self.ports):
            if port.role == role:
                return index
        raise KeyError(f"{self.name} has no {role!r} port; its ports are {[port.role for port in self.ports]}")


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("postgres", "PostgreSQL (logical WAL)", (PortSpec("postgresPort", 25432),), "a SQL ping answers"),
    ServiceSpec("mysql", "MySQL (MariaDB on the process runtime)", (PortSpec("mysqlPort", 23306),), "a SQL ping answers"),
    ServiceSpec(
        "kafka",
        "Kafka (KRaft, one node)",
        (PortSpec("kafkaPort", 29092), PortSpec("kafkaControllerPort", 29093, "controller"), PortSpec("kafkaMetricsPort", 29094, "metrics")),
        "a metadata request lists the broker",
    ),
    ServiceSpec(
        "connect",
        "Kafka Connect with Debezium",
        (PortSpec("connectPort", 28083), PortSpec("connectMetricsPort", 28084, "metrics")),
        "GET /connector-plugins lists Debezium's connectors",
    ),
    ServiceSpec(
        "schema-registry",
        "Schema Registry (Apicurio, Confluent API)",
        (PortSpec("schemaRegistryPort", 28081),),
        "GET /apis/ccompat/v7/subjects answers 200",
    ),
    ServiceSpec("object-store", "S3-compatible object store", (PortSpec("objectStorePort", 29000),), "its health endpoint answers 200"),
    ServiceSpec("iceberg-catalog", "Iceberg REST catalog", (PortSpec("icebergCatalogPort", 28181),), "GET /v1/config answers 200"),
    ServiceSpec("iceberg-sink", "CDC -> Iceberg sink job", (PortSpec("icebergSinkPort", 28190, "health"),), "GET /health answers"),
    ServiceSpec("spark-metastore", "Hive metastore database (Derby network server)", (PortSpec("sparkMetastorePort", 21527),), "its TCP port accepts"),
    ServiceSpec(
        "spark-master",
        "Spark standalone master",
        (PortSpec("sparkMasterPort", 27077), PortSpec("sparkMasterUiPort", 28480, "ui")),
        "its JSON status says ALIVE",
    ),
    ServiceSpec(
        "spark-worker",
        "Spark standalone worker",
        (PortSpec("sparkWorkerPort", 27078), PortSpec("sparkWorkerUiPort", 28481, "ui")),
        "the master's JSON status lists it ALIVE",
    ),
    ServiceSpec("delta-sink", "CDC -> Delta Lake sink job (Spark)", (PortSpec("deltaSinkPort", 28191, "health"),), "GET /health answers"),
    ServiceSpec(
        "mail-capture",
        "Mail capture (Mailpit): SMTP in, REST API out",
        (PortSpec("mailCaptureApiPort", 28025, "api"), PortSpec("mailCaptureSmtpPort", 21025, "smtp")),
        "GET /readyz answers 200",
    ),
    ServiceSpec(
        "webhook-capture",
        "Webhook capture: Alertmanager's Slack and webhook receivers post here",
        (PortSpec("webhookCapturePort", 28026),),
        "GET /health answers 200",
    ),
    ServiceSpec("alertmanager", "Alertmanager", (PortSpec("alertmanagerPort", 29193),), "GET /-/ready answers 200"),
    ServiceSpec("prometheus", "Prometheus", (PortSpec("prometheusPort", 29090),), "GET /-/ready answers 200"),
)

BY_NAME: dict[str, ServiceSpec] = {service.name: service for service in SERVICES}
PORT_KEYS: tuple[str, ...] = tuple(key for service in SERVICES for key in service.port_keys)
"""Config keys of every port of the stack, in catalogue order."""


def service(name: str) -> ServiceSpec:
    """The catalogue entry of `name`; a KeyError names the services there are."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no service {name!r} in the catalogue; it has {sorted(BY_NAME)}") from None
