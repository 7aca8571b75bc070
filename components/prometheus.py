"""`Prometheus`: scrapes the stack's services, evaluates the alert rules and sends what fires to
Alertmanager.

What it scrapes and which rules it runs come in through the Args (`scrape_targets`, `rule_files`),
built by `__main__.py`; it always scrapes itself too (job `prometheus`). Intervals are short (1 s) so
a test sees a fault alerted within seconds. prometheus.yml and the rule files are written into its
work dir; `promtool check config` accepts them (a unit test runs it). Healthy once `GET /-/ready`
answers. `POST /-/reload` rereads the files (`--web.enable-lifecycle`).

Debian's Prometheus, bound to the placement's listen host (127.0.0.1 on the process runtime), its
TSDB in its data dir.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import yaml

import service_catalogue
from components.alertmanager import Alertmanager
from components.runtime import LOOPBACK
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition

CONFIG_FILE = "prometheus.yml"
RULES_DIR = "rules"
READINESS_PATH = "/-/ready"
SELF_JOB = "prometheus"
RULE_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.ya?ml")


@dataclass(frozen=True)
class ScrapeTarget:
    """One endpoint Prometheus scrapes; targets sharing a job are one scrape job."""

    job: str
    """The `job` label of its series (and the scrape job's name)."""
    address: pulumi.Input[str]
    """`host:port` as Prometheus reaches it (a component's internal address: its alias on docker)."""
    metrics_path: str = "/metrics"
    """Its path; every target of a job must have the same."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels added to its series (e.g. `service`, the catalogue name ServiceDown reports)."""


@dataclass(frozen=True)
class PrometheusArgs(ServiceArgs):
    alertmanager: Alertmanager
    """Where alerts go; Prometheus starts once it is healthy."""
    scrape_targets: Sequence[ScrapeTarget] = ()
    """What it scrapes besides itself."""
    rule_files: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Rule files by name (`cdc.yml`: its YAML text), written under `rules/` and all loaded."""
    scrape_interval: str = "5s"
    """How often every target is scraped. A JMX exporter's answer takes its JVM 0.13 s (Kafka) to
    0.17 s (Connect's 600 series): at 1 s, watching the two cost a third of one of two cores. The
    rules' `for:` windows (5 s, 10 s) and the alert tests' waits allow 5 s."""
    evaluation_interval: str = "2s"
    """How often the rules are evaluated."""
    resend_delay: str = "2s"
    """How often a firing alert is sent to Alertmanager again (Prometheus' default is 1m: an alert that
    fired before Alertmanager was discovered would reach it only a minute later)."""
    retention: str = "1d"
    """How long samples are kept."""


def scrape_jobs(targets: Sequence[tuple[ScrapeTarget, str]]) -> list[dict]:
    """`scrape_configs`, one per job in the order jobs first appear, from (target, its resolved address)."""
    jobs: dict[str, dict] = {}
    for target, address in targets:
        job = jobs.setdefault(target.job, {"job_name": target.job, "metrics_path": target.metrics_path, "static_configs": []})
        if job["metrics_path"] != target.metrics_path:
            raise ValueError(
                f"scrape job {target.job!r} has targets on {job['metrics_path']} and {target.metrics_path}; give them one path or two jobs"
            )
        job["static_configs"].append({"targets": [address], **({"labels": dict(target.labels)} if target.labels else {})})
    return list(jobs.values())


def prometheus_config(args: PrometheusArgs, self_address: str, alertmanager_address: str, targets: Sequence[tuple[ScrapeTarget, str]]) -> str:
    """prometheus.yml, the same on both runtimes (rule files relative to its folder)."""
    config = {
        "global": {
            "scrape_interval": args.scrape_interval,
            "scrape_timeout": args.scrape_interval,
            "evaluation_interval": args.evaluation_interval,
        },
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_address]}]}]},
        "rule_files": [f"{RULES_DIR}/{name}" for name in sorted(args.rule_files)],
        "scrape_configs": scrape_jobs(
            [(ScrapeTarget(SELF_JOB, self_address, labels={"service": "prometheus"}), self_address), *targets]
        ),
    }
    return yaml.safe_dump(config, sort_keys=False)


def prometheus_flags(args: PrometheusArgs, config_file: str, data_dir: str, listen_address: str, external_url: str) -> list[str]:
    return [
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        f"--storage.tsdb.retention.time={args.retention}",
        f"--rules.alert.resend-delay={args.resend_delay}",
        f"--web.listen-address={listen_address}",
        # What alerts' "Source" links point at.
        f"--web.external-url={external_url}",
        "--web.enable-lifecycle",
    ]


class Prometheus(ServiceComponent):
    """A Prometheus server with the stack's scrape targets and rules; `url` is its HTTP API base."""

    url: pulumi.Output[str]
    """The HTTP base on 127.0.0.1 (`GET {url}/api/v1/query`, `/api/v1/targets`, `/api/v1/alerts`)."""

    def __init__(self, name: str, args: PrometheusArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:Prometheus", name, service_catalogue.PROMETHEUS, opts)
        bad_names = sorted(name for name in args.rule_files if not RULE_FILE_NAME.fullmatch(name))
        if bad_names:
            raise ValueError(f"rule file names must be plain *.yml or *.yaml names, not {bad_names}")
        base = f"http://{LOOPBACK}:{args.ports.main}"
        self._serve(
            args,
            ServiceDefinition(
                health={"kind": "http", "url": f"{base}{READINESS_PATH}"},
                process=lambda workdir: self._process_prometheus(args, workdir),
                depends_on=(args.alertmanager,),
                memory_mb=512,
            ),
        )
        self.url = self._once_ready(base)
        self._register({"url": self.url})

    @staticmethod
    def _files(args: PrometheusArgs, self_address: str) -> pulumi.Output[dict[str, str]]:
        """prometheus.yml and the rule files, by their path relative to the config folder."""
        names = sorted(args.rule_files)
        addresses = [target.address for target in args.scrape_targets]
        return pulumi.Output.all(args.alertmanager.internal_address, *(args.rule_files[name] for name in names), *addresses).apply(
            lambda values: {
                CONFIG_FILE: prometheus_config(
                    args, self_address, values[0], list(zip(args.scrape_targets, values[1 + len(names) :]))
                ),
                **{f"{RULES_DIR}/{name}": text for name, text in zip(names, values[1 : 1 + len(names)])},
            }
        )

    @staticmethod
    def _process_prometheus(args: PrometheusArgs, workdir: Path) -> ProcessLaunch:
        address = f"{LOOPBACK}:{args.ports.main}"
        listen = f"{args.placement.listen_host}:{args.ports.main}"
        return ProcessLaunch(
            argv=[
                args.placement.toolchain.prometheus_binary,
                *prometheus_flags(args, str(workdir / CONFIG_FILE), str(workdir / "data"), listen, f"http://{address}"),
            ],
            init=[["mkdir", "-p", "data"]],
            files=Prometheus._files(args, address),
        )
