"""Where `make toolchain` put things, read from toolchain/versions.env and the environment.

Imported by `__main__.py` to hand binaries and jar folders to components; the components
themselves never look anything up.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from toolchain.errors import MissingToolchainError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VERSIONS_FILE = PROJECT_ROOT / "toolchain" / "versions.env"
DEBIAN_BIN_DIR = Path("/usr/bin")
"""Where Debian's packages put their binaries (Prometheus, Alertmanager and their tools)."""
IMAGE_ROOT = Path("/opt/cdcstack")
"""Where the runtime image keeps the project: its code, `.toolchain/` and `.venv/`, as a checkout does."""
IMAGE_PYTHON_VERSION = "3.11"
"""Debian bookworm's Python, the image venv's."""


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Parses the KEY=VALUE lines of versions.env (shell quoting allowed, comments ignored)."""
    versions: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        versions[key.strip()] = " ".join(shlex.split(value))
    return versions


@dataclass(frozen=True)
class Toolchain:
    """Installed binaries and jars for the process runtime, and images for the docker runtime."""

    versions: dict[str, str]
    cache_dir: Path

    @classmethod
    def discover(cls) -> Toolchain:
        cache = Path(os.environ.get("CDCSTACK_TOOLCHAIN_DIR", PROJECT_ROOT / ".toolchain"))
        return cls(versions=read_versions(), cache_dir=cache)

    @property
    def postgres_bin_dir(self) -> Path:
        return Path(f"/usr/lib/postgresql/{self.versions['POSTGRES_MAJOR']}/bin")

    @property
    def kafka_lib_dir(self) -> Path:
        return self.cache_dir / "kafka" / "lib"

    @property
    def connect_lib_dir(self) -> Path:
        return self.cache_dir / "connect" / "lib"

    @property
    def debezium_plugin_dir(self) -> Path:
        return self.cache_dir / "debezium" / "plugins"

    @property
    def versitygw_bin_dir(self) -> Path:
        return self.cache_dir / "versitygw" / "bin"

    @property
    def iceberg_rest_lib_dir(self) -> Path:
        return self.cache_dir / "iceberg-rest" / "lib"

    @property
    def iceberg_rest_classes_dir(self) -> Path:
        return self.cache_dir / "iceberg-rest" / "classes"

    @property
    def spark_home(self) -> Path:
        """The pip-installed pyspark package: bin/spark-class, jars/ (Spark, Hadoop client, Hive, Derby)."""
        spec = importlib.util.find_spec("pyspark")
        if spec is None or spec.origin is None:
            raise MissingToolchainError("pyspark is not installed in this Python; run `make toolchain`")
        return Path(spec.origin).parent

    @property
    def spark_lib_dir(self) -> Path:
        """Delta, Iceberg and S3A jars for the sessions, and the metastore's Derby server and client."""
        return self.cache_dir / "spark" / "lib"

    def spark_jars(self) -> tuple[Path, ...]:
        """The jars of `spark_lib_dir` a session loads (`spark.jars`), in a stable order: all but Derby's."""
        folder = self.require_jars(self.spark_lib_dir, "Spark lakehouse")
        return tuple(sorted(jar for jar in folder.glob("*.jar") if not jar.name.startswith("derby")))

    def derby_jar(self, artifact: str) -> Path:
        """`derby` (the engine, pyspark's own), `derbynet` (the network server) or `derbyclient`."""
        folder = self.spark_home / "jars" if artifact == "derby" else self.require_jars(self.spark_lib_dir, "Spark lakehouse")
        jar = folder / f"{artifact}-{self.versions['DERBY_VERSION']}.jar"
        if not jar.is_file():
            raise MissingToolchainError(f"{jar} is missing (DERBY_VERSION must be pyspark's Derby); run `make toolchain`")
        return jar

    @property
    def schema_registry_jar(self) -> Path:
        """Apicurio Registry's Quarkus runner (its lib/ beside it)."""
        jar = self.cache_dir / "apicurio" / "registry" / f"apicurio-registry-app-{self.versions['APICURIO_VERSION']}-runner.jar"
        if not jar.is_file():
            raise MissingToolchainError(f"Apicurio Registry is missing ({jar}); run `make toolchain`")
        return jar

    @property
    def converter_plugin_dir(self) -> Path:
        """Connect plugin folders of converters (Apicurio's Avro converter)."""
        return self.cache_dir / "apicurio-converter" / "plugins"

    @property
    def prometheus_binary(self) -> str:
        """Debian's Prometheus server (package prometheus)."""
        return self.executable("prometheus", (DEBIAN_BIN_DIR,))

    @property
    def promtool_binary(self) -> str:
        """Prometheus' config and rule checker, from the same package."""
        return self.executable("promtool", (DEBIAN_BIN_DIR,))

    @property
    def alertmanager_binary(self) -> str:
        """Debian's Alertmanager (package prometheus-alertmanager names it prometheus-alertmanager)."""
        return self.executable("prometheus-alertmanager", (DEBIAN_BIN_DIR,))

    @property
    def amtool_binary(self) -> str:
        """Alertmanager's config checker and client, from the same package."""
        return self.executable("amtool", (DEBIAN_BIN_DIR,))

    @property
    def mailpit_bin_dir(self) -> Path:
        return self.cache_dir / "mailpit" / "bin"

    @property
    def mailpit_binary(self) -> str:
        """The mail capture (Mailpit), built from the Go module proxy."""
        return self.executable("mailpit", (self.mailpit_bin_dir,))

    @property
    def jmx_exporter_agent(self) -> Path:
        """Prometheus' JMX exporter as a Java agent (`-javaagent:<jar>=<port>:<config>`)."""
        jar = self.cache_dir / "jmx-exporter" / f"jmx_prometheus_javaagent-{self.versions['JMX_EXPORTER_VERSION']}.jar"
        if not jar.is_file():
            raise MissingToolchainError(f"the JMX exporter agent is missing ({jar}); run `make toolchain`")
        return jar

    @property
    def python(self) -> str:
        """The venv's Python, which runs the project's own services (sink jobs, webhook capture)."""
        return sys.executable

    @property
    def java_home(self) -> Path:
        """JAVA_HOME of the `java` on PATH (spark-class looks for $JAVA_HOME/bin/java)."""
        return Path(os.path.realpath(self.executable("java"))).parent.parent

    @property
    def project_dir(self) -> Path:
        """The checkout those services run from."""
        return PROJECT_ROOT

    def executable(self, name: str, search: tuple[Path, ...] = ()) -> str:
        """Absolute path of an executable, looking in `search` first, then PATH."""
        for folder in search:
            candidate = folder / name
            if os.access(candidate, os.X_OK):
                return str(candidate)
        found = shutil.which(name)
        if found is None:
            raise MissingToolchainError(f"{name} is not installed; run `make toolchain`")
        return found

    def require_plugins(self, folder: Path, what: str) -> Path:
        """A Connect plugin path: one sub-folder of jars per plugin."""
        if not folder.is_dir() or not any(folder.glob("*/*.jar")):
            raise MissingToolchainError(f"{what} plugins are missing from {folder}; run `make toolchain`")
        return folder

    def require_jars(self, folder: Path, what: str) -> Path:
        if not folder.is_dir() or not any(folder.glob("*.jar")):
            raise MissingToolchainError(f"{what} jars are missing from {folder}; run `make toolchain`")
        return folder


