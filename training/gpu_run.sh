#!/usr/bin/env bash
# One device run (issue 15): train DeblurNet on photo-like pairs, then time 12 MP inference.
# Run from the repository root on the GPU machine, with the photo pool in .trainpool/ and
# pydantic's wheels in .whl/ (the machine has no registry). Writes to $OUT.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 REFOCUS_NO_JIT=1 OMP_NUM_THREADS=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
nproc >> "$OUT/gpu.txt"
BUDGET=${BUDGET:-360}
WORKERS=${WORKERS:-$(( $(nproc) - 2 ))}
timeout $((BUDGET + 120)) python3 training/train_photo_deblurnet.py --device cuda --workers "$WORKERS" \
    --batch ${BATCH:-24} --crop ${CROP:-192} --time-budget "$BUDGET" ${EXTRA:-} \
    --out "$OUT/deblurnet_photo.pt" --log "$OUT/train.log" > "$OUT/train.stdout" 2>&1
echo "train exit $?"; tail -5 "$OUT/train.stdout"
timeout 90 python3 - "$OUT/deblurnet_photo.pt" <<'PY' 2>&1 | tee "$OUT/gpu_speed.txt"
import sys, time, numpy as np, torch
from refocus.deblur.infer import deblur
img = np.random.default_rng(0).random((3000, 4000, 3), dtype=np.float32)
for i in range(4):
    torch.cuda.synchronize(); t = time.perf_counter()
    deblur(img, weights=sys.argv[1], device="cuda")
    torch.cuda.synchronize(); print(f"12 MP deblur on cuda (guarded, weights of this run): {time.perf_counter() - t:.3f} s", flush=True)
print("peak GPU memory GB", torch.cuda.max_memory_allocated() / 1e9)
PY
