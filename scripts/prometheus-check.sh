#!/usr/bin/env bash
# The metrics, the scrape config and the dashboard, checked against a real Prometheus:
#   1. installs Debian's prometheus package when prometheus or promtool is missing;
#   2. starts `stemedb serve` on a free loopback port and puts it under a short mixed load
#      (scripts/mixed_load.py: writes, votes, resolves, reads, a feed, bad requests);
#   3. `promtool check metrics` on its /metrics output must report no problem;
#   4. starts Prometheus on loopback with config/prometheus.yml (its target pointed at that
#      port; `promtool check config` first) and waits for two scrapes;
#   5. evaluates every PromQL expression of dashboards/*.json through Prometheus' HTTP API
#      ($__rate_interval as 1m, $instance as .+) and requires a non-empty result of each.
# Bounded: every wait has a deadline. Needs python3 and the Rust toolchain; installing the
# package needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

STARTUP_TIMEOUT_S=60
SCRAPES_TIMEOUT_S=90

if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  echo "prometheus-check: installing Debian's prometheus package"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    sudo="sudo"
  fi
  ${sudo} apt-get update -qq
  DEBIAN_FRONTEND=noninteractive ${sudo} apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
prometheus --version 2>&1 | head -n 1

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --locked --bin stemedb
bin="${target_dir}/debug/stemedb"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -TERM "${pid}" 2>/dev/null || true
    wait "${pid}" 2>/dev/null || true
  done
  rm -rf "${work}"
}
trap cleanup EXIT

# Polls a command every 0.2 s until it succeeds or `deadline_s` seconds pass.
poll() {
  local deadline_s=$1 what=$2
  shift 2
  local deadline=$((SECONDS + deadline_s))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      echo "prometheus-check: no ${what} within ${deadline_s}s" >&2
      tail -n 40 "${work}"/*.log >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"${bin}" serve --data-dir "${work}/data" --bind 127.0.0.1:0 >"${work}/server.log" 2>&1 &
pids+=($!)
listening() { grep -q '^stemedb .* serving http://' "${work}/server.log"; }
poll "${STARTUP_TIMEOUT_S}" "listening address" listening
base="$(sed -n 's|^stemedb .* serving \(http://[^ ]*\)/v1 .*|\1|p' "${work}/server.log" | head -n 1)"
address="${base#http://}"
token="$(tr -d '\n' <"${work}/data/api/admin.token")"
echo "prometheus-check: stemedb at ${base}"

python3 scripts/mixed_load.py "${base}" "${token}" 20

python3 - "${base}/metrics" >"${work}/metrics.txt" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
    sys.stdout.write(response.read().decode())
PY
if ! lint="$(promtool check metrics <"${work}/metrics.txt" 2>&1)" || [[ -n "${lint}" ]]; then
  echo "prometheus-check: promtool check metrics found problems:" >&2
  echo "${lint}" >&2
  exit 1
fi
echo "prometheus-check: promtool check metrics: no problems ($(grep -c '^stemedb_' "${work}/metrics.txt") series)"

# The shipped scrape config, its target pointed at this server's port.
sed "s|127.0.0.1:7410|${address}|" config/prometheus.yml >"${work}/prometheus.yml"
promtool check config "${work}/prometheus.yml" >/dev/null
prom_port="$(free_port)"
prom="http://127.0.0.1:${prom_port}"
prometheus --config.file="${work}/prometheus.yml" --storage.tsdb.path="${work}/tsdb" \
  --web.listen-address="127.0.0.1:${prom_port}" >"${work}/prometheus.log" 2>&1 &
pids+=($!)

# More load while Prometheus scrapes, so rates see the counters move.
python3 scripts/mixed_load.py "${base}" "${token}" 10 >/dev/null &
load_pid=$!

two_scrapes() {
  python3 - "${prom}" <<'PY' 2>/dev/null
import json, sys, urllib.parse, urllib.request
q = urllib.parse.urlencode({"query": 'count_over_time(up{job="stemedb"}[5m]) >= 2 and up{job="stemedb"} == 1'})
with urllib.request.urlopen(f"{sys.argv[1]}/api/v1/query?{q}", timeout=5) as response:
    sys.exit(0 if json.load(response)["data"]["result"] else 1)
PY
}
poll "${SCRAPES_TIMEOUT_S}" "two successful scrapes of ${address}" two_scrapes
wait "${load_pid}"
echo "prometheus-check: Prometheus at ${prom} has scraped the node twice"

python3 - "${prom}" dashboards/*.json <<'PY'
import json, sys, urllib.parse, urllib.request

prom, files = sys.argv[1], sys.argv[2:]
failed = checked = 0
for path in files:
    dashboard = json.load(open(path))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$instance", ".+")
            q = urllib.parse.urlencode({"query": expr})
            with urllib.request.urlopen(f"{prom}/api/v1/query?{q}", timeout=10) as response:
                answer = json.load(response)
            checked += 1
            if answer.get("status") != "success" or not answer["data"]["result"]:
                failed += 1
                print(f"EMPTY  {path} / {panel['title']}: {expr}\n       {answer}", file=sys.stderr)
print(f"prometheus-check: {checked} dashboard queries evaluated, {checked - failed} with data, {failed} empty")
sys.exit(1 if failed else 0)
PY
