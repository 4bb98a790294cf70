"""Data-parallel probes: ``run_trial`` and the BatchSizeOptimizer under DistributedDataParallel.

Run under ``torchrun --nproc-per-node N`` (NCCL on CUDA, one GPU per rank; gloo on CPU). Every rank
draws the same global batch, exactly as one process would, and trains its replica on its own slice:
rank r takes rows [r B, (r + 1) B) of the global batch of N B rows, B being the per-rank batch. DDP
averages the gradients over ranks (all-reduce, then / N), so with a loss that is a batch mean the
update is the one-process update on the global batch: N processes with per-rank batch B follow the
loss curve of one process with batch N B, up to the order of float sums. The loss each rank records
is the global batch mean (all-reduced), so every rank takes the same divergence decision.

- ``run_trial_ddp``: ``config.batch_size`` is the *global* batch (it must divide by N); the result
  states per-rank and global batch, the global throughput (global samples per second of the slowest
  rank) and each rank's peak step memory.
- ``batch_size_ddp``: the BatchSizeOptimizer on every rank with *per-rank* batch sizes (memory is a
  per-rank limit); the answer gives each size's global batch and global throughput.

    torchrun --nproc-per-node 2 -m trainopt.tools.ddp trial --workload digits-mlp --batch-size 64 --steps 100
    torchrun --nproc-per-node 2 -m trainopt.tools.ddp batch-size --workload digits-mlp --max-batch 256

Validation runs the whole validation set on every rank (the replicas are identical), as in one process.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from pydantic import BaseModel, Field
from torch.nn.parallel import DistributedDataParallel

from trainopt.errors import HyperparameterError
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import TrialResult, run_trial
from trainopt.tools.workloads import Workload, get_workload


@dataclass(frozen=True)
class Ranks:
    """This process's place in the process group."""

    rank: int
    world: int
    device: torch.device
    backend: str


def init_distributed(device: str = "auto") -> Ranks:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR ... in the environment)."""
    cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        resolved = torch.device("cuda", local)
    else:
        resolved = torch.device("cpu")
    return Ranks(rank, world, resolved, backend)


class _DDP(DistributedDataParallel):
    """DDP that forwards attributes it lacks to the wrapped model (a loss reading ``model.routing_stats``)."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def _slice(batch, start: int, stop: int):
    """Rows [start, stop) of every tensor in a (nested) batch."""
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    if isinstance(batch, (tuple, list)):
        return type(batch)(_slice(b, start, stop) for b in batch)
    if isinstance(batch, dict):
        return {k: _slice(v, start, stop) for k, v in batch.items()}
    return batch


@dataclass
class _RankShard(Workload):
    """The workload as one rank trains it: a DDP replica, its slice of each global batch, the global loss."""

    ranks: Ranks | None = None
    per_rank_sizes: bool = False  # train_batches(b): b is the per-rank batch (else the global batch)

    def train_batches(self, batch_size: int, generator: torch.Generator, device: torch.device) -> Iterator:
        r = self.ranks
        per_rank = batch_size if self.per_rank_sizes else batch_size // r.world
        for batch in super().train_batches(per_rank * r.world, generator, device):
            yield _slice(batch, r.rank * per_rank, (r.rank + 1) * per_rank)

    def loss(self, model, batch) -> torch.Tensor:
        local = self.loss_fn(model, batch)
        if not torch.is_grad_enabled() or not isinstance(local, torch.Tensor) or local.dim() != 0:
            return local  # validation (every rank sees all of it) or a bad loss run_trial reports
        mean = local.detach().clone()
        dist.all_reduce(mean)
        # value: the global batch mean; gradient: this rank's (DDP averages the gradients)
        return local + (mean / self.ranks.world - local.detach())


def shard(workload: Workload | str, ranks: Ranks, per_rank_sizes: bool = False) -> Workload:
    """``workload`` as rank ``ranks.rank`` of ``ranks.world`` trains it under DDP."""
    base = get_workload(workload)
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(Workload) if f.init}
    ids = [ranks.device.index] if ranks.device.type == "cuda" else None

    def make_model():
        return _DDP(base.make_model().to(ranks.device), device_ids=ids)

    groups = base.param_groups
    fields.update(make_model=make_model, param_groups=(
        None if groups is None else (lambda model, lr, wd: groups(model.module, lr, wd))))
    return _RankShard(**fields, ranks=ranks, per_rank_sizes=per_rank_sizes)


class DDPTrialResult(BaseModel):
    """One data-parallel trial: rank 0's result, with the figures that need every rank."""

    world_size: int
    backend: str
    per_rank_batch: int
    global_batch: int
    throughput: float = Field(description="global samples per second: global batch x steps / slowest rank's time")
    peak_memory_mb_per_rank: list[float]
    time_per_step_s_per_rank: list[float]
    result: TrialResult = Field(description="rank 0's result (its loss curve is the global batch mean)")


