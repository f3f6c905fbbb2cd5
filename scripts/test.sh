#!/usr/bin/env bash
# The project's test command: unit and integration tests (against the moto AWS emulator, which
# each test binary starts on a free loopback port), the console in headless Chromium, and the
# CloudFormation linter.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/dev-env.sh
# The console's browser tests (tests/console.rs) drive Debian's Chromium: no browser download.
if ! command -v chromium >/dev/null 2>&1; then
  echo "test.sh: installing chromium (Debian) for the console's browser tests" >&2
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo"
  $as_root apt-get update -qq
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
fi
# The integration tests also run the real function binaries and the device CLI.
cargo build --locked -p vitalwire-functions -p vitalwire-local
cargo test --locked --workspace
# Every benchmark command the README and docs/benchmarks.md give, run small (about 2 minutes).
scripts/check-bench-commands.sh
echo "cfn-lint template.yaml"
.venv/bin/cfn-lint template.yaml
echo "cfn-lint: passed"
# SAM's own checks, offline: the template as `sam deploy` will transform it, and the resource
# count CloudFormation will hold it to.
SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" .venv-sam/bin/sam validate --lint --template template.yaml
.venv-sam/bin/python infra/local/sam_resources.py template.yaml
