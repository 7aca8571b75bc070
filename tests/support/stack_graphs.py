"""The stack built under Pulumi mocks by the program's own builder (`components.stack.build_stack`),
for the unit tests: the whole stack (`stack_graph`), one service's part of it (`service_graph`), and
`process_program_pins`, the whole program's process runtime as the engine diffs it. What is here
beyond that is test-only: the secrets the unit stack is built with and a few readers of its graph.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pulumi

import service_catalogue
import stack_config
from components.change_capture import ChangeCapture
from components.runtime import Placement
from components.service import ServiceComponent
from components.stack import Stack, StackSecrets, build_stack
from tests.support.pulumi_mocks import Graph, build, pinned_inputs, run_program, settle
from toolchain.layout import PROJECT_ROOT, Toolchain

UNIT_SETTINGS = stack_config.parse(dict.fromkeys(stack_config.SECRET_KEYS, stack_config.SECRET_PLACEHOLDER))
"""The dev stack's settings: every default of the catalogue and of `stack_config`."""
POSTGRES_PASSWORD = "pg-secret"
MYSQL_PASSWORD = "my'secret"
S3_SECRET = "s3-secret"
SMTP_PASSWORD = "smtp-secret"
WEBHOOK_CAPTURE_PORT = UNIT_SETTINGS.ports[service_catalogue.WEBHOOK_CAPTURE].main
"""Where Alertmanager's Slack and webhook receivers post in the unit stack."""
SLACK_API_URL = f"http://127.0.0.1:{WEBHOOK_CAPTURE_PORT}/slack/T000-slack-token"
WEBHOOK_URL = f"http://127.0.0.1:{WEBHOOK_CAPTURE_PORT}/webhook/hook-token"
ALERT_SECRETS = (SMTP_PASSWORD, SLACK_API_URL, WEBHOOK_URL)
"""What Alertmanager's config holds that must stay secret."""
PROGRAM_SECRETS = {"postgresPassword": POSTGRES_PASSWORD, "mysqlRootPassword": MYSQL_PASSWORD, "objectStoreSecretKey": S3_SECRET}
PROCESS_PINS = Path(__file__).resolve().parents[1] / "unit" / "process_runtime_pins.json"
CONNECTOR = ":DebeziumConnector"

T = TypeVar("T")


def unit_secrets() -> StackSecrets:
    """Every secret set, Alertmanager's too (so the tests can look for each where it must not be)."""
    return StackSecrets(
        postgres_password=pulumi.Output.secret(POSTGRES_PASSWORD),
        mysql_root_password=pulumi.Output.secret(MYSQL_PASSWORD),
        object_store_secret_key=pulumi.Output.secret(S3_SECRET),
        alert_smtp_password=pulumi.Output.secret(SMTP_PASSWORD),
        alert_slack_api_url=pulumi.Output.secret(SLACK_API_URL),
        alert_webhook_url=pulumi.Output.secret(WEBHOOK_URL),
    )


_STACKS: dict[tuple[int, tuple[tuple[str, Any], ...]], tuple[Placement, Graph[Stack]]] = {}
"""By placement (kept alive with its graph, so its id is not reused) and settings."""


def stack_graph(placement: Placement, **settings: Any) -> Graph[Stack]:
    """The whole stack on `placement`, with `UNIT_SETTINGS` changed by `settings` (e.g. a catalog
    that does not persist). Built once per placement and settings: reading it changes nothing."""
    config = dataclasses.replace(UNIT_SETTINGS, **settings)
    key = (id(placement), tuple(sorted(settings.items())))
    if key not in _STACKS:
        _STACKS[key] = (placement, build(lambda opts: build_stack(config, unit_secrets(), placement, opts)))
    return _STACKS[key][1]


def part_graph(placement: Placement, part: Callable[[Stack], T], **settings: Any) -> Graph[T]:
    """`part` of the whole stack (a component) with only the resources under it."""
    return stack_graph(placement, **settings).subgraph(part)


def service_graph(name: str, placement: Placement) -> Graph[ServiceComponent]:
    """The component of catalogue service `name`, with only the resources under it."""
    return part_graph(placement, lambda stack: stack.service(name))


def cdc_graph(placement: Placement) -> Graph[ChangeCapture]:
    """The whole stack, whose component is its change capture (both databases and the Avro capture of Postgres)."""
    graph = stack_graph(placement)
    return dataclasses.replace(graph, component=graph.component.change_capture)


def connector_configs(graph: Graph[ChangeCapture]) -> dict[str, dict[str, str]]:
    """Each Debezium connector's config by its Pulumi name, checked secret (it holds a password)."""
    configs = {}
    for child in graph.children:
        if child.type_.endswith(CONNECTOR):
            config, secret = settle(child.props["config"])
            assert secret, f"{child.name}'s config (with a password) must be a secret"
            configs[child.name] = config
    return configs


def process_program_pins(state_dir: Path) -> dict[str, dict[str, Any]]:
    """`__main__.py` on the process runtime of a stack named "dev", every cdcstack resource as the
    engine diffs it (see `pulumi_mocks.pinned_inputs`), with its state under `state_dir`."""
    previous = os.environ.get("CDCSTACK_STATE_DIR")
    os.environ["CDCSTACK_STATE_DIR"] = str(state_dir)
    try:
        run = run_program(PROJECT_ROOT / "__main__.py", {"runtime": "process"}, PROGRAM_SECRETS, stack="dev")
    finally:
        if previous is None:
            os.environ.pop("CDCSTACK_STATE_DIR")
        else:
            os.environ["CDCSTACK_STATE_DIR"] = previous
    places = {
        str(state_dir): "<state>",
        str(Toolchain.discover().cache_dir): "<toolchain>",
        sys.executable: "<python>",
        str(PROJECT_ROOT): "<project>",
    }
    return pinned_inputs(run, places)


def write_process_pins() -> None:
    """Rewrites the pins `test_components_process` holds the process runtime to (after a deliberate change)."""
    with tempfile.TemporaryDirectory() as state_dir:
        PROCESS_PINS.write_text(json.dumps(process_program_pins(Path(state_dir)), indent=1, sort_keys=True) + "\n")
