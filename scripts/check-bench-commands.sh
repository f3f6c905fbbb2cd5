#!/usr/bin/env bash
# Runs every benchmark and load command that README.md and docs/benchmarks.md give, small and
# on the debug build, so that none of them silently stops working (a renamed binary, a changed
# argument, a setting a function now needs). It measures nothing: the figures come from the
# documented commands, run as written on a release build. scripts/test.sh runs this.
#
# A command the documents give that this script has no small run for fails the check: add the
# run below when you document a new benchmark.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"

documented="$(grep -ohE '`cargo (bench|run)[^`]*`' README.md docs/benchmarks.md | sort -u)"
benches="$(grep -oE -- '--bench [a-z_-]+' <<<"$documented" | awk '{print $2}' | sort -u)"
loads="$(grep -oE -- '--bin [a-z_-]+' <<<"$documented" | awk '{print $2}' | sort -u)"
[ -n "$benches" ] && [ -n "$loads" ] || { echo "check-bench-commands: found no documented commands" >&2; exit 1; }

# Criterion benchmarks, each benchmark run once as a test (criterion's test mode).
for bench in $benches; do
  echo "check-bench-commands: cargo bench --bench $bench (once, as a test)" >&2
  cargo test --locked -q -p vitalwire --features memory --bench "$bench" >/dev/null
done

cargo build --locked -q -p vitalwire-tests --bins
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

run() {
  echo "check-bench-commands: $*" >&2
  "$target/debug/$1" "${@:2}" >/dev/null
}

for load in $loads; do
  case "$load" in
    cold-start)
      run cold-start "$target/debug/vitalwire-lambda-ingest" 3 --memory-map
      run cold-start "$target/debug/vitalwire-lambda-polaris" 2 --function messages-get
      run cold-start "$target/debug/vitalwire-lambda-ingest" 2 --python-peer ;;
    readings-load) run readings-load 100 50 ;;
    fhir-search-load) run fhir-search-load 300 2 ;;
    connector-load) run connector-load 100 50 ;;
    inbox-load) run inbox-load 500 2 60 ;;
    publish-load)
      run publish-load 40 20 direct
      run publish-load 40 20 queue ;;
    messages-load)
      # It measures a running platform, as the reference's suite does: start one of our own.
      state="$(mktemp -d)"
      "$target/debug/vitalwire-local" --state-dir "$state" up --mqtt-port "$(free_port)" \
        --iot-http-port "$(free_port)" --api-port "$(free_port)" >"$state/up.log" 2>&1 &
      up_pid=$!
      for _ in $(seq 1 240); do
        grep -q "Ctrl-C stops everything" "$state/up.log" 2>/dev/null && break
        kill -0 "$up_pid" 2>/dev/null || { cat "$state/up.log" >&2; exit 1; }
        sleep 0.5
      done
      status=0
      VITALWIRE_ENDPOINTS="$state/endpoints.json" run messages-load 200 short || status=$?
      kill -INT "$up_pid" 2>/dev/null || true
      wait "$up_pid" 2>/dev/null || true
      rm -rf "$state"
      [ "$status" -eq 0 ] || exit "$status" ;;
    vitalwire-mapping) ;; # a tool the README shows, not a benchmark: its tests run it
    *)
      echo "check-bench-commands: the documents give 'cargo run ... --bin $load', which has no small run here" >&2
      exit 1 ;;
  esac
done
echo "check-bench-commands: every documented benchmark command ran" >&2
