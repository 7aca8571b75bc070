"""`stack_config`: the check `scripts/stack.sh` runs before `pulumi up`, and the settings `__main__.py` builds."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pulumi
import pytest
import yaml

import service_catalogue
import stack_config
from stack_config import ConfigError, parse, values_from_cli_json
from tests.support.pulumi_mocks import RecordingMocks

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECRETS = {key: stack_config.SECRET_PLACEHOLDER for key in stack_config.SECRET_KEYS}


def one_line_error(values: dict[str, str | None]) -> str:
    with pytest.raises(ConfigError) as error:
        parse(values)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_only_the_secrets_set_gives_every_default() -> None:
    settings = parse(SECRETS)
    assert settings.runtime == "auto" and settings.object_store_access_key == "cdcstack"
    assert settings.iceberg_catalog_persistent is True
    assert (settings.alert_email_to, settings.alert_email_from) == ("oncall@cdcstack.local", "alertmanager@cdcstack.local")
    assert (settings.alert_smtp_username, settings.alert_slack_channel) == ("alertmanager", "#cdcstack-alerts")
    assert {name: handle.numbers for name, handle in settings.ports.items()} == {
        service.name: tuple(port.default for port in service.ports) for service in service_catalogue.SERVICES
    }
    kafka = settings.ports[service_catalogue.KAFKA]
    assert (kafka.main, kafka.of("controller")) == tuple(port.default for port in service_catalogue.KAFKA.ports[:2])
    assert settings.ports["kafka"] is kafka and kafka.service is service_catalogue.KAFKA


def test_a_good_config_is_parsed_typed() -> None:
    settings = parse(
        {**SECRETS, "runtime": " Process ", "kafkaPort": "39092", "icebergCatalogPersistent": "false", "objectStoreAccessKey": "me"}
    )
    kafka_defaults = service_catalogue.KAFKA.default_ports().numbers
    assert (settings.runtime, settings.ports["kafka"].numbers, settings.iceberg_catalog_persistent) == ("process", (39092, *kafka_defaults[1:]), False)
    assert settings.object_store_access_key == "me"


def test_the_dev_stacks_own_config_passes_and_sets_the_defaults() -> None:
    stack_file = yaml.safe_load((PROJECT_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    # What `pulumi config --json` prints for it: secure values without their value.
    document = {
        key: {"secret": True} if isinstance(value, dict) else {"value": str(value), "secret": False}
        for key, value in stack_file.items()
    }
    assert parse(values_from_cli_json(document)) == parse(SECRETS)


def test_an_unknown_runtime_names_the_value_and_the_fix() -> None:
    assert one_line_error({**SECRETS, "runtime": "bogus"}) == (
        "cdcstack:runtime is 'bogus'; expected auto, process or docker (fix with `pulumi config set cdcstack:runtime process`)"
    )


@pytest.mark.parametrize("value", ["http", "0", "65536", "-1", "2.5"])
def test_a_port_that_is_no_port_number_names_the_key_and_the_fix(value: str) -> None:
    assert one_line_error({**SECRETS, "connectPort": value}) == (
        f"cdcstack:connectPort is {value!r}; expected a port number from 1 to 65535"
        " (fix with `pulumi config set cdcstack:connectPort 28083`)"
    )


def test_two_services_on_one_port_name_both_keys() -> None:
    message = one_line_error({**SECRETS, "postgresPort": "30000", "icebergSinkPort": "30000"})
    assert message.startswith("cdcstack:icebergSinkPort is 30000, the same port as cdcstack:postgresPort;")
    assert "pulumi config set cdcstack:icebergSinkPort" in message


def test_a_port_equal_to_another_ports_default_is_a_duplicate_too() -> None:
    assert "the same port as cdcstack:postgresPort" in one_line_error({**SECRETS, "mysqlPort": "25432"})


@pytest.mark.parametrize("missing", stack_config.SECRET_KEYS)
def test_a_missing_secret_names_it_and_how_to_set_it(missing: str) -> None:
    values = {key: value for key, value in SECRETS.items() if key != missing}
    assert one_line_error(values) == (
        f"cdcstack:{missing} is not set; it is required (fix with `pulumi config set cdcstack:{missing} <value> --secret`)"
    )


def test_a_boolean_that_is_neither_true_nor_false_is_refused() -> None:
    assert "cdcstack:icebergCatalogPersistent is 'yes'; expected true or false" in one_line_error(
        {**SECRETS, "icebergCatalogPersistent": "yes"}
    )


def test_the_alert_receivers_settings_are_parsed_and_the_receiver_secrets_are_optional() -> None:
    settings = parse({**SECRETS, "alertEmailTo": " me@example.org ", "alertSmtpUsername": "ops", "alertSlackChannel": "#ops"})
    assert (settings.alert_email_to, settings.alert_smtp_username, settings.alert_slack_channel) == ("me@example.org", "ops", "#ops")
    assert not set(stack_config.OPTIONAL_SECRET_KEYS) & set(SECRETS) and not set(stack_config.OPTIONAL_SECRET_KEYS) & set(stack_config.PLAIN_KEYS)


@pytest.mark.parametrize("value", ["nobody", "@example.org", "me@", "me @example.org"])
def test_an_alert_email_address_that_is_none_names_the_key_and_the_fix(value: str) -> None:
    assert one_line_error({**SECRETS, "alertEmailTo": value}) == (
        f"cdcstack:alertEmailTo is {value!r}; expected an email address (fix with `pulumi config set cdcstack:alertEmailTo oncall@cdcstack.local`)"
    )


def test_cli_json_secrets_become_placeholders_and_other_namespaces_are_ignored() -> None:
    document = {
        "cdcstack:postgresPassword": {"secret": True},
        "cdcstack:runtime": {"value": "docker", "secret": False},
        "aws:region": {"value": "eu-west-1", "secret": False},
    }
    assert values_from_cli_json(document) == {"postgresPassword": "[secret]", "runtime": "docker"}


def test_every_port_has_a_key_and_the_defaults_are_distinct() -> None:
    defaults = [port for handle in parse(SECRETS).ports.values() for port in handle.numbers]
    assert len(defaults) == len(set(defaults)) == len(stack_config.PORT_KEYS) == len(set(stack_config.PORT_KEYS))


def test_the_ports_the_config_parses_are_the_catalogues_and_the_dev_stack_repeats_none() -> None:
    """One list: the config parses the catalogue's port keys, nothing more or less, and their defaults
    live there only (Pulumi.dev.yaml sets no port)."""
    stack_file = yaml.safe_load((PROJECT_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    catalogue_keys = {port.config_key for service in service_catalogue.SERVICES for port in service.ports}
    assert set(stack_config.PORT_KEYS) == catalogue_keys
    assert list(parse(SECRETS).ports) == [service.name for service in service_catalogue.SERVICES]
    assert not [key for key in stack_file if key.removeprefix("cdcstack:") in catalogue_keys]


def run_check(document: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack_config", "check"],
        cwd=PROJECT_ROOT,
        input=json.dumps(document),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_check_command_exits_1_with_one_line_and_0_when_usable() -> None:
    secrets = {f"cdcstack:{key}": {"secret": True} for key in stack_config.SECRET_KEYS}
    bad = run_check({**secrets, "cdcstack:runtime": {"value": "bogus", "secret": False}})
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "error: cdcstack:runtime is 'bogus'; expected auto, process or docker (fix with `pulumi config set cdcstack:runtime process`)"
    ]
    good = run_check(secrets)
    assert (good.returncode, good.stdout, good.stderr) == (0, "", "")


@pytest.fixture
def program_config() -> Iterator[Callable[[dict[str, str]], None]]:
    """Sets the Pulumi config `__main__.py` reads (as the language host does); cleared afterwards."""

    def set_config(values: dict[str, str]) -> None:
        pulumi.runtime.set_all_config({f"cdcstack:{key}": value for key, value in values.items()})

    try:
        yield set_config
    finally:
        pulumi.runtime.set_all_config({})


def test_the_program_stops_on_a_bad_config_with_a_run_error_before_any_resource(
    program_config: Callable[[dict[str, str]], None],
) -> None:
    """RunError is what the language host prints as its message alone (no traceback)."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="cdcstack", stack="unit", preview=False)
    program_config({"runtime": "bogus", "postgresPassword": "p", "mysqlRootPassword": "m", "objectStoreSecretKey": "s"})
    with pytest.raises(pulumi.RunError) as error:
        runpy.run_path(str(PROJECT_ROOT / "__main__.py"), run_name="__main__")
    assert str(error.value).startswith("cdcstack:runtime is 'bogus'; expected auto, process or docker")
    assert mocks.registered == []
