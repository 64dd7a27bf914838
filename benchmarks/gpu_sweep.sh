#!/usr/bin/env bash
# The whole GPU sweep in one call, for the device machine: `run` this from the repository root.
# Installs the project into a fresh venv (the machine's CUDA torch when it has one), then runs
# `srgan3d benchmark` on the clinical-size volume and the 512x512x200 memory case, writing
# JSON + markdown under $OUT (default: benchmark_gpu/).
set -euo pipefail
OUT="${OUT:-benchmark_gpu}"
mkdir -p "$OUT"
python3 -m venv --system-site-packages .venv-gpu
.venv-gpu/bin/python -c "import torch; assert torch.cuda.is_available()" 2>/dev/null \
  || .venv-gpu/bin/pip install --quiet torch
.venv-gpu/bin/pip install --quiet -e .
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
.venv-gpu/bin/srgan3d benchmark -o "$OUT/clinical_320x320x80" --shape 320,320,80 --device cuda 2>&1 | tee "$OUT/clinical.log"
.venv-gpu/bin/srgan3d benchmark -o "$OUT/large_512x512x200" --shape 512,512,200 --device cuda \
  --windows 0 --batches 1 --repeats 1 2>&1 | tee "$OUT/large.log"
