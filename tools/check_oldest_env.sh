#!/usr/bin/env bash
# Check mmkd on the oldest versions setup.py declares, in a second venv.
#
# 1. builds a fresh virtual environment (default /tmp/mmkd_oldest) holding
#    the oldest supported combination: mmengine, mmdet and mmsegmentation
#    at the lower bounds of setup.py, mmcv 2.1.0 (the wheel pip cached when
#    tools/setup_env.sh built it: same torch, no rebuild) and torch 2.13
#    (mmcv's ops are compiled against it);
# 2. installs mmkd from this repository the way a user does (plain
#    `pip install`, not editable, dependencies resolved) and fails if that
#    changed any package already installed (`pip freeze` before and after);
# 3. runs a named subset of the test suite against the installed package
#    (the tests are copied beside the configs, without the mmkd sources, so
#    `import mmkd` finds the installed one).
#
# Slow (10-20 minutes on 2 cores): run by hand, not in CI, e.g.
#   nice -n 10 bash tools/check_oldest_env.sh
# Environment variables:
#   MMKD_OLDEST_VENV   where the environment lives (default /tmp/mmkd_oldest)
#   MMKD_OLDEST_KEEP   1: reuse an existing environment instead of
#                      rebuilding it (the freeze check still runs)
#   MMKD_TORCH         the torch requirement (default torch==2.13.0)
#   MMKD_MMENGINE, MMKD_MMDET, MMKD_MMSEG   override the versions tried
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MMKD_OLDEST_VENV:-/tmp/mmkd_oldest}"
py="$venv/bin/python"
work="$venv/check"
torch_req="${MMKD_TORCH:-torch==2.13.0}"
mmengine="mmengine==${MMKD_MMENGINE:-0.8.5}"
mmdet="mmdet==${MMKD_MMDET:-3.2.0}"
mmseg="mmsegmentation==${MMKD_MMSEG:-1.2.1}"

# tests that touch what differs between versions: config parsing of
# mmdet::/mmseg:: bases, building and stepping distillers on mmdet and mmseg
# models, the heads' internals the head terms read, checkpoints and resume,
# hooks, and the train/test/extract tools through MMEngine's Runner
tests=(
    tests/test_registry.py
    tests/test_configs.py
    tests/test_distillers/test_distiller.py
    tests/test_distillers/test_model_families.py
    tests/test_heads/test_views.py
    tests/test_losses/test_localization.py
    tests/test_losses/test_roi_head_term.py
    tests/test_utils/test_checkpoint.py
    tests/test_utils/test_resume.py
    tests/test_hooks/test_distill_switch.py
    tests/test_tools/test_det_chain.py
    tests/test_tools/test_seg_chain.py
)

log() { printf '[check_oldest_env] %s\n' "$*" >&2; }

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
if [ "${MMKD_OLDEST_KEEP:-0}" != 1 ] || [ ! -x "$py" ]; then
    log "creating $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
fi
mkdir -p "$work"

# NumPy 2 and the OpenCV wheels that need it postdate these releases (as in
# tools/constraints.txt); pkg_resources, which MMEngine's package configs
# use, left setuptools in 81.
cat > "$work/constraints.txt" <<EOF
numpy<2
opencv-python<4.12
setuptools>=77,<81
$mmengine
mmcv==2.1.0
$mmdet
$mmseg
EOF
pip=("$py" -m pip install --disable-pip-version-check -q
     -c "$work/constraints.txt")

log "installing $torch_req and build tools"
"${pip[@]}" "$torch_req" numpy wheel 'setuptools>=77,<81'
log "installing $mmengine"
"${pip[@]}" "$mmengine"
if ! "$py" -c 'import mmcv.ops' 2>/dev/null; then
    log "installing mmcv 2.1.0 (the cached wheel; a cache miss builds it)"
    MMCV_WITH_OPS=1 "${pip[@]}" --no-build-isolation mmcv==2.1.0
fi
"$py" -c 'from mmcv.ops import nms' || {
    log "ERROR: mmcv 2.1.0 has no compiled ops; build it with"
    log "tools/setup_env.sh first (pip then caches the wheel)."; exit 1; }
log "installing $mmdet, $mmseg and what the tests use"
"${pip[@]}" "$mmdet" "$mmseg" ftfy regex pycocotools scikit-learn pytest

log "installing mmkd (plain pip install) into the complete environment"
"$py" -m pip uninstall -q -y mmkd 2>/dev/null || true
"$py" -m pip freeze --all > "$work/freeze_before.txt"
"$py" -m pip install --disable-pip-version-check -q "$repo"
"$py" -m pip freeze --all | grep -v '^mmkd[ =@]' > "$work/freeze_after.txt"
if ! diff -u "$work/freeze_before.txt" "$work/freeze_after.txt"; then
    log "FAIL: installing mmkd changed the packages above"
    exit 1
fi
log "installing mmkd changed no installed package"

# the tests, configs and tools without the mmkd sources
rm -rf "$work/repo"
mkdir -p "$work/repo"
cp -r "$repo/tests" "$repo/configs" "$repo/tools" "$work/repo/"
find "$work/repo" -name __pycache__ -prune -exec rm -rf {} +
cd "$work/repo"
where="$("$py" -c 'import mmkd; print(mmkd.__file__)')"
case "$where" in
    "$venv"/*) ;;
    *) log "FAIL: the tests would import mmkd from $where"; exit 1 ;;
esac

"$py" - <<'PY'
import importlib.metadata as md
for name in ('torch', 'mmengine', 'mmcv', 'mmdet', 'mmsegmentation',
             'numpy', 'mmkd'):
    print(f'[check_oldest_env] {name}=={md.version(name)}')
PY
log "running ${#tests[@]} test files against the installed mmkd"
"$py" -m pytest -q -p no:cacheprovider "${tests[@]}"
log "OK: mmkd works on $mmengine $mmdet $mmseg mmcv==2.1.0 $torch_req"
