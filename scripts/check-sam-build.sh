#!/usr/bin/env bash
# The deploy path, end to end, for maintainers (issue 17): `sam build` of template.yaml exactly
# as `sam deploy` packages it (arm64, provided.al2023), timed, then its output checked by
# tests/harness/sam_packages.rs: every function of the template has a package, at most 5 MB
# zipped, and each starts and polls the Lambda Runtime API stand-in with its template settings,
# under Debian's qemu-user (the packages are arm64). No AWS account is needed.
#
#   scripts/check-sam-build.sh [BUILD_DIR]      (default .aws-sam/build, what `sam deploy` reads)
#
# Not part of scripts/test.sh: a build from an empty target dir takes several minutes of
# release compilation on two cores (README, "Deploying"). Installs what it needs: the SAM CLI
# and cargo-lambda (.venv-sam, scripts/dev-env.sh), Rust's aarch64 target, qemu-user and the
# arm64 C libraries that qemu starts the packages with.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_dir="${1:-.aws-sam/build}"

scripts/dev-env.sh
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
if ! command -v qemu-aarch64 >/dev/null 2>&1 || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
  echo "check-sam-build: installing qemu-user and the arm64 C libraries (Debian)" >&2
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo"
  $as_root apt-get update -qq
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user libc6-arm64-cross libgcc-s1-arm64-cross >/dev/null
fi

# `sam build` finds `cargo lambda` (and zig) on PATH.
export PATH="$root/.venv-sam/bin:$PATH" SAM_CLI_TELEMETRY=0
started=$(date +%s)
# SAM builds the six bundle binaries one after another (each run waits on cargo's lock), and
# each fat-LTO link runs on one core. One `cargo lambda build` of all six first lets cargo
# link two at a time; SAM's own runs then find them fresh. It selects them as SAM does (`--bin`
# at the workspace root, so the features and fingerprints are the same): a `-p` selection
# resolves features differently and rebuilds every dependency (docs/benchmarks.md).
bundles=()
for bin in functions/src/bin/vitalwire-lambda-*.rs; do bundles+=(--bin "$(basename "$bin" .rs)"); done
cargo lambda build --release --arm64 "${bundles[@]}"
echo "check-sam-build: the bundles built in $(( $(date +%s) - started )) s"
sam build --template template.yaml --build-dir "$build_dir"
echo "check-sam-build: sam build took $(( $(date +%s) - started )) s in all"

cargo run --locked -q -p vitalwire-tests --bin sam-packages -- "$build_dir" --runner "qemu-aarch64 -L /usr/aarch64-linux-gnu"