def run_trial_ddp(workload: Workload | str, config: TrialConfig, ranks: Ranks | None = None) -> DDPTrialResult:
    """``run_trial`` on every rank; ``config.batch_size`` is the global batch (divisible by the world size)."""
    ranks = ranks or init_distributed()
    if config.batch_size % ranks.world:
        raise HyperparameterError(
            f"the global batch_size={config.batch_size} must divide by the {ranks.world} ranks",
            {"batch_size": config.batch_size, "world_size": ranks.world},
        )
    result = run_trial(shard(workload, ranks), config, device=ranks.device)
    rows = [None] * ranks.world
    dist.all_gather_object(rows, (result.peak_memory_mb, result.time_per_step_s))
    memory, step_times = [m for m, _ in rows], [t for _, t in rows]
    result = result.model_copy(update={"grad_stats": {k.removeprefix("module."): v
                                                      for k, v in result.grad_stats.items()}})
    return DDPTrialResult(
        world_size=ranks.world, backend=ranks.backend, per_rank_batch=config.batch_size // ranks.world,
        global_batch=config.batch_size, throughput=config.batch_size / max(step_times),
        peak_memory_mb_per_rank=memory, time_per_step_s_per_rank=step_times, result=result,
    )


class DDPBatchPoint(BaseModel):
    per_rank_batch: int
    global_batch: int
    global_samples_per_s: float | None = Field(description="world size x the slowest rank's samples/s")
    peak_memory_mb_per_rank: list[float | None]


class DDPBatchSizeResult(BaseModel):
    """The BatchSizeOptimizer under DDP: sizes per rank, with the global batch beside each."""

    world_size: int
    backend: str
    max_per_rank_batch: int
    max_global_batch: int
    recommended_per_rank_batch: int
    recommended_global_batch: int
    throughput: list[DDPBatchPoint]
    rank0: dict = Field(description="rank 0's BatchSizeOutput (per-rank batch sizes and samples/s)")


def batch_size_ddp(workload: Workload | str, ranks: Ranks | None = None, **inputs) -> DDPBatchSizeResult:
    """The BatchSizeOptimizer on every rank (per-rank batch sizes; ``inputs`` as ``BatchSizeInput``)."""
    from trainopt.tools.batch_size import BatchSizeOptimizer

    ranks = ranks or init_distributed()
    output = BatchSizeOptimizer(shard(workload, ranks, per_rank_sizes=True), device=ranks.device)(**inputs)
    outputs = [None] * ranks.world
    dist.all_gather_object(outputs, output.model_dump(mode="json"))
    curve = []
    for i, point in enumerate(output.throughput):
        rates = [o["throughput"][i]["samples_per_s"] for o in outputs]
        curve.append(DDPBatchPoint(
            per_rank_batch=point.batch_size, global_batch=point.batch_size * ranks.world,
            global_samples_per_s=None if None in rates else ranks.world * min(rates),
            peak_memory_mb_per_rank=[o["throughput"][i]["peak_memory_mb"] for o in outputs],
        ))
    return DDPBatchSizeResult(
        world_size=ranks.world, backend=ranks.backend, max_per_rank_batch=output.max_batch_size,
        max_global_batch=output.max_batch_size * ranks.world,
        recommended_per_rank_batch=output.recommended_batch_size,
        recommended_global_batch=output.recommended_batch_size * ranks.world,
        throughput=curve, rank0=output.model_dump(mode="json"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainopt.tools.ddp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["trial", "batch-size"])
    parser.add_argument("--workload", default="digits-mlp")
    parser.add_argument("--device", default="auto", help="auto: NCCL on CUDA when there is one, else gloo on CPU")
    parser.add_argument("--batch-size", type=int, default=64, help="trial: the global batch")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-batch", type=int, default=None, help="batch-size: largest per-rank batch to try")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--out", default=None, help="write rank 0's JSON here (default: stdout)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ranks = init_distributed(args.device)
    if args.what == "trial":
        config = TrialConfig(**{**get_workload(args.workload).default_config, "batch_size": args.batch_size,
                                "steps": args.steps, "lr": args.lr, "seed": args.seed})
        answer = run_trial_ddp(args.workload, config, ranks)
    else:
        answer = batch_size_ddp(args.workload, ranks, max_batch=args.max_batch, seed=args.seed)
    if ranks.rank == 0:
        text = answer.model_dump_json(indent=2)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text + "\n")
        else:
            print(text)
    dist.barrier()  # every rank is done with the group
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    code = main()
    # the answer is written: leave without the interpreter's teardown, where gloo's threads can abort a rank
    # ("terminate called without an active exception") and torchrun would report the run as failed
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
