#!/usr/bin/env bash
# mmcv-full 1.7.2 (with its CPU ops) in benchmarks/parity/.venv-mmcv1, for the mmdetection 2.x
# code of CBNetV2 and RefineMask (their repositories' own mmdet copies, put on PYTHONPATH by
# make_fixtures_2x.py). Outside the package and outside CI. Patches for torch 2.14: C++20 in
# place of the C++14/17 that mmcv's setup.py forces.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
VENV=$HERE/.venv-mmcv1
BUILD=$HERE/.build
mkdir -p "$BUILD"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" "torch==2.14.1" "torchvision==0.29.1" "setuptools>=77.0.3,<81" wheel ninja numpy \
    opencv-python-headless pycocotools terminaltables matplotlib scipy shapely addict yapf pillow \
    pyyaml timm six
if ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
    "$VENV/bin/python" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
        "mmcv-full==1.7.2" -d "$BUILD"
    rm -rf "$BUILD/mmcv-full-1.7.2"
    tar -xzf "$BUILD/mmcv-full-1.7.2.tar.gz" -C "$BUILD"
    sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$BUILD/mmcv-full-1.7.2/setup.py"
    (cd "$BUILD/mmcv-full-1.7.2" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$(nproc)" \
        "$VENV/bin/python" -m pip install --quiet --no-build-isolation --no-deps .)
fi
"$VENV/bin/python" -c "import mmcv, mmcv.ops; print('mmcv-full', mmcv.__version__)"
