"""`Spark`: a Spark standalone cluster (one master, one worker) with a Hive metastore, for Delta
Lake and Iceberg on the stack's object store.

Three services of the catalogue, each a component of its own so each has its log, health and
supervision: `spark-metastore` (a Derby network server holding the Hive metastore, so table names
such as `cdc_delta.customers` survive any driver's restart and several drivers share them;
embedded Derby admits one JVM), `spark-master`, and `spark-worker` (healthy once the master lists
it ALIVE). `Spark` groups them and publishes what a driver needs: the master URL and the session
conf (`pipelines.spark.lakehouse_conf`: Delta and Iceberg catalogs, S3A endpoint and keys, the
metastore; secret).

Process runtime: the pyspark package of the venv is SPARK_HOME (the master and worker are its
jars run by java in the foreground), the jars come from `make toolchain`. The worker has room for three
applications at once (the Delta sink's, a test or bench session, and one more), with every daemon's heap
capped so the stack stays well under 8 GB. On docker the same launches run in the runtime image (its
venv's pyspark, its toolchain's jars), each daemon reached by its alias.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from service_catalogue import ServicePorts
from components.iceberg_catalog import IcebergRestCatalog
from components.network import StackNetwork
from components.object_store import ObjectStoreAccess
from components.runtime import LOOPBACK, Placement, Runtime
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition
from toolchain.layout import ImageToolchain
from pipelines.spark import DELTA_DATABASE, DELTA_PREFIX, LakehouseEndpoints, bucket_of, lakehouse_conf, local_jar_uris

DAEMON_HEAP = "256m"
"""Master and worker JVMs (SPARK_DAEMON_MEMORY); the executors are sized by the sessions."""
METASTORE_HEAP = ["-Xms32m", "-Xmx192m"]
WORKER_CORES = 3
WORKER_MEMORY = "3g"
"""Three applications at once (the Delta sink, a test or bench session, and a second driver such as
a restarted one), each one core and a 768 MiB executor: a fourth waits for one to end. The cores
are scheduling slots; the machine's two cores are shared."""
HOST_DRIVER_MASTER_ON_DOCKER = "local[2]"
"""The master of drivers on the host when the cluster runs in containers."""
METASTORE_NETWORK_SERVER = "org.apache.derby.drda.NetworkServerControl"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
JAVA_17_OPENS = [
    "-XX:+IgnoreUnrecognizedVMOptions",
    *(
        f"--add-opens=java.base/{package}=ALL-UNNAMED"
        for package in (
            "java.lang",
            "java.lang.invoke",
            "java.lang.reflect",
            "java.io",
            "java.net",
            "java.nio",
            "java.util",
            "java.util.concurrent",
            "java.util.concurrent.atomic",
            "jdk.internal.ref",
            "sun.nio.ch",
            "sun.nio.cs",
            "sun.security.action",
            "sun.util.calendar",
        )
    ),
]
"""What Spark's launcher (`JavaModuleOptions`) adds for Java 17."""


def daemon_host(placement: Placement, name: str) -> str:
    """The address a daemon binds and advertises: loopback, or its alias in its container (which
    the other containers resolve, and the published ports are forwarded to)."""
    return LOOPBACK if placement.runtime is Runtime.PROCESS else name


def spark_local_env(placement: Placement, name: str) -> dict[str, str]:
    """Where a Spark JVM (daemon or driver) binds and what it tells others to call it."""
    if placement.runtime is Runtime.PROCESS:
        return {"SPARK_LOCAL_IP": LOOPBACK}
    # A container's own hostname is its id, which no other container resolves: its alias instead.
    return {"SPARK_LOCAL_HOSTNAME": name}


def spark_daemon_argv(placement: Placement, workdir: Path, main_class: str, *args: str) -> list[str]:
    """The java command `spark-class` would exec, run directly: the supervisor identifies its
    service by the executable it started, and spark-class is a shell script that execs java."""
    toolchain = placement.toolchain
    classpath = f"{workdir / 'conf'}/:{toolchain.spark_home / 'jars'}/*"
    return [toolchain.executable("java"), f"-Xmx{DAEMON_HEAP}", *JAVA_17_OPENS, "-cp", classpath, main_class, *args]


