#!/usr/bin/env bash
# Property-based API tests: schemathesis (PyPI) generates requests from the OpenAPI document
# that `stemedb serve` itself serves, sends them to a fresh server and checks every answer: no
# server error (no 5xx) and a documented status code, content type, headers and body schema.
# scripts/schemathesis.toml holds what the command line cannot say (see there).
#
# Bounded: at most ST_MAX_EXAMPLES cases per operation and phase, seeded (ST_SEED) and on one
# worker so a run is repeatable, and a hard wall-clock limit of ST_TIMEOUT_S seconds. Needs
# python3 (3.11 or later, with pip and venv) and the Rust toolchain; installs schemathesis into
# a virtualenv in the cargo target directory on first use.
#
# Every check (`--checks all`) and every phase, the stateful one included: the document's links
# (a created assertion to its reads and votes, a resolution or audit list to its audit record, a
# created key to its revocation) chain real ids. No link leads from the key list to a revocation,
# and the run's own key is the last admin key (which cannot be revoked), so the run never locks
# itself out; the script checks that its key still works at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

ST_VERSION=4.32.5
ST_SEED="${ST_SEED:-20240601}"
ST_MAX_EXAMPLES="${ST_MAX_EXAMPLES:-100}"
ST_TIMEOUT_S="${ST_TIMEOUT_S:-420}"
STARTUP_TIMEOUT_S=60
SHUTDOWN_TIMEOUT_S=30

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
venv="${target_dir}/schemathesis-${ST_VERSION}"
st="${venv}/bin/schemathesis"

if ! command -v python3 >/dev/null 2>&1; then
  echo "schemathesis: python3 is not installed; this script needs CPython 3.11 or later" >&2
  exit 1
fi
if ! "${st}" --version 2>/dev/null | grep -qF "version ${ST_VERSION}"; then
  echo "schemathesis: installing schemathesis ${ST_VERSION} into ${venv}"
  rm -rf "${venv}"
  if ! python3 -m venv "${venv}"; then
    echo "schemathesis: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
  "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==${ST_VERSION}"
fi
"${st}" --version
# Requests to the server go straight to it, whatever proxy the environment names.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,${NO_PROXY}}" no_proxy="127.0.0.1,localhost${no_proxy:+,${no_proxy}}"

cargo build --locked --bin stemedb
bin="${target_dir}/debug/stemedb"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "${server_pid}" ]] && kill -0 "${server_pid}" 2>/dev/null; then
    kill -TERM "${server_pid}" 2>/dev/null || true
    wait "${server_pid}" 2>/dev/null || true
  fi
  rm -rf "${work}"
}
trap cleanup EXIT

# The checks send requests without a key on purpose (ignored_auth): the limit on those per peer
# is raised, so they are answered 401, not 429.
cat >"${work}/config.toml" <<'TOML'
[http]
unauthenticated_rate_per_s = 1000000
unauthenticated_rate_burst = 1000000
TOML
# Port 0: the kernel picks a free port, and the server prints the address it got.
"${bin}" --config "${work}/config.toml" serve --data-dir "${work}/data" --bind 127.0.0.1:0 >"${work}/server.log" 2>&1 &
server_pid=$!

# Polls `probe` (a command) every 0.1 s until it succeeds, the server exits, or `deadline_s`
# seconds pass.
poll() {
  local deadline_s=$1 what=$2
  shift 2
  local deadline=$((SECONDS + deadline_s))
  until "$@"; do
    if ! kill -0 "${server_pid}" 2>/dev/null; then
      echo "schemathesis: the server exited while waiting for ${what}" >&2
      cat "${work}/server.log" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "schemathesis: no ${what} within ${deadline_s}s" >&2
      cat "${work}/server.log" >&2
      return 1
    fi
    sleep 0.1
  done
}

listening() { grep -q '^stemedb .* serving http://' "${work}/server.log"; }
poll "${STARTUP_TIMEOUT_S}" "listening address" listening
base="$(sed -n 's|^stemedb .* serving \(http://[^ ]*\)/v1 .*|\1|p' "${work}/server.log" | head -n 1)"

