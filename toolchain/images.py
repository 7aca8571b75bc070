"""The docker runtime's images, built by the project from package registries only (no image registry).

Three layers, each tagged by a digest of what went into it, so an unchanged pin set is not rebuilt:

- **base**: Debian bookworm. `debian:bookworm-slim` where an image registry answers; otherwise built
  from Debian's packages with `debootstrap --variant=minbase` against the host's own apt mirror and
  imported. Either way for the platform asked for.
- **toolchain**: the pinned versions of `toolchain/versions.env` and `requirements*.txt`, the same the
  process runtime runs: Debian's packages (PostgreSQL, MariaDB, Prometheus, Alertmanager, a JRE, Python)
  installed in the image for its own platform; the project's venv installed with pip in the image;
  the Maven pieces (jars: bytecode, the same on every platform) and the Go pieces (built by
  `make toolchain` for this host, or cross-built here for another platform) from the toolchain cache.
- **runtime**: the toolchain image plus the project's code, which containers run their launch with.

`python -m toolchain.images [--platform linux/arm64]` builds what is missing and prints a row per
layer: name, tag, built|cached, seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform as host_platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from toolchain.errors import MissingToolchainError, TerminalError
from toolchain.layout import IMAGE_PYTHON_VERSION, IMAGE_ROOT, PROJECT_ROOT, VERSIONS_FILE, read_versions

BASE_REPOSITORY = "cdcstack/base"
TOOLCHAIN_REPOSITORY = "cdcstack/toolchain"
RUNTIME_REPOSITORY = "cdcstack/runtime"
SLIM_IMAGE = "debian:bookworm-slim"
SUITE = "bookworm"

IMAGE_PYTHON = f"{IMAGE_ROOT}/.venv/bin/python"

# Beyond the process runtime's own APT_PACKAGES: what the host provides that a minimal Debian lacks.
IMAGE_APT_PACKAGES = ("openjdk-17-jre-headless", "python3", "python3-venv", "ca-certificates", "procps")
# The Maven-built pieces of the toolchain cache (jars and Java classes: the same on every platform).
PORTABLE_PIECES = ("kafka", "connect", "debezium", "iceberg-rest", "spark", "apicurio", "apicurio-converter", "jmx-exporter")
# The Go-built pieces: one binary each, built for the image's platform.
GO_PIECES = {
    "versitygw": ("github.com/versity/versitygw/cmd/versitygw", "VERSITYGW_VERSION", ""),
    "mailpit": ("github.com/axllent/mailpit", "MAILPIT_VERSION", "-X github.com/axllent/mailpit/config.Version={version}"),
}
CODE_PATHS = ("__main__.py", "service_catalogue.py", "stack_config.py", "stack_outputs.py", "components", "pipelines", "providers", "toolchain", "monitoring", "testkit")
# Certificate authorities the host trusts beyond Debian's own (a proxy's or a company's): the image's
# pip reaches the registries the way the host does, so it must trust them too.
HOST_EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
# debootstrap builds are slow but finite; an apt mirror that stops answering must not hang `make up`.
DEBOOTSTRAP_TIMEOUT_SECONDS = 900

GO_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class ImageBuildError(TerminalError):
    """An image could not be built; the message names the layer, the step and where its log is."""


@dataclass(frozen=True)
class Platform:
    """`linux/<arch>` as Docker names it; `arch` is Debian's and Go's name (amd64, arm64)."""

    arch: str

    @classmethod
    def host(cls) -> Platform:
        machine = host_platform.machine().lower()
        if machine not in GO_ARCHES:
            raise ImageBuildError(f"images: no Debian architecture known for this host's {machine!r}; pass --platform")
        return cls(GO_ARCHES[machine])

    @classmethod
    def parse(cls, text: str) -> Platform:
        os_name, _, arch = text.partition("/")
        if os_name != "linux" or arch not in GO_ARCHES.values():
            raise ImageBuildError(f"images: platform {text!r} is not one of linux/{', linux/'.join(sorted(set(GO_ARCHES.values())))}")
        return cls(arch)

    @property
    def docker(self) -> str:
        return f"linux/{self.arch}"


@dataclass(frozen=True)
class Layer:
    name: str
    reference: str
    outcome: str
    seconds: float


def _digest(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def _tree_bytes(paths: Iterable[Path]) -> Iterator[bytes]:
    """Names and contents of every file under `paths`, in a stable order (caches are skipped)."""
    for path in sorted(paths):
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for file in files:
            yield str(file.relative_to(PROJECT_ROOT)).encode()
            yield file.read_bytes()


def apt_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this host's apt uses (deb822 `URIs:` or a one-line `deb` entry)."""
    candidates = sorted((sources_dir / "sources.list.d").glob("*.sources")) + [sources_dir / "sources.list"]
    for candidate in candidates:
        if not candidate.is_file():
            continue
        for line in candidate.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "URIs:" and "security" not in words[1]:
                return words[1]
            if len(words) >= 3 and words[0] == "deb" and "security" not in line:
                return next(word for word in words[1:] if "://" in word)
    raise ImageBuildError(f"images: no Debian mirror found in {sources_dir}/sources.list(.d) for debootstrap")


