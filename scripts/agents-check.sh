#!/usr/bin/env bash
# The agents' ecosystem against a real `stemedb serve`: the Python client's tests
# (clients/python/tests: the cross-language vectors, every endpoint, self-signed writes, error
# mapping, the watch iterator across a restart) and the interop tests (tests/interop: the
# official MCP Python SDK against `stemedb mcp`, a real OTLP receiver against the node's trace
# export), when present.
#
# Needs python3 (3.11 or later, with pip and venv) and PyPI; installs everything into a
# virtualenv in the cargo target directory. Builds the `stemedb` binary (debug) unless
# STEMEDB_BIN names one.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
venv="${target_dir}/agents-venv"
requirements=(clients/python/requirements-ci.txt)
[ -f tests/interop/requirements.txt ] && requirements+=(tests/interop/requirements.txt)

if ! command -v python3 >/dev/null 2>&1; then
  echo "agents-check: python3 is not installed; this script needs CPython 3.11 or later" >&2
  exit 1
fi
# The virtualenv is rebuilt when a requirements file changes.
stamp=$(cat "${requirements[@]}" clients/python/pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "${venv}/.stamp-${stamp}" ]; then
  echo "agents-check: installing the client and its test requirements into ${venv}"
  rm -rf "${venv}"
  if ! python3 -m venv "${venv}"; then
    echo "agents-check: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
  "${venv}/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]/#/-r}"
  touch "${venv}/.stamp-${stamp}"
fi
# The client from this checkout, every run (no copy of an older one).
"${venv}/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall ./clients/python

if [ -z "${STEMEDB_BIN:-}" ]; then
  cargo build --locked -p stemedb-cli
  STEMEDB_BIN="${target_dir}/debug/stemedb"
fi
STEMEDB_BIN=$(realpath "${STEMEDB_BIN}")
export STEMEDB_BIN
# The client's lints: ruff (pyflakes, pycodestyle, bugbear, import order, formatting) and mypy.
"${venv}/bin/ruff" check clients/python
"${venv}/bin/ruff" format --check clients/python
"${venv}/bin/mypy" --ignore-missing-imports --cache-dir=/dev/null clients/python/src
suites=(clients/python/tests)
[ -d tests/interop ] && suites+=(tests/interop)
# No caches or bytecode left in the checkout.
PYTHONDONTWRITEBYTECODE=1 "${venv}/bin/python" -m pytest -q -p no:cacheprovider "${suites[@]}"