def spark_daemon_env(placement: Placement, workdir: Path, name: str) -> dict[str, str]:
    """What spark-class needs: SPARK_HOME, and every folder it writes in the service's work dir."""
    toolchain = placement.toolchain
    return {
        "SPARK_HOME": str(toolchain.spark_home),
        "JAVA_HOME": str(toolchain.java_home),
        "SPARK_CONF_DIR": str(workdir / "conf"),
        "SPARK_LOG_DIR": str(workdir / "logs"),
        "SPARK_LOCAL_DIRS": str(workdir / "local"),
        **spark_local_env(placement, name),
        # spark-class's load-spark-env.sh sets it; without it the worker cannot build executor commands.
        "SPARK_SCALA_VERSION": toolchain.versions["SPARK_SCALA_BINARY_VERSION"],
    }


@dataclass(frozen=True)
class SparkMetastoreArgs(ServiceArgs):
    pass


class SparkMetastore(ServiceComponent):
    """The Hive metastore's database: a Derby network server with its data in the service's dir."""

    host: pulumi.Output[str]
    port: pulumi.Output[int]

    def __init__(self, name: str, args: SparkMetastoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:SparkMetastore", name, service_catalogue.SPARK_METASTORE, opts)
        self._serve(
            args,
            ServiceDefinition(
                health={"kind": "tcp", "host": LOOPBACK, "port": args.ports.main},
                process=lambda workdir: self._process(args, workdir),
                start_timeout=60.0,
                memory_mb=384,
            ),
        )
        self.host = self.internal_host
        self.port = self.internal_port
        self._register({"host": self.host, "port": self.port})

    @staticmethod
    def _process(args: SparkMetastoreArgs, workdir: Path) -> ProcessLaunch:
        toolchain = args.placement.toolchain
        classpath = f"{toolchain.derby_jar('derby')}:{toolchain.derby_jar('derbynet')}"
        return ProcessLaunch(
            argv=[
                toolchain.executable("java"),
                *METASTORE_HEAP,
                f"-Dderby.system.home={workdir / 'data'}",
                f"-Dderby.stream.error.file={workdir / 'derby.log'}",
                "-cp",
                classpath,
                METASTORE_NETWORK_SERVER,
                "start",
                "-h",
                args.placement.listen_host,
                "-p",
                str(args.ports.main),
                "-noSecurityManager",
            ],
            init=[["mkdir", "-p", "data"]],
        )


@dataclass(frozen=True)
class SparkMasterArgs(ServiceArgs):
    """Its ports: the master (main) and its web UI ("ui"), whose /json/ is the workers' health check."""


class SparkMaster(ServiceComponent):
    """The standalone master: `spark://127.0.0.1:<port>`."""

    url: pulumi.Output[str]
    internal_url: pulumi.Output[str]
    ui_url: pulumi.Output[str]
    internal_ui_url: pulumi.Output[str]
    """The web UI as other services of the stack reach it (the Delta sink's driver watchdog asks its /json/)."""
    status_url: str
    """The web UI on 127.0.0.1, whose /json/ lists the workers (their health check asks it)."""

    def __init__(self, name: str, args: SparkMasterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:SparkMaster", name, service_catalogue.SPARK_MASTER, opts)
        ui_url = f"http://{LOOPBACK}:{args.ports.of('ui')}"
        self.status_url = ui_url
        self._serve(
            args,
            ServiceDefinition(
                health={"kind": "spark", "url": ui_url},
                process=lambda workdir: self._process(name, args, workdir),
                memory_mb=512,
            ),
        )
        self.url = pulumi.Output.from_input(f"spark://{LOOPBACK}:{args.ports.main}")
        self.internal_url = pulumi.Output.from_input(f"spark://{self._internal_address()}")
        self.ui_url = pulumi.Output.from_input(ui_url)
        self.internal_ui_url = pulumi.Output.from_input(f"http://{self._internal_address_of(args.ports.of('ui'))}")
        self._register({"url": self.url, "internal_url": self.internal_url, "ui_url": self.ui_url, "internal_ui_url": self.internal_ui_url})

    @staticmethod
    def _process(name: str, args: SparkMasterArgs, workdir: Path) -> ProcessLaunch:
        return ProcessLaunch(
            argv=spark_daemon_argv(
                args.placement,
                workdir,
                MASTER_CLASS,
                "--host",
                daemon_host(args.placement, name),
                "--port",
                str(args.ports.main),
                "--webui-port",
                str(args.ports.of("ui")),
            ),
            init=[["mkdir", "-p", "conf", "logs", "local"]],
            env=spark_daemon_env(args.placement, workdir, name),
        )


@dataclass(frozen=True)
class SparkWorkerArgs(ServiceArgs):
    """Its ports: the worker (main) and its web UI ("ui")."""

    master: SparkMaster
    """The master it registers with; healthy once that master lists it ALIVE."""


class SparkWorker(ServiceComponent):
    """The one worker: executors of every application run under it."""

    def __init__(self, name: str, args: SparkWorkerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:SparkWorker", name, service_catalogue.SPARK_WORKER, opts)
        self._serve(
            args,
            ServiceDefinition(
                health={"kind": "spark", "url": args.master.status_url, "alive_workers": 1},
                process=lambda workdir: self._process(name, args, workdir),
                depends_on=(args.master,),
                memory_mb=3584,
            ),
        )
        self._register({})

    @staticmethod
    def _process(name: str, args: SparkWorkerArgs, workdir: Path) -> ProcessLaunch:
        return ProcessLaunch(
            argv=pulumi.Output.from_input(args.master.internal_url).apply(
                lambda master_url: spark_daemon_argv(
                    args.placement,
                    workdir,
                    WORKER_CLASS,
                    "--host",
                    daemon_host(args.placement, name),
                    "--port",
                    str(args.ports.main),
                    "--webui-port",
                    str(args.ports.of("ui")),
                    "--cores",
                    str(WORKER_CORES),
                    "--memory",
                    WORKER_MEMORY,
                    "--work-dir",
                    str(workdir / "work"),
                    master_url,
                )
            ),
            init=[["mkdir", "-p", "conf", "logs", "local", "work"]],
            env={
                **spark_daemon_env(args.placement, workdir, name),
                # Finished applications' folders would pile up in the work dir otherwise.
                "SPARK_WORKER_OPTS": "-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.appDataTtl=3600",
            },
        )


@dataclass(frozen=True)
class SparkArgs:
    placement: Placement
    network: StackNetwork
    store: ObjectStoreAccess
    """Holds the Delta tables (`s3a://<bucket>/delta/...`) and Spark's warehouse."""
    iceberg_catalog: IcebergRestCatalog
    """Offered to sessions as the `iceberg` catalog."""
    metastore_ports: ServicePorts
    master_ports: ServicePorts
    worker_ports: ServicePorts


class Spark(pulumi.ComponentResource):
    """The cluster; `spark_conf` is everything a driver needs (`pipelines.spark.open_session`)."""

    metastore: SparkMetastore
    master: SparkMaster
    worker: SparkWorker
    master_url: pulumi.Output[str]
    ui_url: pulumi.Output[str]
    spark_conf: pulumi.Output[dict]
    """For drivers on the host (tests, bench, your notebooks); secret."""
    internal_spark_conf: pulumi.Output[dict]
    """For drivers that are services of the stack (the Delta sink); secret."""
    delta_database: pulumi.Output[str]
    delta_warehouse: pulumi.Output[str]
    ready: pulumi.Output[str]
    """Resolves once the metastore, master and worker are all healthy."""

    @property
    def services(self) -> tuple[SparkMetastore, SparkMaster, SparkWorker]:
        """Its three services of the catalogue."""
        return (self.metastore, self.master, self.worker)

    def __init__(self, name: str, args: SparkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:Spark", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        common = {"placement": args.placement, "network": args.network}
        self.metastore = SparkMetastore(f"{name}-metastore", SparkMetastoreArgs(**common, ports=args.metastore_ports), child)
        self.master = SparkMaster(f"{name}-master", SparkMasterArgs(**common, ports=args.master_ports), child)
        self.worker = SparkWorker(f"{name}-worker", SparkWorkerArgs(**common, ports=args.worker_ports, master=self.master), child)
        self.master_url = self.master.url
        self.ui_url = self.master.ui_url
        self.ready = pulumi.Output.all(self.metastore.ready, self.master.ready, self.worker.ready).apply(lambda values: ",".join(values))
        toolchain = args.placement.toolchain
        host_jars = local_jar_uris(toolchain.spark_jars())
        host_driver_class_path = [str(toolchain.derby_jar("derbyclient"))]
        if isinstance(toolchain, ImageToolchain):
            # Executors in containers have the jars in the image, where the Delta sink's driver has
            # them too; a driver on the host ships its own copies (plain paths in spark.jars).
            internal_jars, internal_class_path = host_jars, host_driver_class_path
            host_jars = [str(jar) for jar in toolchain.on_host.spark_jars()]
            host_driver_class_path = [str(toolchain.on_host.derby_jar("derbyclient"))]
            # Executors in containers cannot call back to a driver on the host (it is not on their
            # network), so a host's driver runs its own executors: same tables, metastore and store.
            host_master: pulumi.Input[str] = HOST_DRIVER_MASTER_ON_DOCKER
            # Executors call back to the driver: the sink's container by its alias.
            internal_driver = {"spark.driver.host": service_catalogue.DELTA_SINK.name, "spark.driver.bindAddress": "0.0.0.0"}
        else:
            internal_jars, internal_class_path, internal_driver = host_jars, host_driver_class_path, {}
            host_master = self.master.url
        self.spark_conf = self._conf(
            args, host_master, LOOPBACK, args.metastore_ports.main, args.store.endpoint, args.iceberg_catalog.uri, host_jars, host_driver_class_path
        )
        self.internal_spark_conf = self._conf(
            args,
            self.master.internal_url,
            self.metastore.host,
            self.metastore.port,
            args.store.internal_endpoint,
            args.iceberg_catalog.internal_uri,
            internal_jars,
            internal_class_path,
            internal_driver,
        )
        self.delta_database = pulumi.Output.from_input(DELTA_DATABASE)
        self.delta_warehouse = args.store.warehouse.apply(lambda warehouse: f"s3a://{bucket_of(warehouse)}/{DELTA_PREFIX}")
        self.register_outputs(
            {
                "master_url": self.master_url,
                "ui_url": self.ui_url,
                "spark_conf": self.spark_conf,
                "internal_spark_conf": self.internal_spark_conf,
                "delta_database": self.delta_database,
                "delta_warehouse": self.delta_warehouse,
                "ready": self.ready,
            }
        )

    def _conf(
        self,
        args: SparkArgs,
        master_url: pulumi.Input[str],
        metastore_host: pulumi.Input[str],
        metastore_port: pulumi.Input[int],
        s3_endpoint: pulumi.Output[str],
        iceberg_uri: pulumi.Input[str],
        jars: list[str],
        driver_class_path: list[str],
        driver: dict[str, str] | None = None,
    ) -> pulumi.Output[dict]:
        store = args.store
        return pulumi.Output.secret(
            pulumi.Output.all(
                master_url,
                metastore_host,
                metastore_port,
                store.resolved(s3_endpoint),
                store.warehouse,
                iceberg_uri,
                self.ready,
            ).apply(
                lambda values: {**lakehouse_conf(
                    LakehouseEndpoints(
                        master_url=values[0],
                        metastore_host=values[1],
                        metastore_port=int(values[2]),
                        store=values[3],
                        bucket=bucket_of(values[4]),
                        iceberg_catalog_uri=values[5],
                    ),
                    jars,
                    driver_class_path,
                ), **(driver or {})}
            )
        )
