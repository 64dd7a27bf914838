#!/usr/bin/env bash
# Wheels for a GPU machine that has CUDA torch, numpy, scipy, scikit-image, pandas, matplotlib,
# pyyaml, typer and tqdm but not the rest of what `srgan3d benchmark` / `upscale` import, and no
# network: run this here (where PyPI is reachable), carry `.whl/` along, and
# benchmarks/gpu_sweep.sh installs them there with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-3.12}
mkdir -p .whl
for spec in "monai==1.6.1" "nibabel==5.4.2" "pydicom==3.0.2" "isal==1.9.1" "PyWavelets==1.9.0" "importlib_resources==7.1.0"; do
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "$spec"
done
ls -la .whl
