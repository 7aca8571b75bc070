#!/usr/bin/env bash
# `make toolchain`: installs everything cdcstack runs with, from package registries only, into a
# git-ignored cache. Idempotent: a piece whose stamp matches its pinned version is not touched.
# Prints one table row per piece: name, version, installed|cached, seconds.
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=toolchain/env.sh
source "$root/toolchain/env.sh"
# shellcheck source=toolchain/versions.env
source "$root/toolchain/versions.env"

mkdir -p "$CDCSTACK_TOOLCHAIN_DIR/stamps"
report="$CDCSTACK_TOOLCHAIN_DIR/last-install.tsv"
: >"$report"

die() {
  echo "toolchain: $*" >&2
  exit 1
}

stamp_matches() { [ -f "$CDCSTACK_TOOLCHAIN_DIR/stamps/$1" ] && [ "$(cat "$CDCSTACK_TOOLCHAIN_DIR/stamps/$1")" = "$2" ]; }
write_stamp() { echo "$2" >"$CDCSTACK_TOOLCHAIN_DIR/stamps/$1"; }

# Runs one piece, timing it; the piece prints "installed" or "cached" as its last line.
piece() {
  local name=$1 version=$2
  shift 2
  local started outcome elapsed_ms
  started=$(date +%s%N)
  outcome=$("$@" | tail -n 1)
  elapsed_ms=$((($(date +%s%N) - started) / 1000000))
  printf '%s\t%s\t%s\t%d.%01d\n' "$name" "$version" "$outcome" $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) >>"$report"
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "installing Debian packages needs root: run 'sudo $*' once, then 'make toolchain' again"
  fi
}

# Prints those of the named Debian packages that are not installed, one a line.
missing_debian_packages() {
  local package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || echo "$package"
  done
}

