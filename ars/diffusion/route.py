"""``route_and_sample``: answer "sample moons fast" or "best quality in 20 steps" by running the router.

The router here is the contextual bandit over the measured (expert, steps) table (bandit.py): it
measured better than REINFORCE at every lambda of the benchmark (docs/benchmarks/diffusion_sampling.md).
Everything it needs is trained on first use and cached under ``cache_dir``, keyed by its settings:
the toy's DDPM (minutes on 2 CPU cores), the distilled few-step students (a few minutes; about 11 on
8 gaussians, 4000 iterations per round), and the bandit's table (seconds: every arm measured on
development noise, never on the caller's x_T).

Example::

    out = route_and_sample("moons", speed_weight=30.0)              # fast
    out = route_and_sample("moons", speed_weight=0.01, max_nfe=20)  # best quality in 20 model calls
    out["expert"], out["num_steps"], out["nfe"], out["energy"]
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .bandit import TableRouter, train_table_router
from .data import TOY_NAMES, sample_toy
from .distill import VPrediction, progressive_distill
from .metrics import quality_floor, toy_quality
from .model import NoisePredictor, NoisePredictorConfig, load_checkpoint, save_checkpoint, train_ddpm
from .router import BUDGETS, EXPERTS, product_arms
from .routing_env import ToySamplingEnv, run_expert

DEFAULT_CACHE_DIR = Path("trainopt-out/diffusion")
# How each toy's DDPM is trained: 3000 steps underfit 8 gaussians' modes (benchmark page)
TOY_RECIPES = {"8gaussians": {"train_steps": 12000, "ema_decay": 0.999}}
DEFAULT_RECIPE = {"train_steps": 3000, "ema_decay": 0.0}
# Progressive distillation 16 -> 8 -> 4 -> 2 steps (distill.py); about 1000 iterations per round
DISTILL_SETTINGS = {"start_steps": 16, "final_steps": 2, "teacher_substeps": 4, "iterations": 1000,
                    "batch_size": 512, "lr": 1e-3, "seed": 0}
# Per-toy changes to DISTILL_SETTINGS, chosen on development seeds only (bench/diffusion_sampling.py --dev, seeds
# 100-109): on 8 gaussians the 2-8 step students' energy gap to the teacher's ODE (heun/50) fell from +0.00010
# (1000 iterations per round) to +0.00004 (2000) and +0.00002 (4000); docs/benchmarks/diffusion_sampling.md
TOY_DISTILL: dict[str, dict] = {"8gaussians": {"iterations": 4000}}
DISTILLED_STEPS = (2, 4, 8, 16)
ROUTER_LAMS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)  # the lambda grid the bandit races over


def toy_recipe(name: str) -> dict:
    return dict(TOY_RECIPES.get(name, DEFAULT_RECIPE))


def distill_settings(name: str) -> dict:
    """DISTILL_SETTINGS with the toy's own changes (TOY_DISTILL) applied."""
    return {**DISTILL_SETTINGS, **TOY_DISTILL.get(name, {})}