class ImageBuilder:
    """Builds the three layers on one Docker engine, for one platform."""

    def __init__(self, client: object, target: Platform, toolchain_dir: Path, log_dir: Path) -> None:
        self.client = client
        self.target = target
        self.toolchain_dir = toolchain_dir
        self.log_dir = log_dir
        self.versions = read_versions()

    def _exists(self, reference: str) -> bool:
        import docker.errors

        try:
            self.client.images.get(reference)  # type: ignore[attr-defined]
            return True
        except docker.errors.ImageNotFound:
            return False

    # -- base --------------------------------------------------------------------------------

    def base_reference(self) -> str:
        return f"{BASE_REPOSITORY}:{SUITE}-{self.target.arch}"

    def build_base(self) -> Layer:
        reference = self.base_reference()
        started = time.monotonic()
        if self._exists(reference):
            return Layer("base", reference, "cached", 0.0)
        source = self._pull_slim() or self._debootstrap()
        repository, _, tag = reference.rpartition(":")
        self.client.images.get(source).tag(repository, tag)  # type: ignore[attr-defined]
        return Layer("base", reference, f"built ({'pulled ' + SLIM_IMAGE if source == SLIM_IMAGE else 'debootstrap'})", time.monotonic() - started)

    def _pull_slim(self) -> str | None:
        """`debian:bookworm-slim` when a registry serves it, else None (the usual case here)."""
        import docker.errors

        try:
            self.client.api.pull(SLIM_IMAGE, platform=self.target.docker)  # type: ignore[attr-defined]
            self.client.images.get(SLIM_IMAGE)  # type: ignore[attr-defined]
            return SLIM_IMAGE
        except (docker.errors.APIError, docker.errors.ImageNotFound, OSError):
            return None

    def _debootstrap(self) -> str:
        debootstrap = shutil.which("debootstrap")
        if debootstrap is None:
            raise MissingToolchainError(
                f"images: no image registry serves {SLIM_IMAGE} and debootstrap is not installed to build a base; run `make toolchain`"
            )
        if os.geteuid() != 0:
            raise ImageBuildError("images: building the base image with debootstrap needs root (it makes device nodes and owns files as root)")
        log = self.log_dir / "base-debootstrap.log"
        reference = f"{BASE_REPOSITORY}:debootstrap-{self.target.arch}"
        with tempfile.TemporaryDirectory(prefix="cdcstack-rootfs-") as rootfs:
            # --foreign for another architecture: its second stage runs inside the image (binfmt).
            foreign = ["--foreign"] if self.target != Platform.host() else []
            command = [debootstrap, "--variant=minbase", f"--arch={self.target.arch}", *foreign, SUITE, rootfs, apt_mirror()]
            self._run(command, log, DEBOOTSTRAP_TIMEOUT_SECONDS, "base (debootstrap)")
            # apt's lists and caches are rebuilt by every later layer that installs.
            for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (Path(rootfs) / cache).glob("*"):
                    if entry.is_file():
                        entry.unlink()
            archive = Path(rootfs + ".tar")
            try:
                subprocess.run(["tar", "-C", rootfs, "--numeric-owner", "-cf", str(archive), "."], check=True)
                with open(archive, "rb") as data:
                    repository, _, tag = reference.rpartition(":")
                    self.client.api.import_image_from_data(data, repository=repository, tag=tag, changes=['CMD ["/bin/bash"]'])  # type: ignore[attr-defined]
            finally:
                archive.unlink(missing_ok=True)
        return reference

    # -- toolchain -----------------------------------------------------------------------------

    def toolchain_dockerfile(self) -> str:
        apt_packages = " ".join([*self.versions["APT_PACKAGES"].split(), *IMAGE_APT_PACKAGES])
        return "\n".join(
            [
                f"FROM {self.base_reference()}",
                "ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8",
                # The packages' postinst must start no service while the image builds (101: not allowed).
                "RUN printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d",
                f"RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends {apt_packages} >/dev/null"
                " && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb",
                "COPY host-ca/ /usr/local/share/ca-certificates/",
                "RUN update-ca-certificates >/dev/null",
                f"COPY requirements.txt requirements-spark.txt {IMAGE_ROOT}/",
                # pip trusts its own bundled list unless told: point it at the system store.
                "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
                f"RUN python3 -m venv {IMAGE_ROOT}/.venv && {IMAGE_PYTHON} -m pip install -q --no-cache-dir"
                f" -r {IMAGE_ROOT}/requirements-spark.txt",
                f"COPY toolchain-cache/ {IMAGE_ROOT}/.toolchain/",
                f"ENV CDCSTACK_TOOLCHAIN_DIR={IMAGE_ROOT}/.toolchain CDCSTACK_VENV={IMAGE_ROOT}/.venv"
                f" PATH={IMAGE_ROOT}/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "",
            ]
        )

    def toolchain_reference(self) -> str:
        inputs = [
            self.base_reference().encode(),
            self.toolchain_dockerfile().encode(),
            VERSIONS_FILE.read_bytes(),
            (PROJECT_ROOT / "requirements.txt").read_bytes(),
            (PROJECT_ROOT / "requirements-spark.txt").read_bytes(),
            *(content for _, content in sorted(self._host_certificates().items())),
        ]
        return f"{TOOLCHAIN_REPOSITORY}:{_digest(inputs)}-{self.target.arch}"

    @staticmethod
    def _host_certificates() -> dict[str, bytes]:
        """The host's extra CA certificates (`*.crt` of HOST_EXTRA_CA_DIR), by file name."""
        return {path.name: path.read_bytes() for path in sorted(HOST_EXTRA_CA_DIR.glob("*.crt")) if path.is_file()}

    def _portable_pieces(self) -> list[Path]:
        missing = [piece for piece in PORTABLE_PIECES if not (self.toolchain_dir / piece).is_dir()]
        if missing:
            raise MissingToolchainError(f"images: {', '.join(missing)} missing from {self.toolchain_dir}; run `make toolchain`")
        return [self.toolchain_dir / piece for piece in PORTABLE_PIECES]

    def _go_binaries(self) -> dict[str, Path]:
        """Each Go piece's binary for the target platform: the host's own build, or one cross-built here."""
        if self.target == Platform.host():
            binaries = {piece: self.toolchain_dir / piece / "bin" / piece for piece in GO_PIECES}
            missing = [str(path) for path in binaries.values() if not path.is_file()]
            if missing:
                raise MissingToolchainError(f"images: {', '.join(missing)} missing; run `make toolchain`")
            return binaries
        go = shutil.which("go")
        if go is None:
            raise MissingToolchainError(f"images: Go is needed to build {', '.join(GO_PIECES)} for {self.target.docker}")
        out = self.toolchain_dir / "platforms" / self.target.arch
        binaries = {}
        for piece, (package, version_key, ldflags) in GO_PIECES.items():
            version = self.versions[version_key]
            binary = out / piece
            stamp = out / f"{piece}.version"
            if not (binary.is_file() and stamp.is_file() and stamp.read_text() == version):
                gopath = out / "gopath"
                env = {**os.environ, "GOOS": "linux", "GOARCH": self.target.arch, "CGO_ENABLED": "0", "GOPATH": str(gopath), "GOTOOLCHAIN": "local", "GOFLAGS": ""}
                env.pop("GOBIN", None)
                flags = f"-s -w {ldflags.format(version=version)}".strip()
                self._run([go, "install", "-trimpath", f"-ldflags={flags}", f"{package}@{version}"], self.log_dir / f"go-{piece}-{self.target.arch}.log", 1800, f"toolchain ({piece} for {self.target.docker})", env=env)
                shutil.copy2(gopath / "bin" / f"linux_{self.target.arch}" / package.rsplit("/", 1)[-1], binary)
                stamp.write_text(version)
            binaries[piece] = binary
        return binaries

    def build_toolchain(self) -> Layer:
        reference = self.toolchain_reference()
        started = time.monotonic()
        if self._exists(reference):
            return Layer("toolchain", reference, "cached", 0.0)
        context = {
            "Dockerfile": self.toolchain_dockerfile().encode(),
            "requirements.txt": (PROJECT_ROOT / "requirements.txt").read_bytes(),
            "requirements-spark.txt": (PROJECT_ROOT / "requirements-spark.txt").read_bytes(),
            # An empty folder still has to exist for COPY: a placeholder that is no certificate.
            "host-ca/.keep": b"",
            **{f"host-ca/{name}": content for name, content in self._host_certificates().items()},
        }
        trees = {f"toolchain-cache/{piece.name}": piece for piece in self._portable_pieces()}
        trees.update({f"toolchain-cache/{piece}/bin/{piece}": binary for piece, binary in self._go_binaries().items()})
        self._build(reference, context, trees, "toolchain")
        return Layer("toolchain", reference, "built", time.monotonic() - started)

    # -- runtime ---------------------------------------------------------------------------------

    def runtime_dockerfile(self) -> str:
        return "\n".join(
            [
                f"FROM {self.toolchain_reference()}",
                f"COPY code/ {IMAGE_ROOT}/",
                # What the checkout's editable install is on the host: the venv imports the project's
                # code whatever the environment a service is started with.
                f"RUN echo {IMAGE_ROOT} > {IMAGE_ROOT}/.venv/lib/python{IMAGE_PYTHON_VERSION}/site-packages/cdcstack.pth",
                f"ENV PYTHONPATH={IMAGE_ROOT} CDCSTACK_ROOT={IMAGE_ROOT}",
                f"WORKDIR {IMAGE_ROOT}",
                "",
            ]
        )

    def runtime_reference(self) -> str:
        inputs = [self.runtime_dockerfile().encode(), *_tree_bytes(PROJECT_ROOT / path for path in CODE_PATHS)]
        return f"{RUNTIME_REPOSITORY}:{_digest(inputs)}-{self.target.arch}"

    def build_runtime(self) -> Layer:
        reference = self.runtime_reference()
        started = time.monotonic()
        if self._exists(reference):
            return Layer("runtime", reference, "cached", 0.0)
        trees = {f"code/{path}": PROJECT_ROOT / path for path in CODE_PATHS}
        self._build(reference, {"Dockerfile": self.runtime_dockerfile().encode()}, trees, "runtime")
        return Layer("runtime", reference, "built", time.monotonic() - started)

    def build_all(self) -> list[Layer]:
        return [self.build_base(), self.build_toolchain(), self.build_runtime()]

    # -- helpers ---------------------------------------------------------------------------------

    def _build(self, reference: str, files: dict[str, bytes], trees: dict[str, Path], layer: str) -> None:
        """`docker build` of a context made of `files` and `trees`, streamed to the layer's log."""
        log = self.log_dir / f"{layer}-build.log"
        with tempfile.TemporaryFile() as context:
            with tarfile.open(fileobj=context, mode="w") as archive:
                for name, content in files.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(content)
                    info.mode = 0o644
                    archive.addfile(info, io.BytesIO(content))
                for name, path in trees.items():
                    archive.add(path, arcname=name, filter=_without_caches)
            context.seek(0)
            # Host networking: the build's apt and pip reach the registries the host reaches.
            stream = self.client.api.build(  # type: ignore[attr-defined]
                fileobj=context, custom_context=True, tag=reference, network_mode="host", rm=True,
                forcerm=True, decode=True, platform=self.target.docker,
            )
            with open(log, "w") as out:
                for chunk in stream:
                    if "stream" in chunk:
                        out.write(chunk["stream"])
                    if "error" in chunk:
                        out.write(chunk["error"] + "\n")
                        raise ImageBuildError(f"images: the {layer} image {reference} failed to build: {chunk['error'].strip()}. Log: {log}")
        if not self._exists(reference):
            raise ImageBuildError(f"images: the {layer} build ended without tagging {reference}. Log: {log}")

    def _run(self, command: Sequence[str], log: Path, timeout: float, step: str, env: dict[str, str] | None = None) -> None:
        with open(log, "w") as out:
            try:
                result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, env=env)
            except subprocess.TimeoutExpired:
                raise ImageBuildError(f"images: {step} did not finish within {timeout:.0f}s. Log: {log}") from None
        if result.returncode != 0:
            raise ImageBuildError(f"images: {step} exited {result.returncode}. Log: {log}")


