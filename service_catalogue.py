"""Every service of the stack, in one place: its name and its ports (config keys, defaults, roles).
No Pulumi here.

`stack_config` resolves each service's ports from the stack's config into one
:class:`ServicePorts` handle, the only thing a component gets to know its ports by;
`components.stack.build_stack` hands each component its handle and refuses to build a stack in
which an entry has no component. The tests' throwaway stacks take a free port for every key here,
and the life-cycle tests check every service here. Defaults live here only: `Pulumi.dev.yaml` does
not repeat them and no test retypes them.
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
    ports: tuple[PortSpec, ...]
    """The first is the main port."""

    @property
    def port_keys(self) -> tuple[str, ...]:
        return tuple(port.config_key for port in self.ports)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(port.role for port in self.ports)

    def default_ports(self) -> ServicePorts:
        """Its ports when the stack's config sets none of them."""
        return ServicePorts(self, tuple(port.default for port in self.ports))


@dataclass(frozen=True)
class ServicePorts:
    """One service's ports on 127.0.0.1 as the stack's config resolved them: the handle a component
    is given, so it never looks a port up by service name or takes a catalogue tuple apart."""

    service: ServiceSpec
    numbers: tuple[int, ...]
    """In the order of the service's catalogue entry, the main one first."""

    def __post_init__(self) -> None:
        if len(self.numbers) > len(self.service.ports):
            raise ValueError(f"{self.service.name} has {len(self.service.ports)} ports, not {len(self.numbers)}: {self.numbers}")

    @property
    def main(self) -> int:
        """The port clients connect to."""
        return self.numbers[0]

    def get(self, role: str) -> int | None:
        """The port of `role` (e.g. Kafka's "metrics"), None when this handle leaves it out."""
        if role not in self.service.roles:
            raise KeyError(f"{self.service.name} has no {role!r} port; its ports are {list(self.service.roles)}")
        index = self.service.roles.index(role)
        return self.numbers[index] if index < len(self.numbers) else None

    def of(self, role: str) -> int:
        """The port of `role`; a KeyError when the service has none or this handle leaves it out."""
        number = self.get(role)
        if number is None:
            raise KeyError(f"{self.service.name}'s {role!r} port is left out of {self.numbers}")
        return number

    def without(self, role: str) -> ServicePorts:
        """The same ports less `role` and every one after it (a Kafka without its metrics exporter)."""
        return ServicePorts(self.service, self.numbers[: self.service.roles.index(role)])


POSTGRES = ServiceSpec("postgres", (PortSpec("postgresPort", 25432),))
"""PostgreSQL with logical WAL."""
MYSQL = ServiceSpec("mysql", (PortSpec("mysqlPort", 23306),))
"""MySQL's protocol (MariaDB on the process runtime), binlog in ROW format."""
KAFKA = ServiceSpec(
    "kafka",
    (PortSpec("kafkaPort", 29092), PortSpec("kafkaControllerPort", 29093, "controller"), PortSpec("kafkaMetricsPort", 29094, "metrics")),
)
"""Kafka in KRaft mode, one node; "metrics" is its JMX exporter."""
CONNECT = ServiceSpec("connect", (PortSpec("connectPort", 28083), PortSpec("connectMetricsPort", 28084, "metrics")))
"""Kafka Connect with Debezium's connectors; "metrics" is its JMX exporter."""
SCHEMA_REGISTRY = ServiceSpec("schema-registry", (PortSpec("schemaRegistryPort", 28081),))
"""Apicurio Registry serving the Confluent API."""
OBJECT_STORE = ServiceSpec("object-store", (PortSpec("objectStorePort", 29000),))
"""The S3-compatible store holding the warehouse."""
ICEBERG_CATALOG = ServiceSpec("iceberg-catalog", (PortSpec("icebergCatalogPort", 28181),))
"""The Iceberg REST catalog."""
ICEBERG_SINK = ServiceSpec("iceberg-sink", (PortSpec("icebergSinkPort", 28190, "health"),))
"""The CDC -> Iceberg sink job; its one port serves /health and /metrics."""
SPARK_METASTORE = ServiceSpec("spark-metastore", (PortSpec("sparkMetastorePort", 21527),))
"""The Hive metastore's database (a Derby network server)."""
SPARK_MASTER = ServiceSpec("spark-master", (PortSpec("sparkMasterPort", 27077), PortSpec("sparkMasterUiPort", 28480, "ui")))
"""The Spark standalone master; "ui" serves its JSON status."""
SPARK_WORKER = ServiceSpec("spark-worker", (PortSpec("sparkWorkerPort", 27078), PortSpec("sparkWorkerUiPort", 28481, "ui")))
"""The Spark standalone worker."""
DELTA_SINK = ServiceSpec("delta-sink", (PortSpec("deltaSinkPort", 28191, "health"),))
"""The CDC -> Delta Lake sink job (a Spark driver); its one port serves /health and /metrics."""
MAIL_CAPTURE = ServiceSpec("mail-capture", (PortSpec("mailCaptureApiPort", 28025, "api"), PortSpec("mailCaptureSmtpPort", 21025, "smtp")))
"""Mailpit: SMTP in, REST API out."""
WEBHOOK_CAPTURE = ServiceSpec("webhook-capture", (PortSpec("webhookCapturePort", 28026),))
"""Where Alertmanager's Slack and webhook receivers post."""
ALERTMANAGER = ServiceSpec("alertmanager", (PortSpec("alertmanagerPort", 29193),))
PROMETHEUS = ServiceSpec("prometheus", (PortSpec("prometheusPort", 29090),))

SERVICES: tuple[ServiceSpec, ...] = (
    POSTGRES,
    MYSQL,
    KAFKA,
    CONNECT,
    SCHEMA_REGISTRY,
    OBJECT_STORE,
    ICEBERG_CATALOG,
    ICEBERG_SINK,
    SPARK_METASTORE,
    SPARK_MASTER,
    SPARK_WORKER,
    DELTA_SINK,
    MAIL_CAPTURE,
    WEBHOOK_CAPTURE,
    ALERTMANAGER,
    PROMETHEUS,
)
"""In the order the stack's per-service outputs list them."""

BY_NAME: dict[str, ServiceSpec] = {service.name: service for service in SERVICES}
PORT_KEYS: tuple[str, ...] = tuple(key for service in SERVICES for key in service.port_keys)
"""Config keys of every port of the stack, in catalogue order."""


def service(name: str) -> ServiceSpec:
    """The catalogue entry of `name`; a KeyError names the services there are."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no service {name!r} in the catalogue; it has {sorted(BY_NAME)}") from None
