# Sourced by the Makefile, .ci/run and toolchain scripts: where the toolchain and stack state live,
# and a Pulumi that never reaches for the network.
cdcstack_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

export CDCSTACK_ROOT="$cdcstack_root"
export CDCSTACK_TOOLCHAIN_DIR="${CDCSTACK_TOOLCHAIN_DIR:-$cdcstack_root/.toolchain}"
export CDCSTACK_STATE_DIR="${CDCSTACK_STATE_DIR:-$cdcstack_root/.cdcstack}"
export CDCSTACK_VENV="${CDCSTACK_VENV:-$cdcstack_root/.venv}"
export PULUMI_VERSION
PULUMI_VERSION=$(sed -n 's/^pulumi==\([0-9.]*\).*/\1/p' "$cdcstack_root/requirements.txt")

export PATH="$CDCSTACK_TOOLCHAIN_DIR/pulumi/bin:$CDCSTACK_VENV/bin:$PATH"
export PULUMI_HOME="$CDCSTACK_STATE_DIR/pulumi-home"
export PULUMI_BACKEND_URL="file://$CDCSTACK_STATE_DIR/backend"
# The dev stack's secrets are encrypted with this passphrase; set your own before `make up` to
# use another (Pulumi.dev.yaml's secure values must then be set again).
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-cdcstack-dev}"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true
export PULUMI_SKIP_CONFIRMATIONS=true
export PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=true
mkdir -p "$CDCSTACK_STATE_DIR/backend" "$PULUMI_HOME"
unset cdcstack_root
