#!/usr/bin/env bash
# Make .venv (once) and install the project with the given extra into it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$1]"
# An editable install cannot reach into Pelican's namespace of plugins: `pelican`
# is a regular package, so `pelican.plugins` is searched in its own folder only.
# A link there lets Pelican find this working tree's plugin as it finds an installed one.
namespace=$(.venv/bin/python -c 'import pelican.plugins as p; print(list(p.__path__)[0])')
ln -sfn "$PWD/pelican/plugins/s3_publish" "$namespace/s3_publish"
