"""cdcstack: every service a CDC lakehouse pipeline touches, brought up by one `pulumi up`.

The only place that reads Pulumi config. The values are checked by `stack_config` (the same check
`scripts/stack.sh` runs before `pulumi up`), and a bad one stops the program with that one line, no
traceback; the graph itself is `components.stack.build_stack`'s, and the outputs are its stack's.
"""

from __future__ import annotations

import os
from pathlib import Path

import pulumi

import stack_config
from components.runtime import Placement, Runtime, docker_engine_url, resolve_runtime
from components.stack import StackSecrets, UnbuiltServiceError, build_stack
from toolchain.layout import PROJECT_ROOT, Toolchain

config = pulumi.Config(stack_config.NAMESPACE)
try:
    settings = stack_config.parse(
        {
            **{key: config.get(key) for key in stack_config.PLAIN_KEYS},
            # Presence only: the secrets themselves are read below with require_secret.
            **{key: stack_config.SECRET_PLACEHOLDER if config.get(key) else None for key in stack_config.SECRET_KEYS},
        }
    )
except stack_config.ConfigError as error:
    # RunError is reported as its message alone; any other exception prints the program's traceback.
    raise pulumi.RunError(str(error)) from None
stack_name = pulumi.get_stack()
state_root = Path(os.environ.get("CDCSTACK_STATE_DIR", PROJECT_ROOT / ".cdcstack"))
stack_dir, docker_network = state_root / "stacks" / stack_name, f"cdcstack-{stack_name}"
runtime = resolve_runtime(settings.runtime)
if runtime is Runtime.DOCKER:
    placement = Placement.on_docker(stack_dir, Toolchain.discover(), docker_network, docker_engine_url())
else:
    placement = Placement(runtime=runtime, stack_dir=stack_dir, toolchain=Toolchain.discover(), docker_network=docker_network)
secrets = StackSecrets(
    postgres_password=config.require_secret("postgresPassword"),
    mysql_root_password=config.require_secret("mysqlRootPassword"),
    object_store_secret_key=config.require_secret("objectStoreSecretKey"),
    alert_smtp_password=config.get_secret("alertSmtpPassword"),
    alert_slack_api_url=config.get_secret("alertSlackApiUrl"),
    alert_webhook_url=config.get_secret("alertWebhookUrl"),
)
stack = build_stack(settings, secrets, placement)
try:
    outputs = stack.outputs()
except UnbuiltServiceError as error:
    raise pulumi.RunError(str(error)) from None
for name, value in outputs.items():
    pulumi.export(name, value)
