#!/usr/bin/env bash
# Build sample_site and publish it twice to a local SeaweedFS that this starts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh demo
exec .venv/bin/python -m devtools.demo
