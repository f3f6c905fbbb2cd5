#!/usr/bin/env bash
# Runs Vitalwire locally: installs the local tools, builds the function binaries, the local
# runner and the device CLI, then runs `vitalwire-local` with the given arguments (default: up).
#   scripts/local.sh up
#   scripts/local.sh invoke fhir-ingest --event events/fhir-ingest.json
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/dev-env.sh
# Cargo's own progress shows what is being built: the first build takes several minutes on two
# cores, later ones seconds.
echo "local.sh: building the function binaries, the local platform and the device CLI" >&2
cargo build --locked -p vitalwire-functions -p vitalwire-local
target="${CARGO_TARGET_DIR:-$root/target}"
[ $# -gt 0 ] || set -- up
echo "local.sh: vitalwire-local $*" >&2
exec "$target/debug/vitalwire-local" "$@"