def _without_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name.split("/") else info


def toolchain_cache_dir() -> Path:
    """The host's toolchain cache the toolchain layer copies its portable pieces from."""
    return Path(os.environ.get("CDCSTACK_TOOLCHAIN_DIR", PROJECT_ROOT / ".toolchain"))


def build_log_dir() -> Path:
    """Where each layer's build log goes (made on first use)."""
    folder = Path(os.environ.get("CDCSTACK_STATE_DIR", PROJECT_ROOT / ".cdcstack")) / "images"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    import docker

    parser = argparse.ArgumentParser(prog="python -m toolchain.images", description=__doc__.splitlines()[0])
    parser.add_argument("--platform", help="linux/amd64 or linux/arm64 (default: this host's)")
    parser.add_argument("--json", action="store_true", help="print the layers as JSON")
    args = parser.parse_args(argv)
    target = Platform.parse(args.platform) if args.platform else Platform.host()
    try:
        layers = ImageBuilder(docker.from_env(timeout=600), target, toolchain_cache_dir(), build_log_dir()).build_all()
    except (ImageBuildError, MissingToolchainError) as failed:
        print(failed, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([layer.__dict__ for layer in layers]))
    else:
        for layer in layers:
            print(f"{layer.name:<10} {layer.reference:<48} {layer.outcome:<28} {layer.seconds:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
