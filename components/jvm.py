"""What the JVM services share: log4j2 logging, the launch line, and Prometheus' JMX exporter as a Java agent.

Each JVM service names the system property its log4j2 file appender reads for the log folder (Kafka
and Kafka Connect: `kafka.logs.dir`); the launch line points it at the service's work dir.

The JMX exporter (`Toolchain.jmx_exporter_agent`) serves the service's MBeans, as its rules in
`monitoring/jmx/<service>.yml` name them, at `http://<host>:<port>/metrics`, on the placement's listen
host (the agent's own default is every interface, which the process runtime must not use).
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


def jmx_exporter_option(agent_jar: Path | str, port: int, config: Path | str, host: str = LOOPBACK) -> str:
    """The JVM option that starts the JMX exporter agent serving /metrics on `host:port` with the rules in `config`."""
    return f"-javaagent:{agent_jar}={host}:{port}:{config}"


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
