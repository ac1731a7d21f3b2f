#!/usr/bin/env bash
# The engine crate as an embedder compiles it: prints how many distinct crates it pulls in
# (normal dependencies, default features) and fails if any of the server's, NATS's, the CLI's
# or the chart's crates is among them.
set -euo pipefail
cd "$(dirname "$0")/.."

FORBIDDEN='^(actix-web|awc|async-nats|rustls|ring|plotters|clap|utoipa|utoipa-actix-web|governor|metrics-exporter-prometheus|tracing-subscriber)$'
crates=$(cargo tree --locked -p stemedb -e normal --prefix none | sed -E 's/ v[0-9].*//' | sort -u)
count=$(printf '%s\n' "$crates" | wc -l)
echo "engine-deps: cargo tree -p stemedb -e normal lists ${count} distinct crates (stemedb included)"
found=$(printf '%s\n' "$crates" | grep -E "$FORBIDDEN" || true)
if [ -n "$found" ]; then
  echo "engine-deps: the engine must not depend on:" >&2
  printf '  %s\n' $found >&2
  exit 1
fi
echo "engine-deps: none of actix-web, awc, async-nats, rustls, ring, plotters, clap, utoipa, governor"
