"""What the JVM services share: log4j2 logging and the launch line (process runtime), and
Prometheus' JMX exporter as a Java agent (both runtimes).

Each JVM service names the system property its log4j2 file appender reads for the log folder (Kafka
and Kafka Connect: `kafka.logs.dir`); the launch line points it at the service's work dir.

The JMX exporter (`Toolchain.jmx_exporter_agent`) serves the service's MBeans, as its rules in
`monitoring/jmx/<service>.yml` name them, at `http://<host>:<port>/metrics`: on 127.0.0.1 on the
process runtime (the agent's own default is every interface), on the container's
:data:`JMX_EXPORTER_CONTAINER_PORT` on docker, where the agent and its config are mounted read-only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from components.runtime import LOOPBACK

LOG4J2_FILE = "log4j2.properties"
KAFKA_LOGS_DIR_PROPERTY = "kafka.logs.dir"
"""The log folder property of Kafka's and Kafka Connect's launchers."""


def log4j2_properties(logs_dir_property: str) -> str:
    """WARN and above on stdout (the service log), everything at INFO in server.log in the logs dir."""
    return f"""\
property.logPattern = [%d] %p %m (%c)%n
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = ${{logPattern}}
appender.stdout.filter.threshold.type = ThresholdFilter
appender.stdout.filter.threshold.level = WARN
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${{sys:{logs_dir_property}}}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = ${{logPattern}}
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
rootLogger.appenderRef.file.ref = FILE
"""


JMX_EXPORTER_CONTAINER_PORT = 9404
"""The agent's port inside a container (the exporter's customary one); published on the metrics port."""
JMX_EXPORTER_CONTAINER_DIR = "/opt/cdcstack-jmx-exporter"
"""Where a container has the agent's jar and config, mounted read-only."""


def jmx_exporter_option(agent_jar: Path | str, port: int, config: Path | str, host: str = LOOPBACK) -> str:
    """The JVM option that starts the JMX exporter agent serving /metrics on `host:port` with the rules in `config`."""
    return f"-javaagent:{agent_jar}={host}:{port}:{config}"


def jmx_exporter_container_mounts(agent_jar: Path, config: Path) -> tuple[dict[str, str], str]:
    """The read-only binds (host path -> container path) a container needs for the agent, and its
    JVM option there (every interface of the container, on :data:`JMX_EXPORTER_CONTAINER_PORT`)."""
    jar_in_container = f"{JMX_EXPORTER_CONTAINER_DIR}/{agent_jar.name}"
    config_in_container = f"{JMX_EXPORTER_CONTAINER_DIR}/{config.name}"
    binds = {str(agent_jar): jar_in_container, str(config): config_in_container}
    return binds, jmx_exporter_option(jar_in_container, JMX_EXPORTER_CONTAINER_PORT, config_in_container, host="0.0.0.0")


def jvm_argv(
    java: str,
    heap: Sequence[str],
    classpath: str,
    workdir: Path,
    main_class: str,
    *args: str,
    logs_dir_property: str,
    agents: Sequence[str] = (),
) -> list[str]:
    """The foreground command of a JVM service logging through `log4j2_properties` into `workdir`,
    with the `-javaagent:` options in `agents`."""
    return [
        java,
        *heap,
        *agents,
        "-cp",
        classpath,
        f"-D{logs_dir_property}={workdir}",
        f"-Dlog4j2.configurationFile={workdir / LOG4J2_FILE}",
        # The service's own shutdown hook must finish logging before log4j's closes the appenders.
        "-Dlog4j2.shutdownHookEnabled=false",
        main_class,
        *args,
    ]


def properties_text(settings: Mapping[str, str]) -> str:
    """A Java .properties file, one `key=value` line per setting, in order."""
    return "".join(f"{key}={value}\n" for key, value in settings.items())
