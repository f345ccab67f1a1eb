#!/usr/bin/env bash
# Install what the tests need, then lint, type-check and run the tests.
#   bash scripts/test.sh            the whole suite (what CI runs)
#   bash scripts/test.sh --quick    the quick tier: about a minute, every module run once
# Other arguments go to pytest (bash scripts/test.sh -k content_types).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh test
# s3rver, the third S3 server the tests publish to (Node), from its lock file.
[ -f devtools/s3rver/node_modules/s3rver/bin/s3rver.js ] ||
    npm ci --prefix devtools/s3rver --no-audit --no-fund --loglevel=error
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Workers: the tests wait on servers and subprocesses as much as they compute, so twice the cores.
workers=$(( $(nproc) * 2 ))
if [ "${1:-}" = "--quick" ]; then
    shift
    exec .venv/bin/python -m pytest -m quick -n "$workers" "$@"
fi
exec .venv/bin/python -m pytest -n "$workers" "$@"
