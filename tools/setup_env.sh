#!/usr/bin/env bash
# Create (or verify) the project's virtual environment in ./.venv.
#
# Idempotent: when every pinned package already imports (mmcv with its
# compiled ops included) it returns in a few seconds. The first run builds
# mmcv 2.1.0 from source with its ops (about 15 minutes on 2 cores); pip then
# caches the wheel so later environments install it in seconds.
#
# Environment variables:
#   MMKD_VENV   where the environment lives (default: <repo>/.venv)
#   MMKD_TORCH  the torch requirement (default: torch==2.13.0)
#   MAX_JOBS    parallel compile jobs for mmcv (default: number of cores)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MMKD_VENV:-$repo/.venv}"
torch_req="${MMKD_TORCH:-torch==2.13.0}"
py="$venv/bin/python"

log() { printf '[setup_env] %s\n' "$*" >&2; }

check_env() {
    "$py" - <<'PY' 2>/dev/null
import importlib.metadata as md
import torch, mmengine, mmcv, mmdet, mmseg, pycocotools, sklearn, pytest  # noqa
from mmcv.ops import nms  # compiled ops must be present  # noqa
import pkg_resources  # mmengine needs it for 'mmdet::' configs  # noqa
import mmkd  # noqa
want = {'mmengine': '0.10.7', 'mmcv': '2.1.0', 'mmdet': '3.3.0',
        'mmsegmentation': '1.2.2'}
for name, version in want.items():
    assert md.version(name) == version, (name, md.version(name))
import numpy
assert int(numpy.__version__.split('.')[0]) < 2, numpy.__version__
PY
}

if [ -x "$py" ] && check_env; then
    log "environment in $venv is complete"
    exit 0
fi

if [ ! -x "$py" ]; then
    log "creating virtual environment $venv"
    python3 -m venv "$venv"
fi
pip=("$py" -m pip install --disable-pip-version-check
     -c "$repo/tools/constraints.txt")

log "installing torch ($torch_req) and build tools"
"${pip[@]}" "$torch_req" numpy wheel ninja psutil

log "installing mmengine"
"${pip[@]}" mmengine==0.10.7

if ! "$py" -c 'import mmcv.ops' 2>/dev/null; then
    log "building mmcv 2.1.0 with its compiled ops (first time: ~15 min)"
    # Without --no-build-isolation pip builds mmcv in a fresh environment
    # without torch and silently drops the ops; setup.py needs pkg_resources
    # (setuptools<70).
    # torch itself asks for setuptools>=77, so the old setuptools is only
    # installed for this build and the newer one restored afterwards.
    "${pip[@]}" 'setuptools<70'
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        "${pip[@]}" --no-build-isolation mmcv==2.1.0
fi
# torch wants setuptools>=77; mmengine imports pkg_resources at run time
# (to resolve 'mmdet::' config paths), which setuptools 81 removed.
"${pip[@]}" 'setuptools>=77,<81'


log "installing mmdet, mmsegmentation and the rest"
"${pip[@]}" mmdet==3.3.0 mmsegmentation==1.2.2 ftfy regex pycocotools \
    scikit-learn pytest

log "installing mmkd (editable)"
"${pip[@]}" --no-build-isolation --no-deps -e "$repo"

if ! "$py" -c 'from mmcv.ops import nms' ; then
    log "ERROR: mmcv.ops does not import: mmcv was built without its ops."
    log "Remove $venv and the cached mmcv wheel (pip cache remove mmcv),"
    log "then run this script again."
    exit 1
fi
if ! check_env; then
    log "ERROR: the environment is incomplete; see the import error above:"
    "$py" -c 'import torch, mmengine, mmcv, mmdet, mmseg, mmkd'
    exit 1
fi
log "environment ready: $venv"
