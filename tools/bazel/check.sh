#!/usr/bin/env bash
# Offline Bazel smoke test: build everything, then `bazel run //app/sv-money`
# and wait for /healthz. Exits 0 when the service answered. See doc/bazel.md.
#
#   tools/bazel/check.sh            # port 17999
#   CHECK_PORT=18123 tools/bazel/check.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

# Bazel runs py_binary targets with the `python3` first on PATH: that must be
# the project's virtualenv, or the third-party imports fail.
if [[ -x .venv/bin/python3 ]]; then
    PATH="$root/.venv/bin:$PATH"
fi

port="${CHECK_PORT:-17999}"
url="http://127.0.0.1:$port/healthz"

if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
    echo "check: something already answers on port $port; set CHECK_PORT" >&2
    exit 1
fi

echo "check: bazel build //..."
bazel build //...

var_dir="$(mktemp -d)"
log="$var_dir/sv-money.log"
pid=""
cleanup() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$var_dir"
}
trap cleanup EXIT

# `bazel run` execs the binary in place of the client, so $! is the service itself.
# The binary's working directory is its runfiles tree: EDGE_VAR_DIR must be absolute.
echo "check: bazel run //app/sv-money on port $port"
SV_MONEY_PORT="$port" EDGE_VAR_DIR="$var_dir" bazel run //app/sv-money >"$log" 2>&1 &
pid=$!

for _ in $(seq 1 120); do
    if body="$(curl -fsS --max-time 2 "$url" 2>/dev/null)"; then
        echo "check: $url -> $body"
        echo "check: OK"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "check: sv-money exited before answering; its output:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.5
done

echo "check: no answer from $url after 60 s; sv-money output:" >&2
cat "$log" >&2
exit 1
