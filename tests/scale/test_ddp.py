"""Data-parallel probes under torchrun (gloo on CPU): two ranks with per-rank batch B train like one
process with batch 2B."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _torchrun(tmp_path, *args: str) -> dict:
    out = tmp_path / "answer.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "trainopt.tools.ddp", *args, "--device", "cpu", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def test_two_ranks_of_batch_b_follow_one_process_of_batch_2b(tmp_path):
    answer = _torchrun(tmp_path, "trial", "--workload", "digits-mlp", "--batch-size", "64", "--steps", "25",
                       "--lr", "3e-3")
    one = run_trial("digits-mlp", TrialConfig(batch_size=64, steps=25, lr=3e-3), device="cpu")
    # Both batches are stated, and the loss curve is the one-process curve up to float summation order.
    assert (answer["world_size"], answer["per_rank_batch"], answer["global_batch"]) == (2, 32, 64)
    assert answer["backend"] == "gloo"
    assert answer["result"]["train_losses"] == pytest.approx(one.train_losses, rel=1e-4, abs=1e-5)
    assert answer["result"]["final_val_loss"] == pytest.approx(one.final_val_loss, rel=1e-4)
    # Throughput and memory come from both ranks.
    assert len(answer["peak_memory_mb_per_rank"]) == 2 and answer["throughput"] > 0


def test_the_batch_size_optimizer_under_ddp_states_per_rank_and_global_batches(tmp_path):
    answer = _torchrun(tmp_path, "batch-size", "--workload", "digits-mlp", "--max-batch", "64")
    # Sizes are per rank (memory is a per-rank limit); each comes with its global batch and throughput.
    assert answer["max_global_batch"] == 2 * answer["max_per_rank_batch"]
    assert answer["recommended_global_batch"] == 2 * answer["recommended_per_rank_batch"]
    for point in answer["throughput"]:
        assert point["global_batch"] == 2 * point["per_rank_batch"]
        assert len(point["peak_memory_mb_per_rank"]) == 2
    assert any(p["global_samples_per_s"] for p in answer["throughput"])