healthy() {
  python3 - "${base}/v1/health" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
    sys.exit(0 if response.status == 200 else 1)
PY
}
poll "${STARTUP_TIMEOUT_S}" "healthy answer from ${base}/v1/health" healthy
token="$(tr -d '\n' <"${work}/data/api/admin.token")"
echo "schemathesis: server at ${base} (pid ${server_pid})"

# One worker: repeatable (the server's state is shared by every case), and CPython 3.11's
# parser failed in schemathesis under two ("AST constructor recursion depth mismatch").
common=(
  --header "Authorization: Bearer ${token}"
  --checks all
  --max-examples "${ST_MAX_EXAMPLES}"
  --seed "${ST_SEED}"
  --generation-database none
  --workers 1
  --no-color
  --output-sanitize true
)

started=${SECONDS}
status=0
# Runs schemathesis as NAME with the common options and `$@`, within what is left of the
# wall-clock budget; its JSON report goes to NAME.json.
run() {
  local name=$1
  shift
  local left=$((ST_TIMEOUT_S - (SECONDS - started)))
  if ((left <= 0)); then
    echo "schemathesis: no time left for the ${name} run" >&2
    return 124
  fi
  local rc=0
  timeout --signal=INT --kill-after=30 "${left}" \
    "${st}" --config-file scripts/schemathesis.toml run "${base}/v1/openapi.json" "${common[@]}" \
    --report json --report-json-path "${work}/${name}.json" "$@" || rc=$?
  if ((rc == 124)); then
    echo "schemathesis: the ${name} run did not finish within the ${ST_TIMEOUT_S}s budget" >&2
  fi
  return "${rc}"
}

run main || status=$?
elapsed=$((SECONDS - started))

# The run's own key still works: nothing it did revoked it.
own_key() {
  python3 - "${base}/v1/keys" "${token}" <<'PY'
import sys, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
with urllib.request.urlopen(request, timeout=5) as response:
    sys.exit(0 if response.status == 200 else 1)
PY
}
if ! own_key; then
  echo "schemathesis: the run's own admin key no longer works; revocations the server logged:" >&2
  grep -i "revoked" "${work}/server.log" | tail -n 5 >&2 || true
  status=1
fi

# Adds up the reports: "<generated> <failed>", failed counting cases with failures or errors.
read -r cases failed < <(python3 - "${work}" <<'PY'
import json, pathlib, sys
generated = failed = 0
for report in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    counts = json.loads(report.read_text())["test_cases"]
    generated += counts["generated"]
    failed += counts["with_failures"] + counts["errored"]
print(generated, failed)
PY
)
echo "schemathesis: ${cases} test cases in ${elapsed}s (seed ${ST_SEED}, at most ${ST_MAX_EXAMPLES} examples per operation and phase)"
if ((status == 0 || failed > 0)); then
  echo "schemathesis: $((cases - failed)) passed, ${failed} failed"
else
  echo "schemathesis: the run failed (exit ${status}) with no failing case to count; see above" >&2
fi

# Graceful stop: SIGTERM, then the server must exit 0 within the deadline. Feeds still open
# hold it up to actix's shutdown timeout (5 s).
kill -TERM "${server_pid}"
stop_started=${SECONDS}
deadline=$((SECONDS + SHUTDOWN_TIMEOUT_S))
while kill -0 "${server_pid}" 2>/dev/null && ((SECONDS < deadline)); do
  sleep 0.1
done
if kill -0 "${server_pid}" 2>/dev/null; then
  echo "schemathesis: the server did not stop within ${SHUTDOWN_TIMEOUT_S}s of SIGTERM" >&2
  kill -KILL "${server_pid}"
  status=1
fi
server_status=0
wait "${server_pid}" || server_status=$?
server_pid=""
if ((server_status != 0)) || ! grep -q '^stopped$' "${work}/server.log"; then
  echo "schemathesis: the server did not stop cleanly (exit ${server_status})" >&2
  cat "${work}/server.log" >&2
  status=1
else
  echo "schemathesis: the server stopped cleanly in $((SECONDS - stop_started))s"
fi
exit "${status}"
