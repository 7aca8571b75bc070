"""What the JVM services of the process runtime (Kafka, Kafka Connect) share: logging and launch line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

LOG4J2_FILE = "log4j2.properties"

# WARN and above on stdout (the service log), everything at INFO in server.log beside it.
LOG4J2_PROPERTIES = """\
property.logPattern = [%d] %p %m (%c)%n
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = ${logPattern}
appender.stdout.filter.threshold.type = ThresholdFilter
appender.stdout.filter.threshold.level = WARN
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = ${logPattern}
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
rootLogger.appenderRef.file.ref = FILE
"""


def jvm_argv(java: str, heap: Sequence[str], classpath: str, workdir: Path, main_class: str, *args: str) -> list[str]:
    """The foreground command of a Kafka-family JVM service whose logs go under `workdir`."""
    return [
        java,
        *heap,
        "-cp",
        classpath,
        f"-Dkafka.logs.dir={workdir}",
        f"-Dlog4j2.configurationFile={workdir / LOG4J2_FILE}",
        # Kafka's own shutdown hook must finish logging before log4j's closes the appenders.
        "-Dlog4j2.shutdownHookEnabled=false",
        main_class,
        *args,
    ]


def properties_text(settings: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in settings.items())
