"""The CDC → Delta Lake sink job (see :mod:`pipelines.sinks.job`), one Delta table per topic.

    python -m pipelines.sinks.delta.job --bootstrap HOST:PORT --topics-regex '^(pg|my)\\.inventory\\..+' \\
        --namespace cdc_delta --group cdcstack-delta-sink --spark-conf spark.json --bucket warehouse \\
        --work-dir DIR --health-port 28191 --spark-master-ui-url http://HOST:PORT

The process is the tables' one Spark driver (Delta on S3 admits one writer per table, see
docs/spikes/spark-delta.md). The session opens on first use, so a Spark master still starting
delays a table instead of ending the job. A driver that is gone cannot come back inside the
process: the job then exits with :data:`DRIVER_LOST_EXIT_CODE` for its supervisor to restart it.
So does a driver left without executors, or one a restarted master no longer knows, which no Spark
call reports (a MERGE just waits): :mod:`pipelines.sinks.delta.watchdog` tells, from a thread.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pipelines.debezium import ChangeEvent
from pipelines.sinks.core import Commit
from pipelines.sinks.delta.watchdog import MASTER_TIMEOUT_SECONDS, DriverLook, DriverWatch, DriverWatchdog, own_log_path
from pipelines.sinks.delta.writer import DeltaTableWriter, SparkDriverLostError, failure_headline, failure_text
from pipelines.sinks.errors import TransientSinkError
from pipelines.sinks.job import job_arguments, run_job
from pipelines.spark import executor_count, master_applications, open_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("cdcstack.sink.delta")

APP_NAME = "cdcstack-delta-sink"
DRIVER_LOST_EXIT_CODE = 70
"""EX_SOFTWARE: the Spark driver is gone; a restart with a new driver is the cure."""


class LazySession:
    """Opens the Spark session on first use and keeps it for every table of the job."""

    def __init__(self, conf: Mapping[str, str], work_dir: Path | None = None) -> None:
        # Spark's console progress bar would interleave with the job's JSON log lines.
        self.conf = {"spark.ui.showConsoleProgress": "false", **conf}
        self.work_dir = work_dir
        self._session: SparkSession | None = None
        self.application_id: str | None = None
        """The open session's application, as the master knows it (kept: asking needs the JVM)."""

    def get(self) -> SparkSession:
        if self._session is None:
            try:
                self._session = open_session(self.conf, APP_NAME, self.work_dir)
            except Exception as error:  # noqa: BLE001 - a JVM that does not start raises anything from py4j or pyspark
                self._discard_failed_context()
                master = self.conf.get("spark.master", "no spark.master")
                raise TransientSinkError(
                    f"the Spark session ({master}) could not be opened, retried with the next batch: {failure_headline(failure_text(error))}"
                ) from error
            self.application_id = self._session.sparkContext.applicationId
        return self._session

    def opened(self) -> SparkSession | None:
        """The session if it is open; never opens it."""
        return self._session

    @staticmethod
    def _discard_failed_context() -> None:
        # When the master does not take the application (not up yet), the context is stopped but
        # stays pyspark's active one, and every later open would return it stopped.
        from pyspark import SparkContext

        failed = SparkContext._active_spark_context  # noqa: SLF001 - pyspark keeps it nowhere public
        if failed is not None:
            try:
                failed.stop()
            except Exception:  # noqa: BLE001 - the failure to open is the one to report
                pass

    def stop(self) -> None:
        if self._session is not None:
            self._session.stop()
            self._session, self.application_id = None, None


def exit_for_a_new_driver(lost: SparkDriverLostError) -> NoReturn:
    log.critical("spark driver lost, exiting for a restart", extra={"fields": {"error": str(lost), "exit_code": DRIVER_LOST_EXIT_CODE}})
    logging.shutdown()
    # os._exit, not sys.exit: the consumer core catches every exception of a batch to retry it, and
    # a normal shutdown would wait on py4j's threads and atexit hooks talking to the dead JVM. No
    # offset is lost: the tables hold them, and the static group members rejoin at once.
    os._exit(DRIVER_LOST_EXIT_CODE)


@dataclass
class DriverBoundWriter:
    """A :class:`DeltaTableWriter` on the job's lazily opened session; a lost driver ends the process."""

    identifier: str
    session: LazySession
    bucket: str
    on_driver_lost: Callable[[SparkDriverLostError], NoReturn] = exit_for_a_new_driver
    _writer: DeltaTableWriter | None = field(default=None, repr=False)

    def _delta(self) -> DeltaTableWriter:
        if self._writer is None:
            self._writer = DeltaTableWriter(self.session.get(), self.identifier, self.bucket)
        return self._writer

    def committed_offsets(self) -> dict[str, int]:
        try:
            return self._delta().committed_offsets()
        except SparkDriverLostError as lost:
            self.on_driver_lost(lost)

    def apply(self, events: Sequence[ChangeEvent], offsets: Mapping[str, int]) -> Commit:
        try:
            return self._delta().apply(events, offsets)
        except SparkDriverLostError as lost:
            self.on_driver_lost(lost)


def driver_look(session: LazySession, master_ui_url: str | None) -> DriverLook | None:
    """What the watchdog sees of the session's driver and its master (None while no session is open)."""
    spark, application_id = session.opened(), session.application_id
    if spark is None or application_id is None:
        return None
    executors, driver_error = None, None
    try:
        executors = executor_count(spark)
    except Exception as error:  # noqa: BLE001 - py4j raises anything for a driver that is gone
        driver_error = failure_headline(failure_text(error))
    known, master_error = None, None
    if master_ui_url:
        try:
            applications = master_applications(master_ui_url, MASTER_TIMEOUT_SECONDS)
        except (OSError, ValueError) as error:
            master_error = f"{master_ui_url}/json/ did not answer ({error})"
        else:
            known = None if applications is None else application_id in applications
            master_error = "it is not ALIVE (recovering or standby)" if applications is None else None
    return DriverLook(application_id, executors, known, driver_error, master_error)


def main() -> None:
    parser = job_arguments(__doc__.splitlines()[0])
    parser.add_argument("--spark-conf", required=True, type=Path, help="JSON file of spark.* settings (it holds the S3 secret)")
    parser.add_argument("--bucket", required=True, help="the warehouse bucket; tables go to s3a://<bucket>/delta/<table>")
    parser.add_argument("--work-dir", type=Path, help="the driver's scratch files (Derby log, Spark local dirs)")
    parser.add_argument(
        "--spark-master-ui-url",
        help="the standalone master's web UI (http://HOST:PORT), to tell a driver the master no longer knows; "
        "without it only the driver's executors are watched",
    )
    args = parser.parse_args()
    # py4j logs every gateway connection it opens or closes at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    session = LazySession(json.loads(args.spark_conf.read_text()), args.work_dir)
    master_ui_url = args.spark_master_ui_url.rstrip("/") if args.spark_master_ui_url else None
    watchdog = DriverWatchdog(
        DriverWatch(session.conf.get("spark.master", "no spark.master"), master_ui_url, own_log_path()),
        lambda: driver_look(session, master_ui_url),
        lambda problem: exit_for_a_new_driver(SparkDriverLostError(problem)),
    ).start()
    try:
        run_job(args, lambda identifier: DriverBoundWriter(identifier, session, args.bucket), destination="delta", destination_errors=watchdog.errors)
    finally:
        watchdog.stop()
        session.stop()


if __name__ == "__main__":
    main()
