#!/usr/bin/env bash
# Install what the tests need, then lint, type-check and run the tests.
#   bash scripts/test.sh            the whole suite (what CI runs)
#   bash scripts/test.sh --quick    the quick tier: about a minute, every module run once
# Other arguments go to pytest (bash scripts/test.sh -k content_types).
set -euo pipefail
cd "$(dirname "$0")/.."
# s3rver, the third S3 server the tests publish to (Node), from its lock file: beside the Python install.
npm_pid=
if [ ! -f devtools/s3rver/node_modules/s3rver/bin/s3rver.js ]; then
    npm ci --prefix devtools/s3rver --no-audit --no-fund --loglevel=error &
    npm_pid=$!
fi
bash scripts/setup-venv.sh test
[ -z "$npm_pid" ] || wait "$npm_pid"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# mypy (20 s without its cache) beside the tests; its verdict counts as theirs does.
.venv/bin/mypy > .venv/mypy.out 2>&1 &
mypy_pid=$!
# Workers: the tests wait on servers and subprocesses as much as they compute, so twice the cores.
workers=$(( $(nproc) * 2 ))
tier=()
if [ "${1:-}" = "--quick" ]; then
    shift
    tier=(-m quick)
fi
status=0
# One test at a time to whichever worker is free, the longest first (tests/conftest.py LONGEST):
# no worker idles at the end while another runs a long one.
.venv/bin/python -m pytest "${tier[@]}" -n "$workers" --dist load --maxschedchunk 1 "$@" || status=$?
if ! wait "$mypy_pid"; then
    cat .venv/mypy.out
    exit 1
fi
tail -n 1 .venv/mypy.out
exit "$status"
