#!/usr/bin/env bash
# GPU check of the scale-out code paths that CPU-only CI cannot run (NCCL DDP, CUDA workers).
#   bash bench/gpu_check_ddp.sh            # about 2-4 minutes on one GPU
# With 2+ GPUs: DDP over 2 ranks (NCCL) must follow one process with the global batch.
# With 1 GPU: DDP with 1 rank (NCCL) must equal the plain run (NCCL cannot put 2 ranks on one GPU).
# Then a `trainopt worker --device cuda` runs a CUDA trial queued in a SQLite study.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
GPUS=$(python3 -c "import torch; print(torch.cuda.device_count())")
echo "GPUs: $GPUS"; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
RANKS=$(( GPUS >= 2 ? 2 : 1 ))
python3 -m torch.distributed.run --standalone --nproc-per-node "$RANKS" -m trainopt.tools.ddp trial \
    --workload digits-cnn --batch-size 128 --steps 60 --lr 3e-3 --device cuda --out "$OUT/ddp_trial.json"
python3 -m torch.distributed.run --standalone --nproc-per-node "$RANKS" -m trainopt.tools.ddp batch-size \
    --workload digits-cnn --max-batch 512 --device cuda --out "$OUT/ddp_batch.json"
python3 - "$OUT" <<'PY'
import json, sys
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial
out = sys.argv[1]
ddp = json.load(open(f"{out}/ddp_trial.json"))
one = run_trial("digits-cnn", TrialConfig(batch_size=128, steps=60, lr=3e-3), device="cuda")
diff = max(abs(a - b) / max(abs(b), 1e-8) for a, b in zip(ddp["result"]["train_losses"], one.train_losses))
print(f"DDP {ddp['backend']} x{ddp['world_size']} (per-rank batch {ddp['per_rank_batch']}, global {ddp['global_batch']}):"
      f" max relative loss difference to one process {diff:.2e}; global {ddp['throughput']:.0f} samples/s;"
      f" peak step memory per rank {ddp['peak_memory_mb_per_rank']} MiB")
bs = json.load(open(f"{out}/ddp_batch.json"))
print(f"batch size under DDP: max per-rank {bs['max_per_rank_batch']} (global {bs['max_global_batch']}), "
      f"recommended per-rank {bs['recommended_per_rank_batch']} (global {bs['recommended_global_batch']})")
assert ddp["backend"] == "nccl", ddp["backend"]
assert diff < 1e-3, f"DDP loss curve differs from one process: {diff:.2e}"
PY
# a CUDA trial through the queue: the coordinator queues it, a CUDA worker runs it
STORAGE="sqlite:///$OUT/trials.db"
trainopt worker --storage "$STORAGE" --device cuda --idle-exit 20 > "$OUT/worker.log" 2>&1 &
trainopt sweep --workload digits-cnn --lr 1e-3,3e-3 --steps 60 --device cuda --storage "$STORAGE" --workers 0 \
    --out "$OUT" --json > "$OUT/sweep.json"
wait
python3 -c "import json,sys; r=json.load(open('$OUT/sweep.json')); print('queued CUDA trials:', [(x['device'], round(x['final_val_loss'], 4)) for x in r]); assert all(x['device'].startswith('cuda') for x in r)"
echo "gpu_check_ddp: all checks passed (outputs in $OUT)"
