#!/usr/bin/env bash
# The whole GPU measurement of issue 12 in one unattended call on a bare GPU machine that has CUDA
# torch but not monai, nibabel, pydicom or isal, and no network. Prepare here (with network):
#     tools/device_wheels.sh          # fills .whl/ (git-ignored)
# then run from the repository root on the GPU machine, carrying .whl:
#     OUT=/some/folder bash benchmarks/gpu_sweep.sh
# Writes under $OUT (default benchmark_gpu/): gpu.txt, sweep.log, clinical/benchmark.{json,md},
# large/benchmark.{json,md}, cold.txt (fresh-process wall times), gpu_tests.log.
set -uo pipefail
OUT="${OUT:-benchmark_gpu}"
mkdir -p "$OUT"
exec > >(tee "$OUT/sweep.log") 2>&1
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
SR="python3 -m srgan3d"
python3 -c "import torch, monai, nibabel, isal; assert torch.cuda.is_available(), 'no CUDA'; print('torch', torch.__version__, 'monai', monai.__version__)" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"

# 1. Clinical size, 320x320x80 -> 640x640x160: cold first call, the sweep (windows x batches,
#    precisions, compile, channels_last, cuDNN autotuning), stages, end to end, a folder of 20.
$SR benchmark -o "$OUT/clinical" --shape 320,320,80 --device cuda

# 2. 512x512x200 within 16 GB of GPU memory.
$SR benchmark -o "$OUT/large" --shape 512,512,200 --device cuda --windows 0 --batches 1 --repeats 1 \
  --folder 0 --memory-gb 16

# 3. Fresh processes: the whole command as a user types it, .nii.gz and .nii outputs.
python3 - <<'PY' "$OUT"
import sys
import numpy as np
from pathlib import Path
from srgan3d.sr.bench import test_volume
from srgan3d.io import write_volume
write_volume(test_volume((320, 320, 80)), Path(sys.argv[1]) / "cold_in" / "scan.nii.gz")
PY
python3 - <<'PY' "$OUT"
import sys
from pathlib import Path
import torch
from srgan3d.sr.nets import Generator, GeneratorConfig
from srgan3d.sr.weights import save_weights
torch.manual_seed(0)
m = Generator(GeneratorConfig()); torch.nn.init.normal_(m.tail.weight, std=0.01)
save_weights(m, Path(sys.argv[1]) / "w" / "bench.pt", card={"description": "untrained, for timing"})
PY
for fmt in "" "--no-compress"; do
  s=$EPOCHREALTIME
  $SR upscale "$OUT/cold_in" -o "$OUT/cold_out$fmt" --method generator --weights "$OUT/w/bench.pt" --device cuda $fmt >/dev/null 2>&1
  e=$EPOCHREALTIME
  echo "fresh process upscale ${fmt:-.nii.gz}: $(awk "BEGIN{print $e - $s}") s" | tee -a "$OUT/cold.txt"
done
rm -rf "$OUT/cold_in" "$OUT/cold_out" "$OUT/cold_out--no-compress" "$OUT/w"

# 4. The gpu-marked tests (bf16 vs fp32, a real CUDA out-of-memory retry).
python3 -m pytest -q -m gpu tests/sr 2>&1 | tee "$OUT/gpu_tests.log" | tail -5
