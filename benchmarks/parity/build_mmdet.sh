#!/usr/bin/env bash
# mmdetection 3.3 + mmcv 2.2 (with its CPU ops) in benchmarks/parity/.venv, outside the package
# and outside CI: only `make_fixtures.py` uses it, to record mmdetection's own outputs.
# setuptools < 81 keeps pkg_resources, which mmcv's setup.py imports.
# About 11 minutes on 2 cores (mmcv's C++ ops). Two patches are needed for torch 2.14:
#   - mmcv's setup.py forces -std=c++17, but torch 2.14's headers need C++20;
#   - mmdet 3.3's __init__ refuses mmcv 2.2.0 (it asks for mmcv < 2.2.0), which works.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
VENV=$HERE/.venv
BUILD=$HERE/.build
mkdir -p "$BUILD"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" "torch==2.14.1" "torchvision==0.29.1" "setuptools>=77.0.3,<81" wheel ninja numpy opencv-python-headless
if ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
    "$VENV/bin/python" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
        "mmcv==2.2.0" -d "$BUILD"
    rm -rf "$BUILD/mmcv-2.2.0"
    tar -xzf "$BUILD/mmcv-2.2.0.tar.gz" -C "$BUILD"
    sed -i 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-2.2.0/setup.py"
    (cd "$BUILD/mmcv-2.2.0" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$(nproc)" \
        "$VENV/bin/python" -m pip install --quiet --no-build-isolation --no-deps .)
fi
"${PIP[@]}" "mmengine==0.10.7" "mmdet==3.3.0"
INIT=$("$VENV/bin/python" -c "import importlib.util as u; print(u.find_spec('mmdet').origin)")
sed -i "s/mmcv_maximum_version = '2.2.0'/mmcv_maximum_version = '2.3.0'/" "$INIT"
"$VENV/bin/python" -c "import mmcv, mmdet, mmcv.ops; print('mmcv', mmcv.__version__, 'mmdet', mmdet.__version__)"
