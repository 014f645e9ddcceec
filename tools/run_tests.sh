#!/usr/bin/env bash
# Install the environment if needed (tools/setup_env.sh), then run the tests.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -k masks`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/tools/setup_env.sh"
cd "$repo"
exec "${MMKD_VENV:-$repo/.venv}/bin/python" -m pytest tests -q \
    -p no:cacheprovider "$@"