install_apt_packages() {
  local missing=()
  # shellcheck disable=SC2086
  mapfile -t missing < <(missing_debian_packages $APT_PACKAGES)
  if [ ${#missing[@]} -eq 0 ]; then echo cached; return; fi
  # Another install (a second clone, unattended upgrades) may hold dpkg's lock: wait for it.
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2
  local package
  for package in "${missing[@]}"; do
    case " $APT_SYSTEM_SERVICES_OFF " in *" $package "*) system_service_off "$package" ;; esac
  done
  echo installed
}

# Debian's postinst enables the package's system service and starts it where systemd runs (or an init
# script where no policy-rc.d forbids it): Prometheus on :9090, Alertmanager on :9093/:9094. The stack
# runs its own on its own ports, so the system one is stopped and disabled, once, as it is installed.
system_service_off() {
  local unit=$1
  if [ -d /run/systemd/system ]; then
    as_root systemctl disable --now --quiet "$unit.service" >&2
  else
    as_root update-rc.d "$unit" disable >&2
    as_root invoke-rc.d "$unit" stop >&2 || true
  fi
}

install_venv() {
  local key
  key=$( (cat "$root/requirements.txt" "$root/requirements-spark.txt" "$root/pyproject.toml"; python3 --version) | sha256sum | cut -c1-16)
  if [ -x "$CDCSTACK_VENV/bin/python" ] && stamp_matches venv "$key"; then echo cached; return; fi
  python3 -m venv "$CDCSTACK_VENV" >&2
  "$CDCSTACK_VENV/bin/python" -m pip install -q --upgrade pip wheel >&2
  "$CDCSTACK_VENV/bin/python" -m pip install -q -r "$root/requirements-spark.txt" >&2
  "$CDCSTACK_VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$root" >&2
  write_stamp venv "$key"
  echo installed
}

pulumi_version_of() { "$1" version 2>/dev/null | sed 's/^v//'; }

install_pulumi() {
  local bin="$CDCSTACK_TOOLCHAIN_DIR/pulumi/bin"
  if [ -x "$bin/pulumi" ] && stamp_matches pulumi "$PULUMI_VERSION"; then echo cached; return; fi
  rm -rf "$bin" && mkdir -p "$bin"

  local on_path
  on_path=$(PATH=$(echo "$PATH" | tr ':' '\n' | grep -vx "$bin" | paste -sd:) command -v pulumi || true)
  if [ -n "$on_path" ] && [ "$(pulumi_version_of "$on_path")" = "$PULUMI_VERSION" ] &&
    [ -x "$(dirname "$on_path")/pulumi-language-python" ]; then
    for tool in "$(dirname "$on_path")"/pulumi*; do ln -sf "$tool" "$bin/"; done
    write_stamp pulumi "$PULUMI_VERSION"
    echo "cached"
    return
  fi

  command -v go >/dev/null || die "Go is needed to build the Pulumi CLI $PULUMI_VERSION (none found on PATH)"
  local work="$CDCSTACK_TOOLCHAIN_DIR/build/pulumi-$PULUMI_VERSION"
  rm -rf "$work" && mkdir -p "$work"
  export GOTOOLCHAIN=local GOFLAGS=-mod=mod
  local pkg="github.com/pulumi/pulumi/pkg/v3" sdk="github.com/pulumi/pulumi/sdk/v3"
  (
    cd "$work"
    go mod download -json "$pkg@v$PULUMI_VERSION" "$sdk@v$PULUMI_VERSION" >modules.json
    go mod init cdcstack.local/toolchain/pulumi-build >&2
    go mod edit -require="$pkg@v$PULUMI_VERSION" -require="$sdk@v$PULUMI_VERSION"
    # `go install` refuses modules with replace directives, so this module copies the
    # non-local ones (those that name a version) of the CLI's own go.mod.
    local upstream_mod
    upstream_mod=$(python3 -c 'import json,sys; print(json.JSONDecoder().raw_decode(sys.stdin.read())[0]["GoMod"])' <modules.json)
    go mod edit -json "$upstream_mod" | python3 "$root/toolchain/go_replaces.py" | xargs -r go mod edit
    cat >tools.go <<EOF
//go:build tools

package tools

import (
	_ "$pkg/cmd/pulumi"
	_ "$sdk/python/cmd/pulumi-language-python"
)
EOF
    go mod tidy >&2
    # Older Pulumi dependencies link against Go runtime internals, which Go 1.23+ refuses by default.
    local version_flags="-X $pkg/version.Version=v$PULUMI_VERSION -X $sdk/go/common/version.Version=v$PULUMI_VERSION"
    go build -trimpath -ldflags "-checklinkname=0 $version_flags" -o "$bin/" \
      "$pkg/cmd/pulumi" "$sdk/python/cmd/pulumi-language-python" >&2
    local sdk_dir
    sdk_dir=$(go list -m -f '{{.Dir}}' "$sdk")
    install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$bin/"
    install -m 0755 "$sdk_dir/python/dist/pulumi-resource-pulumi-python" "$bin/"
  )
  [ "$(pulumi_version_of "$bin/pulumi")" = "$PULUMI_VERSION" ] || die "built pulumi does not report v$PULUMI_VERSION"
  write_stamp pulumi "$PULUMI_VERSION"
  echo installed
}

# Fetches a Maven artifact with its runtime dependencies into a lib folder, through a throwaway POM.
install_maven_bundle() {
  local name=$1 version=$2 pom_template=$3
  local dest="$CDCSTACK_TOOLCHAIN_DIR/$name"
  if [ -d "$dest/lib" ] && stamp_matches "$name" "$version"; then echo cached; return; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch $name $version"
  rm -rf "$dest" && mkdir -p "$dest"
  local substitutions=()
  for key in KAFKA_VERSION SCALA_BINARY_VERSION LOG4J_VERSION ICEBERG_VERSION AWS_SDK_VERSION JETTY_VERSION \
    SQLITE_JDBC_VERSION SLF4J_VERSION SPARK_BINARY_VERSION SPARK_SCALA_BINARY_VERSION DELTA_VERSION HADOOP_VERSION \
    AWS_SDK_V1_VERSION DERBY_VERSION APICURIO_VERSION; do
    substitutions+=(-e "s/@$key@/${!key}/g")
  done
  sed "${substitutions[@]}" "$pom_template" >"$dest/pom.xml"
  mvn -B -q -f "$dest/pom.xml" "$MAVEN_DEPENDENCY_PLUGIN:copy-dependencies" -DincludeScope=runtime \
    -DoutputDirectory="$dest/lib" >&2
  write_stamp "$name" "$version"
  echo installed
}

install_debezium_plugins() {
  local dest="$CDCSTACK_TOOLCHAIN_DIR/debezium"
  if [ -d "$dest/plugins" ] && stamp_matches debezium "$DEBEZIUM_VERSION"; then echo cached; return; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch the Debezium plugins $DEBEZIUM_VERSION"
  rm -rf "$dest" && mkdir -p "$dest/archives" "$dest/plugins"
  # One folder per connector under the plugin path: Connect gives each its own class loader.
  for connector in $DEBEZIUM_CONNECTORS; do
    mvn -B -q dependency:copy -Dartifact="io.debezium:debezium-connector-$connector:$DEBEZIUM_VERSION:tar.gz:plugin" \
      -DoutputDirectory="$dest/archives" >&2
    tar -xzf "$dest/archives/debezium-connector-$connector-$DEBEZIUM_VERSION-plugin.tar.gz" -C "$dest/plugins"
  done
  write_stamp debezium "$DEBEZIUM_VERSION"
  echo installed
}

install_versitygw() {
  local bin="$CDCSTACK_TOOLCHAIN_DIR/versitygw/bin"
  if [ -x "$bin/versitygw" ] && stamp_matches versitygw "$VERSITYGW_VERSION"; then echo cached; return; fi
  command -v go >/dev/null || die "Go is needed to build the S3 gateway $VERSITYGW_VERSION (none found on PATH)"
  rm -rf "$bin" && mkdir -p "$bin"
  # Its go.mod has no replace directives, so a plain `go install` at the pinned version works.
  GOTOOLCHAIN=local GOFLAGS= GOBIN="$bin" go install -trimpath -ldflags='-s -w' \
    "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >&2
  write_stamp versitygw "$VERSITYGW_VERSION"
  echo installed
}

# Mailpit, the stack's mail capture. Its go.mod has no replace directives either; the version it
# reports is set at link time, as its own release build does. Its web UI's assets are not in the
# module (its API, which the stack uses, is).
install_mailpit() {
  local bin="$CDCSTACK_TOOLCHAIN_DIR/mailpit/bin"
  if [ -x "$bin/mailpit" ] && stamp_matches mailpit "$MAILPIT_VERSION"; then echo cached; return; fi
  command -v go >/dev/null || die "Go is needed to build the mail capture (Mailpit) $MAILPIT_VERSION (none found on PATH)"
  rm -rf "$bin" && mkdir -p "$bin"
  GOTOOLCHAIN=local GOFLAGS= GOBIN="$bin" go install -trimpath \
    -ldflags="-s -w -X github.com/axllent/mailpit/config.Version=$MAILPIT_VERSION" \
    "github.com/axllent/mailpit@$MAILPIT_VERSION" >&2
  write_stamp mailpit "$MAILPIT_VERSION"
  echo installed
}

# Prometheus' JMX exporter as a Java agent, for the JVM services' metrics.
install_jmx_exporter() {
  local dest="$CDCSTACK_TOOLCHAIN_DIR/jmx-exporter"
  local jar="$dest/jmx_prometheus_javaagent-$JMX_EXPORTER_VERSION.jar"
  if [ -f "$jar" ] && stamp_matches jmx-exporter "$JMX_EXPORTER_VERSION"; then echo cached; return; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch the JMX exporter $JMX_EXPORTER_VERSION"
  rm -rf "$dest" && mkdir -p "$dest"
  mvn -B -q "$MAVEN_DEPENDENCY_PLUGIN:copy" -Dartifact="io.prometheus.jmx:jmx_prometheus_javaagent:$JMX_EXPORTER_VERSION" \
    -DoutputDirectory="$dest" >&2
  [ -f "$jar" ] || die "the JMX exporter's agent was not fetched to $jar"
  write_stamp jmx-exporter "$JMX_EXPORTER_VERSION"
  echo installed
}

install_iceberg_rest() {
  local dest="$CDCSTACK_TOOLCHAIN_DIR/iceberg-rest"
  if [ -d "$dest/classes" ] && stamp_matches iceberg-rest-launcher "$ICEBERG_VERSION-$(sha256sum "$root/toolchain/iceberg/LocalRestCatalogServer.java" | cut -c1-12)"; then
    echo cached
    return
  fi
  install_maven_bundle iceberg-rest "$ICEBERG_VERSION" "$root/toolchain/maven/iceberg-rest.pom.xml" >/dev/null
  rm -rf "$dest/classes" && mkdir -p "$dest/classes"
  javac --release 17 -cp "$dest/lib/*" -d "$dest/classes" "$root/toolchain/iceberg/LocalRestCatalogServer.java" >&2
  write_stamp iceberg-rest-launcher "$ICEBERG_VERSION-$(sha256sum "$root/toolchain/iceberg/LocalRestCatalogServer.java" | cut -c1-12)"
  echo installed
}

# The jars Spark sessions load through `spark.jars`, on top of the pyspark package's own jars/, and
# the metastore's Derby network server and client.
spark_jars_version() { echo "$DELTA_VERSION-iceberg$ICEBERG_VERSION-hadoop$HADOOP_VERSION-spark$SPARK_BINARY_VERSION-derby$DERBY_VERSION"; }

install_spark_jars() {
  local dest="$CDCSTACK_TOOLCHAIN_DIR/spark"
  if [ -d "$dest/lib" ] && stamp_matches spark-checked "$(spark_jars_version)"; then echo cached; return; fi
  local pyspark_jars
  pyspark_jars=$("$CDCSTACK_VENV/bin/python" -c 'import pathlib, pyspark; print(pathlib.Path(pyspark.__file__).parent / "jars")') ||
    die "pyspark is missing from $CDCSTACK_VENV (requirements.txt)"
  case "$(basename "$(ls "$pyspark_jars"/spark-core_*.jar)")" in
    "spark-core_${SPARK_SCALA_BINARY_VERSION}-${SPARK_BINARY_VERSION}."*) ;;
    *) die "pyspark's jars are not Spark $SPARK_BINARY_VERSION for Scala $SPARK_SCALA_BINARY_VERSION (toolchain/versions.env)" ;;
  esac
  install_maven_bundle spark "$(spark_jars_version)" "$root/toolchain/maven/spark.pom.xml" >/dev/null
  # Two versions of one artifact on a Spark class path fail at run time, far from here.
  local jar artifact
  for jar in "$dest"/lib/*.jar; do
    artifact=$(basename "$jar" | sed -E 's/-[0-9][^-]*(\.Final)?\.jar$//')
    if compgen -G "$pyspark_jars/$artifact-[0-9]*.jar" >/dev/null; then
      die "$(basename "$jar") duplicates pyspark's $(basename "$(compgen -G "$pyspark_jars/$artifact-[0-9]*.jar" | head -n 1)"); exclude it in toolchain/maven/spark.pom.xml"
    fi
  done
  write_stamp spark-checked "$(spark_jars_version)"
  echo installed
}

install_schema_registry() {
  local dest="$CDCSTACK_TOOLCHAIN_DIR/apicurio/registry"
  if [ -f "$dest/apicurio-registry-app-$APICURIO_VERSION-runner.jar" ] && stamp_matches apicurio-registry "$APICURIO_VERSION"; then
    echo cached
    return
  fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Apicurio Registry $APICURIO_VERSION"
  local archives="$CDCSTACK_TOOLCHAIN_DIR/apicurio/archives"
  rm -rf "$dest" "$archives" && mkdir -p "$dest" "$archives"
  mvn -B -q dependency:copy -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
    -DoutputDirectory="$archives" >&2
  tar -xzf "$archives/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$dest"
  rm -rf "$archives"
  write_stamp apicurio-registry "$APICURIO_VERSION"
  echo installed
}
# The Avro converter as a Connect plugin folder of its own. The worker discovers plugins by their
# ServiceLoader manifests (plugin.discovery=service_load) and the converter's jar has none, so one
# is added as a jar of its own.
install_avro_converter() {
  local plugin="$CDCSTACK_TOOLCHAIN_DIR/apicurio-converter/plugins/apicurio-avro-converter"
  if [ -d "$plugin" ] && stamp_matches apicurio-converter-plugin "$APICURIO_VERSION"; then echo cached; return; fi
  install_maven_bundle apicurio-converter "$APICURIO_VERSION" "$root/toolchain/maven/apicurio-converter.pom.xml" >/dev/null
  rm -rf "$plugin" && mkdir -p "$plugin"
  cp "$CDCSTACK_TOOLCHAIN_DIR/apicurio-converter/lib/"*.jar "$plugin/"
  local manifest
  manifest=$(mktemp -d)
  mkdir -p "$manifest/META-INF/services"
  echo io.apicurio.registry.utils.converter.AvroConverter >"$manifest/META-INF/services/org.apache.kafka.connect.storage.Converter"
  (cd "$manifest" && jar cf "$plugin/cdcstack-converter-manifest.jar" META-INF)
  rm -rf "$manifest"
  write_stamp apicurio-converter-plugin "$APICURIO_VERSION"
  echo installed
}
# The docker runtime's engine. A daemon that already answers (the user's Docker, DOCKER_HOST) is used
# as it is and nothing is installed. Otherwise Debian's docker.io (dockerd, containerd, runc) and
# debootstrap (the offline base image) are installed without starting a system daemon: one on the
# default socket would switch every stack's `cdcstack:runtime auto` to docker. scripts/dockerd.sh
# then runs the project's own daemon on a socket under the state dir.
install_docker_engine() {
  if (cd "$root" && "$CDCSTACK_VENV/bin/python" -c 'import sys; from components.runtime import docker_daemon_answers; sys.exit(not docker_daemon_answers())'); then
    echo "cached"
    return
  fi
  local missing=()
  # shellcheck disable=SC2086
  mapfile -t missing < <(missing_debian_packages $DOCKER_ENGINE_PACKAGES)
  if [ ${#missing[@]} -eq 0 ]; then echo cached; return; fi
  command -v apt-get >/dev/null ||
    die "no Docker daemon answers and this is no Debian host to install one on: start Docker (or set DOCKER_HOST) and run 'make toolchain' again"
  local policy=/usr/sbin/policy-rc.d forbid=""
  # 101: "action not allowed", so the packages' postinst starts no daemon.
  if [ ! -e "$policy" ]; then
    forbid=yes
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod 0755 "$policy"
  fi
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
    { [ -z "$forbid" ] || as_root rm -f "$policy"; die "installing ${missing[*]} failed"; }
  [ -z "$forbid" ] || as_root rm -f "$policy"
  if [ -d /run/systemd/system ]; then
    as_root systemctl disable --now --quiet docker.service docker.socket >&2 || true
  fi
  echo installed
}
piece "debian packages" "$APT_PACKAGES" install_apt_packages
piece "python venv" "$(python3 --version | cut -d' ' -f2)" install_venv
piece "pulumi cli + python host" "$PULUMI_VERSION" install_pulumi
piece "s3 gateway (versitygw)" "$VERSITYGW_VERSION" install_versitygw
piece "mail capture (mailpit)" "$MAILPIT_VERSION" install_mailpit
piece "kafka broker jars" "$KAFKA_VERSION" install_maven_bundle kafka "$KAFKA_VERSION" "$root/toolchain/maven/kafka.pom.xml"
piece "kafka connect jars" "$KAFKA_VERSION" install_maven_bundle connect "$KAFKA_VERSION" "$root/toolchain/maven/connect.pom.xml"
piece "debezium plugins" "$DEBEZIUM_VERSION" install_debezium_plugins
piece "iceberg rest catalog" "$ICEBERG_VERSION" install_iceberg_rest
piece "spark lakehouse jars" "$(spark_jars_version)" install_spark_jars
piece "schema registry (apicurio)" "$APICURIO_VERSION" install_schema_registry
piece "avro converter (apicurio)" "$APICURIO_VERSION" install_avro_converter
piece "jmx exporter agent" "$JMX_EXPORTER_VERSION" install_jmx_exporter
piece "docker engine" "$DOCKER_ENGINE_PACKAGES" install_docker_engine

column -t -s $'\t' -N PIECE,VERSION,STATUS,SECONDS "$report"
