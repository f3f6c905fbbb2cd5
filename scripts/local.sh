#!/usr/bin/env bash
# Runs Vitalwire locally: installs the local tools, builds the function binaries and the local
# runner, then runs `vitalwire-local` with the given arguments. Examples:
#   scripts/local.sh invoke fhir-ingest --event events/fhir-ingest.json
#   scripts/local.sh up
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/dev-env.sh
cargo build --locked --quiet -p vitalwire-functions -p vitalwire-local
target="${CARGO_TARGET_DIR:-$root/target}"
[ $# -gt 0 ] || set -- invoke fhir-ingest --event events/fhir-ingest.json
exec "$target/debug/vitalwire-local" "$@"
