#!/usr/bin/env bash
# Installs the Python packages the HTTP API tests use (tests/http/*.py), when missing:
# `requests` (the client) and `openapi-spec-validator` (checks GET /openapi.json).
#   bash tests/http/python-deps.sh
set -euo pipefail
say() { printf 'python-deps: %s\n' "$*" >&2; }
command -v python3 >/dev/null 2>&1 || { say "python3 is missing (apt-get install -y python3 python3-pip)"; exit 1; }
if python3 -c 'import requests, openapi_spec_validator' 2>/dev/null; then
  exit 0
fi
say "installing requests and openapi-spec-validator (pip)"
python3 -m pip install --quiet requests openapi-spec-validator \
  || python3 -m pip install --quiet --break-system-packages requests openapi-spec-validator
python3 -c 'import requests, openapi_spec_validator'
