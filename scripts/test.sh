#!/usr/bin/env bash
# Install what the tests need, then lint, type-check and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh test
# s3rver, the third S3 server the tests publish to (Node), from its lock file.
[ -f devtools/s3rver/node_modules/s3rver/bin/s3rver.js ] ||
    npm ci --prefix devtools/s3rver --no-audit --no-fund --loglevel=error
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
