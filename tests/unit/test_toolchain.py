"""The pinned versions file, the Go replace copier, the seed splitter, and the toolchain standing on its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from components import seeds
from providers.errors import MissingToolchainError
from toolchain.layout import PROJECT_ROOT, Toolchain, read_versions


def test_versions_file_pins_every_service_artifact() -> None:
    versions = read_versions()
    assert versions["KAFKA_VERSION"].startswith("4.")
    assert versions["APT_PACKAGES"] == "postgresql-15 mariadb-server prometheus prometheus-alertmanager"
    assert set(versions["APT_SYSTEM_SERVICES_OFF"].split()) <= set(versions["APT_PACKAGES"].split())
    assert versions["POSTGRES_MAJOR"] == "15"
    # The docker runtime builds its images from these same pins; no image is pulled, so none is pinned.
    assert versions["DOCKER_ENGINE_PACKAGES"] == "docker.io debootstrap"
    assert not [key for key in versions if key.endswith("_IMAGE")]


def test_the_pulumi_cli_is_built_at_the_python_sdk_version() -> None:
    requirement = next(
        line for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines() if line.startswith("pulumi==")
    )
    built = subprocess.run(
        [str(PROJECT_ROOT / ".toolchain/pulumi/bin/pulumi"), "version"], capture_output=True, text=True, check=True
    )
    assert built.stdout.strip() == "v" + requirement.removeprefix("pulumi==")


def test_go_replaces_copies_only_versioned_replacements() -> None:
    module = {
        "Replace": [
            {"Old": {"Path": "github.com/pulumi/pulumi/sdk/v3"}, "New": {"Path": "../sdk"}},
            {"Old": {"Path": "github.com/sergi/go-diff"}, "New": {"Path": "github.com/sergi/go-diff", "Version": "v1.1.0"}},
            {"Old": {"Path": "golang.org/x/text", "Version": "v0.3.0"}, "New": {"Path": "golang.org/x/text", "Version": "v0.3.6"}},
        ]
    }
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "toolchain/go_replaces.py")],
        input=json.dumps(module),
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == [
        "-replace=github.com/sergi/go-diff=github.com/sergi/go-diff@v1.1.0",
        "-replace=golang.org/x/text@v0.3.0=golang.org/x/text@v0.3.6",
    ]


def test_seed_statements_split_without_comments_or_empty_statements() -> None:
    postgres = seeds.statements("postgres_inventory")
    assert postgres[0] == "CREATE SCHEMA IF NOT EXISTS inventory"
    assert not any(statement.startswith("--") or not statement.strip() for statement in postgres)
    # customers, products, orders, and avro_customers (the Avro connector's).
    assert sum(statement.startswith("CREATE TABLE") for statement in postgres) == 4
    mysql = seeds.statements("mysql_inventory")
    assert mysql[0] == "CREATE DATABASE IF NOT EXISTS inventory"
    assert sum(statement.startswith("INSERT IGNORE") for statement in mysql) == 3


def test_state_and_toolchain_dirs_are_git_ignored() -> None:
    ignored = (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    assert {".toolchain/", ".cdcstack/", ".venv/"} <= set(ignored)
    assert Path(PROJECT_ROOT / "toolchain/versions.env").is_file()


def test_the_toolchain_layout_imports_no_provider_and_raises_a_cdcstack_error() -> None:
    code = "import sys, toolchain.layout; print(sorted(name for name in sys.modules if name.split('.')[0] in ('providers', 'components')))"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"

    from providers.errors import CdcstackError, MissingToolchainError
    from toolchain.errors import MissingToolchainError as raised_by_the_toolchain

    assert raised_by_the_toolchain is MissingToolchainError and issubclass(MissingToolchainError, CdcstackError)


def test_the_monitoring_binaries_are_debians_and_the_toolchains_own(tmp_path: Path) -> None:
    toolchain = Toolchain.discover()
    assert [Path(binary).name for binary in (toolchain.prometheus_binary, toolchain.promtool_binary)] == ["prometheus", "promtool"]
    assert Path(toolchain.alertmanager_binary).name == "prometheus-alertmanager" and Path(toolchain.amtool_binary).name == "amtool"
    assert toolchain.mailpit_binary == str(toolchain.cache_dir / "mailpit" / "bin" / "mailpit")
    # Its version is set at link time; without it Mailpit reports "dev".
    version = subprocess.run([toolchain.mailpit_binary, "version", "--no-release-check"], capture_output=True, text=True, timeout=30, check=True)
    assert version.stdout.split()[1] == toolchain.versions["MAILPIT_VERSION"]
    assert toolchain.jmx_exporter_agent.name == f"jmx_prometheus_javaagent-{toolchain.versions['JMX_EXPORTER_VERSION']}.jar"
    with pytest.raises(MissingToolchainError, match=r"JMX exporter agent is missing .* run `make toolchain`"):
        Toolchain(versions=toolchain.versions, cache_dir=tmp_path).jmx_exporter_agent