def settings_key(settings: dict) -> str:
    """A short stable hash of ``settings`` (JSON, sorted keys): the cache key of what they train."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def train_toy_model(name: str, train_steps: int, ema_decay: float = 0.0, seed: int = 0,
                    progress: Callable[[int, float], None] | None = None) -> NoisePredictor:
    """The toy's DDPM (50 000 training points, batch 256); with ``ema_decay`` > 0 the EMA of its weights,
    w_ema <- decay w_ema + (1 - decay) w after every step."""
    torch.manual_seed(seed)
    model = NoisePredictor(NoisePredictorConfig(data_dim=2))
    ema = copy.deepcopy(model)

    def step_hook(step: int, loss: float) -> None:
        if ema_decay:
            with torch.no_grad():
                for w_ema, w in zip(ema.parameters(), model.parameters(), strict=True):
                    w_ema.lerp_(w, 1 - ema_decay)
        if progress is not None:
            progress(step, loss)

    data = sample_toy(name, 50_000, generator=torch.Generator().manual_seed(seed))
    train_ddpm(model, data, steps=train_steps, batch_size=256, seed=seed, progress=step_hook)
    return ema.eval() if ema_decay else model


def cached_toy_model(name: str, cache_dir: Path = DEFAULT_CACHE_DIR,
                     recipe: dict | None = None) -> tuple[NoisePredictor, dict]:
    """Load ``<cache_dir>/<name>-<steps>[-ema<decay>].pt`` or train and save it; returns (model, meta) with
    meta {"data", "steps", "ema_decay", "train_seconds"}."""
    recipe = recipe or toy_recipe(name)
    steps, decay = recipe["train_steps"], recipe["ema_decay"]
    path = Path(cache_dir) / (f"{name}-{steps}.pt" if not decay else f"{name}-{steps}-ema{decay:g}.pt")
    if path.exists():
        return load_checkpoint(path)
    start = time.perf_counter()
    model = train_toy_model(name, steps, decay)
    meta = {"data": name, "steps": steps, "ema_decay": decay, "train_seconds": time.perf_counter() - start}
    save_checkpoint(model, path, **meta)
    return model, meta


def cached_students(name: str, teacher: torch.nn.Module, cache_dir: Path = DEFAULT_CACHE_DIR,
                    settings: dict | None = None, teacher_key: str = "",
                    data: tuple | None = None) -> tuple[dict[int, VPrediction], dict]:
    """Load or distil the students of ``name`` (a toy, or any name with ``data`` = (x, labels) given);
    returns ({steps: student}, cost {"rounds", "iterations", "seconds", "final_loss", "steps", "settings"})."""
    settings = {**DISTILL_SETTINGS, **(settings or {})}
    folder = Path(cache_dir) / f"distilled-{name}-{settings_key({**settings, 'teacher': teacher_key})}"
    meta_path = folder / "cost.json"
    if meta_path.exists():
        cost = json.loads(meta_path.read_text())
        students = {int(n): VPrediction(load_checkpoint(folder / f"student-{n}.pt")[0]) for n in cost["steps"]}
        return students, cost
    x, labels = data or (sample_toy(name, 50_000, generator=torch.Generator().manual_seed(settings["seed"])), None)
    students, cost = progressive_distill(teacher, x, labels, **settings)
    for n, student in students.items():
        save_checkpoint(student.net, folder / f"student-{n}.pt", parameterization="v", steps=n)
    cost = {**cost, "final_loss": {str(k): v for k, v in cost["final_loss"].items()}, "steps": sorted(students),
            "settings": settings}
    meta_path.write_text(json.dumps(cost, indent=1))
    return students, cost


def default_arms(distilled_steps=DISTILLED_STEPS) -> tuple[tuple[str, int], ...]:
    return (*product_arms(EXPERTS, BUDGETS), *(("distilled", n) for n in distilled_steps))


def cached_table_router(name: str, model, students: dict, cache_dir: Path = DEFAULT_CACHE_DIR,
                        key: str = "", pool_seed: int = 0, pool_n: int = 500) -> TableRouter:
    """Load or measure the bandit's table for toy ``name`` on development noise (pool seed ``pool_seed``,
    ``pool_n`` points per measurement)."""
    arms = default_arms(tuple(sorted(students)))
    settings = {"arms": arms, "key": key, "pool": pool_seed, "n": pool_n}
    path = Path(cache_dir) / f"table-router-{name}-{settings_key(settings)}.json"
    if path.exists():
        return TableRouter.from_dict(json.loads(path.read_text()))
    env = ToySamplingEnv({name: model}, n=pool_n, seed=pool_seed, students={name: students})
    router = TableRouter(arms)
    train_table_router(router, env.measure_pool, [name], ROUTER_LAMS)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(router.to_dict()))
    return router


def route_and_sample(toy: str, speed_weight: float = 1.0, *, max_nfe: int | None = None, n: int = 2000,
                     seed: int = 0, cache_dir: str | Path = DEFAULT_CACHE_DIR, distilled: bool = True,
                     pool_n: int = 500) -> dict:
    """Pick (expert, steps) for toy ``toy`` at lambda = ``speed_weight`` (reward -energy - lambda NFE / 1000;
    large = fast) within ``max_nfe`` model calls, sample ``n`` points from noise seed ``seed`` and score them.
    ``distilled=False`` leaves the distilled students out; ``pool_n`` is the size of the table's measurements.

    Returns {"toy", "expert", "num_steps", "nfe", "seconds", "energy", "mmd", "off_mode", "floor_energy",
    "expected": the table's mean energy and NFE of the pick, "alternatives": the next best arms,
    "samples": (n, 2) tensor}.
    """
    if toy not in TOY_NAMES:
        raise ValueError(f"toy must be one of {TOY_NAMES} but got {toy=}")
    if not speed_weight > 0:
        raise ValueError(f"speed_weight must be > 0 but got {speed_weight=}")
    if max_nfe is not None and max_nfe < 1:
        raise ValueError(f"max_nfe must be >= 1 but got {max_nfe=}")
    cache_dir = Path(cache_dir)
    recipe = toy_recipe(toy)
    model = cached_toy_model(toy, cache_dir, recipe)[0]
    distill = distill_settings(toy)
    students = cached_students(toy, model, cache_dir, distill, teacher_key=settings_key(recipe))[0] if distilled else {}
    table_key = settings_key({**recipe, "distilled": distilled and distill})
    router = cached_table_router(toy, model, students, cache_dir, key=table_key, pool_n=pool_n)
    expert, steps = router.choose(toy, speed_weight, max_nfe)
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    x, nfe = run_expert(model, students, expert, steps, x_T, torch.Generator().manual_seed(seed + 1))
    seconds = time.perf_counter() - start
    quality = toy_quality(toy, x, sample_toy(toy, n, generator=torch.Generator().manual_seed(seed + 2)))
    ranked = sorted(router.measured_arms(toy, max_nfe), key=lambda a: -router.expected_reward(toy, a, speed_weight))
    mean, _, table_nfe = router.estimate(toy, (expert, steps))
    return {"toy": toy, "speed_weight": speed_weight, "max_nfe": max_nfe, "expert": expert, "num_steps": steps,
            "nfe": nfe, "seconds": seconds, "energy": quality["energy"], "mmd": quality["mmd"],
            "off_mode": quality["off_mode"], "floor_energy": quality_floor(toy, n)["energy"],
            "expected": {"energy": mean, "nfe": table_nfe},
            "alternatives": [{"arm": f"{e}/{s}", "energy": router.estimate(toy, (e, s))[0],
                              "nfe": router.estimate(toy, (e, s))[2]} for e, s in ranked[1:4]],
            "samples": x}
