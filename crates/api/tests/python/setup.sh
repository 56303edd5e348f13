#!/usr/bin/env bash
# Installs the Python gRPC toolchain (grpcio + grpcio-tools, from PyPI) that the interop test
# `python_client` uses to generate a client from proto/rollcall/v1/verifier.proto.
#
# It goes into a virtual environment under the Cargo target directory (never the system
# Python), and the script prints the interpreter path on its last line. Safe to re-run: an
# environment that already has grpc_tools is left as it is.
#
#   bash crates/api/tests/python/setup.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)"
venv="${ROLLCALL_PY_VENV:-${CARGO_TARGET_DIR:-$root/target}/python-grpc}"

mkdir -p "$(dirname "$venv")"
# One install at a time (parallel test binaries may call this together).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$venv.lock"
    flock 9
fi

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import grpc, grpc_tools' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        'grpcio>=1.60,<2' 'grpcio-tools>=1.60,<2'
fi
echo "$venv/bin/python"
