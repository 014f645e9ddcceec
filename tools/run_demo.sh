#!/usr/bin/env bash
# Install the environment if needed, then run the digits distillation demo.
# Extra arguments go to tools/demo/digits_kd_demo.py (see its --help).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/tools/setup_env.sh"
cd "$repo"
exec "${MMKD_VENV:-$repo/.venv}/bin/python" tools/demo/digits_kd_demo.py "$@"
