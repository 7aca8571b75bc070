"""What the JVM services of the process runtime share: log4j2 logging and the launch line.

Each JVM service names the system property its log4j2 file appender reads for the log folder (Kafka
and Kafka Connect: `kafka.logs.dir`); the launch line points it at the service's work dir.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

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


def jvm_argv(
    java: str,
    heap: Sequence[str],
    classpath: str,
    workdir: Path,
    main_class: str,
    *args: str,
    logs_dir_property: str,
) -> list[str]:
    """The foreground command of a JVM service logging through `log4j2_properties` into `workdir`."""
    return [
        java,
        *heap,
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
