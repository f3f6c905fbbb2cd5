#!/usr/bin/env bash
# The project's test command: unit and integration tests (against the moto AWS emulator, which
# each test binary starts on a free loopback port) and the CloudFormation linter.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/dev-env.sh
# The integration tests also run the real function binaries and the device CLI.
cargo build --locked -p vitalwire-functions -p vitalwire-local
cargo test --locked --workspace
echo "cfn-lint template.yaml"
.venv/bin/cfn-lint template.yaml
echo "cfn-lint: passed"