@dataclass(frozen=True)
class ImageToolchain(Toolchain):
    """The toolchain as the runtime image holds it (`toolchain.images`), for launches run in a container.

    The image's toolchain is a copy of the host's cache (the portable pieces) and the same Debian
    packages at the same paths, so what the host's cache lacks the image lacks too: every check is
    made against `host`, and every path handed out is the image's.
    """

    host: Toolchain | None = None
    arch: str = "amd64"
    """The image's Debian architecture (amd64, arm64): part of the JRE's path."""

    @classmethod
    def of(cls, host: Toolchain, arch: str) -> ImageToolchain:
        return cls(versions=host.versions, cache_dir=IMAGE_ROOT / ".toolchain", host=host, arch=arch)

    @property
    def on_host(self) -> Toolchain:
        """The host's toolchain the image was built from (for drivers that run on the host)."""
        return self._host()

    def _host(self) -> Toolchain:
        if self.host is None:
            raise ValueError("ImageToolchain needs the host's toolchain; build it with ImageToolchain.of")
        return self.host

    @property
    def java_home(self) -> Path:
        """Debian's OpenJDK 17 (the image's openjdk-17-jre-headless)."""
        return Path(f"/usr/lib/jvm/java-17-openjdk-{self.arch}")

    def _in_image(self, path: Path) -> Path:
        return self.cache_dir / path.relative_to(self._host().cache_dir)

    def _on_host(self, path: Path) -> Path:
        return self._host().cache_dir / path.relative_to(self.cache_dir)

    @property
    def spark_home(self) -> Path:
        return IMAGE_ROOT / ".venv" / "lib" / f"python{IMAGE_PYTHON_VERSION}" / "site-packages" / "pyspark"

    def spark_jars(self) -> tuple[Path, ...]:
        return tuple(self._in_image(jar) for jar in self._host().spark_jars())

    def derby_jar(self, artifact: str) -> Path:
        jar = self._host().derby_jar(artifact)
        return self.spark_home / "jars" / jar.name if artifact == "derby" else self._in_image(jar)

    @property
    def schema_registry_jar(self) -> Path:
        return self._in_image(self._host().schema_registry_jar)

    @property
    def jmx_exporter_agent(self) -> Path:
        return self._in_image(self._host().jmx_exporter_agent)

    @property
    def python(self) -> str:
        return str(IMAGE_ROOT / ".venv" / "bin" / "python")

    @property
    def project_dir(self) -> Path:
        return IMAGE_ROOT

    def executable(self, name: str, search: tuple[Path, ...] = ()) -> str:
        """The image's own copy: the first folder searched (the image's paths), else Debian's /usr/bin."""
        return str((search[0] if search else DEBIAN_BIN_DIR) / name)

    def require_plugins(self, folder: Path, what: str) -> Path:
        self._host().require_plugins(self._on_host(folder), what)
        return folder

    def require_jars(self, folder: Path, what: str) -> Path:
        self._host().require_jars(self._on_host(folder), what)
        return folder
