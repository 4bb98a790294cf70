"""Diffusion sampling benchmark: every sampler expert at 5..100 steps, the distilled few-step students,
the 1000-step DDPM reference, and three routers at several lambda, on 2-D toys (plus digits).

One process, one run. Seeds:
  - development: the routers' training requests draw x_T from a noise pool (generator seed 0);
    the students are distilled from the DDPM on training data only; their settings (route.py
    TOY_DISTILL) were chosen with ``--dev``: seeds 100..100+S-1 (x_T from generator 1000+seed, the
    reference data from 3000+seed), the students, heun/50 (the teacher's ODE) and DDPM-1000 only.
  - evaluation: seeds 0..S-1 (x_T from generator 1000+s, the reference data from 3000+s). The static
    table, the oracle ("best static configuration"), every router pick and every target use only these;
    nothing was trained or selected on them.

Routers (trained on the same development pool, the same arms: 25 sampler configurations + 4 students):
  - bandit: contextual bandit over the measured (expert, steps) table (ars/diffusion/bandit.py).
  - reinforce: REINFORCE with group-normalised advantages, lambda log-uniform over [0.01, 30].
  - reinforce_batch: the same with batch-normalised advantages (what the first router did: ablation).

Targets (printed with holds / falls short):
  1. some configuration with NFE <= 20 reaches the DDPM-1000 quality: mean energy <= the worst
     (max) of the DDPM-1000 seeds.
  2. a distilled student reaches the DDPM-1000 seed spread at <= 8 NFE on every toy (stretch: 4 NFE).
  3. the bandit router's mean reward is within 10% of the best static configuration's at every toy and
     lambda (regret <= 0.1 |best|), or inside the seed spread (the 90% t-interval of the per-seed
     reward differences reaches 0).
  4. its picks change with lambda wherever the best static configuration does and the change matters
     (keeping the previous lambda's best would miss target 3); every change is counted too.
  5. strict Pareto: no pick is dominated beyond the seed spread; a configuration at most as expensive
     (NFE) with lower energy is a domination; its energy gap is the distance to the front, and it
     "falls short" when the gap exceeds the seed spread (max - min over evaluation seeds) of both.

    python3 bench/diffusion_sampling.py            # full run (~30-40 min on a busy 2-core box)
    python3 bench/diffusion_sampling.py --quick    # smoke run, writes *_quick outputs
    python3 bench/diffusion_sampling.py --rerender # markdown and plot from the saved JSON
    python3 bench/diffusion_sampling.py --dev --data 8gaussians --seeds 10 --distill-override '{"iterations": 2000}'
                                                   # development seeds, writes *_dev outputs
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections import Counter
from pathlib import Path

import torch
from doc_block import write_doc_block  # bench/doc_block.py (the script's folder is on sys.path)
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from trainopt.ars.diffusion import (
    EXPERTS,
    Request,
    Router,
    TableRouter,
    ToySamplingEnv,
    quality_floor,
    request_features,
    run_expert,
    sample_toy,
    toy_quality,
    train_router,
    train_table_router,
)
from trainopt.ars.diffusion.route import (
    ROUTER_LAMS,
    cached_students,
    cached_toy_model,
    distill_settings,
    settings_key,
    toy_recipe,
)

RESULTS = Path(__file__).parent / "results"
DOC = Path(__file__).parent.parent / "docs" / "benchmarks" / "diffusion_sampling.md"
CACHE = Path(__file__).parent / ".cache" / "diffusion"
SAMPLERS_ONLY = " (samplers only)"
DEV_SEED0 = 100  # development seeds are 100, 101, ...; evaluation seeds 0..S-1 (S <= 100)
DEV_ARMS = [("heun", 50)]  # beside the students in --dev: the teacher's probability-flow ODE, nearly converged
DIGITS_DISTILL = {"batch_size": 128, "teacher_substeps": 2, "iterations": 600}
console = Console()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny smoke run (moons, small N, short training)")
    p.add_argument("--data", nargs="+", default=["moons", "8gaussians"], help="toys to benchmark")
    p.add_argument("--n", type=int, default=2000, help="samples per measurement (and reference size; at 1000 the "
                   "8 gaussians energies of one seed were 3x the others')")
    p.add_argument("--router-n", type=int, default=500, help="samples per measurement while routers train")
    p.add_argument("--seeds", type=int, default=5, help="evaluation seeds (>= 3 for the spread)")
    p.add_argument("--reinforce-iterations", type=int, default=200, help="REINFORCE iterations (8 requests x 4 arms)")
    p.add_argument("--lams", type=float, nargs="+", default=[0.01, 0.1, 0.5, 2.0, 10.0, 30.0],
                   help="lambda values at which the routers are evaluated")
    p.add_argument("--cache-dir", type=Path, default=CACHE, help="trained models and students (gitignored)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no-digits", action="store_true", help="skip the class-conditional digits section")
    p.add_argument("--rerender", action="store_true", help="rewrite markdown and plot from the saved JSON")
    p.add_argument("--dev", action="store_true", help=f"development seeds {DEV_SEED0}.. instead of the evaluation "
                   "seeds; only the students, heun/50 and DDPM-1000; no routers, no digits; writes *_dev outputs")
    p.add_argument("--distill-override", type=json.loads, default={},
                   help="JSON dict over each toy's distillation settings (route.py distill_settings), for --dev")
    args = p.parse_args(argv)
    args.distill = dict(args.distill_override)
    if args.quick:
        args.data, args.n, args.router_n, args.seeds, args.reinforce_iterations = ["moons"], 400, 200, 3, 20
        args.lams = [0.1, 10.0]
        args.distill.update(iterations=30, start_steps=8, final_steps=4)
    if args.seeds < 2 or args.n < 2 or args.seeds > DEV_SEED0:
        raise ValueError(f"need 2 <= seeds <= {DEV_SEED0} and n >= 2 but got {args.seeds=}, {args.n=}")
    if args.distill_override and not args.dev:
        raise ValueError("--distill-override is for --dev runs (the evaluation uses route.py's settings)")
    return args


def run_seeds(count: int, dev: bool) -> list[int]:
    """Evaluation seeds 0..count-1, or development seeds DEV_SEED0..DEV_SEED0+count-1 (disjoint for count <= 100)."""
    return list(range(DEV_SEED0, DEV_SEED0 + count) if dev else range(count))


def measure(model, students, name: str, expert: str, steps: int, seed: int, n: int) -> dict:
    """One arm on evaluation seed ``seed``'s x_T, scored against seed ``seed``'s fresh data."""
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(1000 + seed))
    start = time.perf_counter()
    x, nfe = run_expert(model, students, expert, steps, x_T, torch.Generator().manual_seed(2000 + seed))
    wall = time.perf_counter() - start
    reference = sample_toy(name, n, generator=torch.Generator().manual_seed(3000 + seed))
    return {"nfe": nfe, "wall_s": wall, **toy_quality(name, x, reference)}


def summarise(runs: list[dict]) -> dict:
    out = {"seeds": len(runs), "runs": runs}
    for key in ("energy", "mmd", "swd", "off_mode", "nfe", "wall_s"):
        vals = [r[key] for r in runs]
        out[key] = statistics.fmean(vals)
        out[f"{key}_min"], out[f"{key}_max"] = min(vals), max(vals)
    return out


def reward(run: dict, lam: float) -> float:
    return -run["energy"] - lam * run["nfe"] / 1000


def t_interval(values: list[float], level: float = 0.90) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval over seeds at ``level``."""
    from scipy import stats

    mean = statistics.fmean(values)
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return float(mean), float(mean - half), float(mean + half)


def main() -> None:
    args = parse_args()
    suffix = "_quick" if args.quick else ("_dev" if args.dev else "")
    if args.rerender:
        write_outputs(json.loads((RESULTS / f"diffusion_sampling{suffix}.json").read_text()), suffix)
        return
    torch.set_num_threads(args.threads)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    budgets = [5, 10, 20] if args.quick else [5, 10, 20, 50]  # 100 steps never beat 50 (earlier runs)
    seeds = run_seeds(args.seeds, args.dev)
    results: dict = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                              if k != "cache_dir"}, "eval_seeds": seeds, "dev": args.dev, "toys": {}}
    models, students, costs = {}, {}, {}
    for name in args.data:
        recipe = toy_recipe(name) if not args.quick else {"train_steps": 400, "ema_decay": 0.0}
        models[name], meta = cached_toy_model(name, args.cache_dir, recipe)
        console.print(f"{name}: DDPM {recipe} ({meta.get('train_seconds', float('nan')):.0f} s when trained)")
        settings = {**distill_settings(name), **args.distill}
        students[name], costs[name] = cached_students(name, models[name], args.cache_dir, settings,
                                                      teacher_key=settings_key(recipe))
        console.print(f"{name}: students {sorted(students[name])}, distillation {costs[name]['iterations']} "
                      f"iterations, {costs[name]['seconds']:.0f} s")
        results["toys"][name] = {"model": {**recipe, "train_seconds": meta.get("train_seconds")},
                                 "distill_cost": costs[name]}
    arms = [*(DEV_ARMS if args.dev else ((e, b) for e in EXPERTS for b in budgets)),
            *(("distilled", n) for n in sorted(students[args.data[0]]))]
    total = len(seeds) * len(args.data) * (len(arms) + 1)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("static configurations", total=total)
        for name in args.data:
            rows = []
            for expert, steps in [*arms, ("ddpm", 1000)]:
                runs = []
                for seed in seeds:
                    runs.append(measure(models[name], students[name], name, expert, steps, seed, args.n))
                    bar.advance(task)
                rows.append({"expert": expert, "steps": steps, **summarise(runs)})
            toy = results["toys"][name]
            toy.update(floor=quality_floor(name, args.n), static=rows[:-1], reference=rows[-1])
    if not args.dev:
        results["routers"] = train_routers(args, models, students, arms)
    for name in args.data:
        routers = results.get("routers", {})
        results["toys"][name]["router"] = evaluate_routers(routers, results["toys"][name], name, args)
    if not args.no_digits and not args.dev:
        results["digits"] = digits_section(args)
    evaluate_targets(results)
    write_outputs(results, suffix)


def train_routers(args, models: dict, students: dict, arms: list) -> dict:
    """Train the routers on the development pool over two arm sets: every arm, and the samplers only (without
    the students, the best arm moves with lambda); keep them (in memory) with their cost."""
    out = {}
    sampler_arms = [a for a in arms if a[0] != "distilled"]
    plan = [("bandit", arms, None), ("reinforce", arms, "group"),
            (f"bandit{SAMPLERS_ONLY}", sampler_arms, None), (f"reinforce{SAMPLERS_ONLY}", sampler_arms, "group"),
            (f"reinforce_batch{SAMPLERS_ONLY}", sampler_arms, "batch")]
    for name, arm_set, normalize in plan:
        start = time.perf_counter()
        env = ToySamplingEnv(models, n=args.router_n, seed=0, students=students)
        if normalize is None:
            bandit = TableRouter(arm_set)
            pulls = train_table_router(bandit, env.measure_pool, list(models), ROUTER_LAMS, initial_pulls=4,
                                       max_pulls=8)
            out[name] = {"router": bandit, "measured_runs": env.measurements, "pulls": pulls}
        else:
            torch.manual_seed(0)
            router = Router(arms=arm_set)
            history = train_router(router, env.reward, env.sample_request, iterations=args.reinforce_iterations,
                                   batch_size=8, group_size=4, normalize=normalize, seed=0)
            out[name] = {"router": router, "measured_runs": env.measurements,
                         "iterations": args.reinforce_iterations, "rewards_drawn": args.reinforce_iterations * 32,
                         "mean_reward_first_10": statistics.fmean(history[:10]),
                         "mean_reward_last_10": statistics.fmean(history[-10:])}
        out[name].update(arms=[f"{e}/{n}" for e, n in arm_set], seconds=time.perf_counter() - start)
        console.print(f"{name}: {env.measurements} measured runs in {out[name]['seconds']:.0f} s")
    return out


def evaluate_routers(routers: dict, toy: dict, name: str, args) -> dict:
    """Each router's pick per evaluation seed and lambda; rewards read from the static table's runs."""
    table = {(r["expert"], r["steps"]): r for r in toy["static"]}
    out = {}
    for router_name, entry in routers.items():
        picks = []
        for lam in args.lams:
            chosen = []
            for seed in range(len(toy["reference"]["runs"])):
                if isinstance(entry["router"], TableRouter):
                    arm = entry["router"].choose(name, lam)
                else:
                    x_T = torch.randn(args.n, 2, generator=torch.Generator().manual_seed(1000 + seed))
                    with torch.no_grad():
                        d = entry["router"].choose(request_features(Request(name, lam, x_T)))
                    arm = (d.expert, d.num_steps)
                chosen.append(arm)
            runs = [table[arm]["runs"][seed] for seed, arm in enumerate(chosen)]
            picks.append({"lam": lam, "choices": [f"{e}/{s}" for e, s in chosen], **summarise(runs)})
        out[router_name] = picks
    return out


def pareto_distance(pick: dict, statics: list[dict]) -> tuple[float, dict | None]:
    """Energy gap to the best configuration with NFE <= the pick's (0 and None when the pick is on the front)."""
    cheaper = [s for s in statics if s["nfe"] <= pick["nfe"] + 1e-9 and s["energy"] < pick["energy"]]
    if not cheaper:
        return 0.0, None
    best = min(cheaper, key=lambda s: s["energy"])
    return pick["energy"] - best["energy"], best


def regret_row(pick: dict, toy: dict, lam: float, arms: list[str] | None = None) -> dict:
    """Regret of a router's pick against the oracle (best mean reward on the evaluation seeds, over ``arms``)."""
    rows = [r for r in toy["static"] if arms is None or f"{r['expert']}/{r['steps']}" in arms]
    best = max(rows, key=lambda r: statistics.fmean(reward(x, lam) for x in r["runs"]))
    best_rewards = [reward(x, lam) for x in best["runs"]]
    pick_rewards = [reward(x, lam) for x in pick["runs"]]
    diffs = [b - p for b, p in zip(best_rewards, pick_rewards, strict=True)]
    regret, low, high = t_interval(diffs) if any(d != 0 for d in diffs) else (0.0, 0.0, 0.0)
    best_reward = statistics.fmean(best_rewards)
    within = bool(regret <= 0.1 * abs(best_reward) or low <= 0)
    return {"oracle": f"{best['expert']}/{best['steps']}", "oracle_reward": best_reward,
            "reward": statistics.fmean(pick_rewards), "regret": regret, "regret_low": low, "regret_high": high,
            "relative_regret": regret / abs(best_reward), "within": within}


def evaluate_targets(results: dict) -> None:
    holds = dict.fromkeys(("fast", "distilled8", "distilled4", "regret", "follows", "pareto", "regret_s",
                           "follows_s", "pareto_s"), True)
    for toy in results["toys"].values():
        ref = toy["reference"]
        fast = [r for r in toy["static"] if r["nfe_max"] <= 20 and r["energy"] <= ref["energy_max"]]
        toy["fast_matches_reference"] = [f"{r['expert']}/{r['steps']}" for r in fast]
        holds["fast"] &= bool(fast)
        distilled = [r for r in toy["static"] if r["expert"] == "distilled" and r["energy"] <= ref["energy_max"]]
        toy["distilled_matches_reference"] = [f"{r['expert']}/{r['steps']}" for r in distilled]
        holds["distilled8"] &= any(r["nfe_max"] <= 8 for r in distilled)
        holds["distilled4"] &= any(r["nfe_max"] <= 4 for r in distilled)
        for router_name, picks in toy["router"].items():
            arms = results["routers"][router_name]["arms"]
            statics = [r for r in toy["static"] if f"{r['expert']}/{r['steps']}" in arms]
            for pick in picks:
                pick.update(regret_row(pick, toy, pick["lam"], arms))
                distance, by = pareto_distance(pick, statics)
                spread = max(pick["energy_max"] - pick["energy_min"],
                             (by["energy_max"] - by["energy_min"]) if by else 0.0)
                pick["pareto_distance"], pick["pareto_spread"] = distance, spread
                pick["dominated_by"] = f"{by['expert']}/{by['steps']}" if by else None
                pick["pareto"] = "on" if by is None else ("within spread" if distance <= spread else "dominated")
            oracle = [p["oracle"] for p in picks]
            modal = [Counter(p["choices"]).most_common(1)[0][0] for p in picks]
            table = {f"{r['expert']}/{r['steps']}": r for r in toy["static"]}
            changes = []  # (oracle changes, the change matters, the router's modal pick changes)
            for i in range(len(picks) - 1):
                stay = regret_row(table[oracle[i]], toy, picks[i + 1]["lam"], arms)  # keep lambda_i's best
                changes.append((oracle[i] != oracle[i + 1], not stay["within"], modal[i] != modal[i + 1]))
            toy.setdefault("follows_lambda", {})[router_name] = {
                "oracle_changes": sum(o for o, _, _ in changes),
                "followed": sum(o and m for o, _, m in changes),
                "material_changes": sum(o and mat for o, mat, _ in changes),
                "material_followed": sum(o and mat and m for o, mat, m in changes)}
            if router_name == "bandit":
                holds["regret"] &= all(p["within"] for p in picks)
                holds["follows"] &= all(m for o, mat, m in changes if o and mat)
                holds["pareto"] &= all(p["pareto"] != "dominated" for p in picks)
            if router_name == f"bandit{SAMPLERS_ONLY}":
                holds["regret_s"] &= all(p["within"] for p in picks)
                holds["follows_s"] &= all(m for o, mat, m in changes if o and mat)
                holds["pareto_s"] &= all(p["pareto"] != "dominated" for p in picks)
    verdict = {k: "holds" if v else "falls short" for k, v in holds.items()}
    if results.get("dev"):  # development seeds: the students against DDPM-1000 only (no routers, no fast samplers)
        results["targets"] = {
            "dev: distilled student within the DDPM-1000 spread at <= 8 NFE on every toy": verdict["distilled8"],
            "dev: distilled student within the DDPM-1000 spread at <= 4 NFE on every toy": verdict["distilled4"]}
        return
    results["targets"] = {
        "reference quality at <= 20 NFE": verdict["fast"],
        "distilled student within the DDPM-1000 spread at <= 8 NFE on every toy": verdict["distilled8"],
        "stretch: distilled student within the DDPM-1000 spread at <= 4 NFE on every toy": verdict["distilled4"],
        "bandit router's reward within 10% of the best static (or the seed spread) at every lambda":
            verdict["regret"],
        "bandit router's picks change with lambda wherever the best static's change matters": verdict["follows"],
        "no bandit pick dominated beyond the seed spread (strict Pareto)": verdict["pareto"],
        "samplers only: bandit's reward within 10% of the best static (or the seed spread) at every lambda":
            verdict["regret_s"],
        "samplers only: bandit's picks change with lambda wherever the best static's change matters":
            verdict["follows_s"],
        "samplers only: no bandit pick dominated beyond the seed spread": verdict["pareto_s"],
    }


def digits_section(args) -> dict:
    """Class-conditional digits: Fréchet distance in classifier features and class agreement; one seed."""
    from trainopt.ars.diffusion import (
        SAMPLERS,
        ClassConditioned,
        NFECounter,
        NoisePredictor,
        NoisePredictorConfig,
        class_agreement,
        frechet_distance,
        load_checkpoint,
        load_digits_data,
        sample_distilled,
        save_checkpoint,
        train_ddpm,
        train_digits_classifier,
    )

    steps = 200 if args.quick else 3000
    path = args.cache_dir / f"digits-{steps}.pt"
    x_train, y_train = load_digits_data("train")
    if path.exists():
        model, meta = load_checkpoint(path)
    else:
        torch.manual_seed(0)
        model = NoisePredictor(NoisePredictorConfig(data_dim=64, hidden=256, num_classes=10))
        start = time.perf_counter()
        train_ddpm(model, x_train, y_train, steps=steps, batch_size=256, seed=0)
        meta = {"data": "digits", "steps": steps, "train_seconds": time.perf_counter() - start}
        save_checkpoint(model, path, **meta)
    # 64-D, hidden 256: a round costs ~10x a toy's, so smaller batches and fewer teacher sub-steps
    settings = {**args.distill, **({} if args.quick else DIGITS_DISTILL)}
    students, cost = cached_students("digits", model, args.cache_dir, settings, teacher_key=f"digits-{steps}",
                                     data=(x_train, y_train))
    clf = train_digits_classifier(epochs=10 if args.quick else 60)
    x_test, y_test = load_digits_data("test")
    n = 100 if args.quick else 500
    labels = torch.arange(10).repeat_interleave(n // 10)  # (n,) balanced conditions
    test_feats = clf.features(x_test)
    out = {"classifier_test_accuracy": class_agreement(clf, x_test, y_test),
           "floor_fd_train_vs_test": frechet_distance(clf.features(x_train[: len(x_test)]), test_feats),
           "n": n, "model": {"train_steps": steps, "train_seconds": meta.get("train_seconds")},
           "distill_cost": cost, "rows": []}
    configs = [(e, b) for e in EXPERTS for b in ([10] if args.quick else [10, 20, 50])]
    configs += [("distilled", k) for k in sorted(students)] + [("ddpm", 1000)]
    for expert, k in configs:
        x_T = torch.randn(n, 64, generator=torch.Generator().manual_seed(1000))
        counted = NFECounter(ClassConditioned(students[k] if expert == "distilled" else model, labels))
        start = time.perf_counter()
        if expert == "distilled":
            x = sample_distilled(counted, x_T, k)
        else:
            x = SAMPLERS[expert](counted, x_T, k, generator=torch.Generator().manual_seed(2000))
        out["rows"].append({"expert": expert, "steps": k, "nfe": counted.calls,
                            "wall_s": time.perf_counter() - start,
                            "fd": frechet_distance(clf.features(x.clamp(-1, 1)), test_feats),
                            "class_agreement": class_agreement(clf, x.clamp(-1, 1), labels)})
    return out


def write_outputs(results: dict, suffix: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for entry in results.get("routers", {}).values():
        entry.pop("router", None)  # the trained objects stay in memory only
    (RESULTS / f"diffusion_sampling{suffix}.json").write_text(json.dumps(results, indent=1, default=_plain))
    md = render_markdown(results)
    (RESULTS / f"diffusion_sampling{suffix}.md").write_text(md)
    if not suffix:
        write_doc_block(DOC, md, "diffusion_sampling")
    if not results.get("dev"):
        plot_pareto(results, RESULTS / f"diffusion_pareto{suffix}.png")
    console.print(md)
    for target, verdict in results["targets"].items():
        console.print(f"target '{target}': {verdict}")


def _plain(value):
    """numpy scalars (from scipy) as Python numbers."""
    return value.item() if hasattr(value, "item") else str(value)


def _cost(toy: dict, row: dict) -> str:
    if row["expert"] != "distilled":
        return "-"
    c = toy["distill_cost"]
    return f"{c['iterations']} it, {c['seconds']:.0f} s ({c['rounds']} rounds)"


def _ode_gaps(toy: dict) -> str:
    """Each student's energy minus heun/50's (the teacher's ODE), paired by seed: what distillation loses."""
    ode = next(r for r in toy["static"] if (r["expert"], r["steps"]) == ("heun", 50))
    parts = []
    for r in toy["static"]:
        if r["expert"] == "distilled":
            gaps = [a["energy"] - b["energy"] for a, b in zip(r["runs"], ode["runs"], strict=True)]
            mean, low, high = t_interval(gaps)
            parts.append(f"distilled/{r['steps']} {mean:+.5f} [{low:+.5f}, {high:+.5f}]")
    return ("Energy gap to heun/50 (the teacher's ODE), mean over seeds with its 90% t-interval: "
            + "; ".join(parts) + ".")


def _distill_text(settings: dict) -> str:
    """The settings a reader needs: batch, iterations per round, round-1 teacher sub-steps, and any extras."""
    text = (f"batch {settings['batch_size']}, {settings['iterations']} per round, {settings['teacher_substeps']} "
            f"teacher sub-steps in round 1")
    extras = {k: v for k, v in settings.items() if k not in
              {"batch_size", "iterations", "teacher_substeps", "start_steps", "final_steps", "lr", "seed"}}
    return text + "".join(f", {k} {v}" for k, v in extras.items())


def render_markdown(results: dict) -> str:
    seeds = results["eval_seeds"]
    if results.get("dev"):
        lines = [f"Development seeds {seeds} (x_T from generator 1000+s, reference data from 3000+s): the "
                 f"students' settings are chosen here, never on the evaluation seeds. Distillation settings "
                 f"over route.py's: {results['args']['distill'] or 'none'}.", ""]
    else:
        lines = [f"Evaluation seeds {seeds} (x_T from generator 1000+s, reference data from 3000+s); the routers "
                 f"were trained on a development noise pool (generator seed 0) and the students on training data "
                 f"only, with settings chosen on development seeds (--dev, seeds {DEV_SEED0}..): nothing was "
                 f"trained or selected on the evaluation seeds.", ""]
    for name, toy in results["toys"].items():
        fl, ref, recipe = toy["floor"], toy["reference"], toy["model"]
        ema = f", EMA of the weights (decay {recipe['ema_decay']:g})" if recipe["ema_decay"] else ""
        dc = toy["distill_cost"]
        lines += [f"### {name}", "",
                  f"Model: {recipe['train_steps']} training steps{ema}. Distilled students: progressive distillation "
                  f"{max(dc['steps'])} -> {min(dc['steps'])} steps, {dc['rounds']} rounds, {dc['iterations']} "
                  f"iterations ({_distill_text(dc['settings'])}), {dc['seconds']:.0f} s.", "",
                  f"Data-vs-data floor (N = {results['args']['n']}): energy {fl['energy']:.4f}, "
                  f"MMD {fl['mmd']:.4f}, SW {fl['swd']:.4f}, off-mode {fl['off_mode']:.3f}. "
                  f"DDPM 1000 steps over {ref['seeds']} seeds: energy {ref['energy']:.4f} "
                  f"(min {ref['energy_min']:.4f}, max {ref['energy_max']:.4f}).", "",
                  "| sampler | steps | NFE | energy (min-max) | MMD | SW | off-mode | wall s | extra training |",
                  "|---|---:|---:|---|---:|---:|---:|---:|---|"]
        for r in [*toy["static"], ref]:
            lines.append(f"| {r['expert']} | {r['steps']} | {r['nfe']:.0f} | {r['energy']:.4f} "
                         f"({r['energy_min']:.4f}-{r['energy_max']:.4f}) | {r['mmd']:.4f} | {r['swd']:.4f} | "
                         f"{r['off_mode']:.3f} | {r['wall_s']:.2f} | {_cost(toy, r)} |")
        if results.get("dev"):
            lines += ["", f"Distilled students within the DDPM-1000 spread: "
                          f"{', '.join(toy['distilled_matches_reference']) or 'none'}.", "", _ode_gaps(toy), ""]
            continue
        lines += ["", f"<= 20 NFE configurations within the DDPM-1000 spread: "
                      f"{', '.join(toy['fast_matches_reference']) or 'none'}; distilled students within it: "
                      f"{', '.join(toy['distilled_matches_reference']) or 'none'}.", "",
                  "Router regret per lambda (reward = -energy - lambda NFE / 1000, mean over the evaluation seeds; "
                  "regret = best static's reward - the router's, with its 90% t-interval over seeds; "
                  "Pareto distance = energy gap to the best configuration with no more NFE).", "",
                  "| router | lambda | picks | NFE | energy | reward | best static (reward) | regret [90% CI] | "
                  "rel. regret | ok | Pareto |",
                  "|---|---:|---|---:|---:|---:|---|---|---:|---|---|"]
        for router_name, picks in toy["router"].items():
            for p in picks:
                pareto = p["pareto"] if p["dominated_by"] is None else (
                    f"{p['pareto']}: {p['pareto_distance']:.4f} from {p['dominated_by']} "
                    f"(spread {p['pareto_spread']:.4f})")
                picks_text = ", ".join(f"{c} x{k}" if k > 1 else c for c, k in Counter(p["choices"]).items())
                lines.append(f"| {router_name} | {p['lam']:g} | {picks_text} | {p['nfe']:.0f} | {p['energy']:.4f} | "
                             f"{p['reward']:.4f} | {p['oracle']} ({p['oracle_reward']:.4f}) | {p['regret']:.4f} "
                             f"[{p['regret_low']:.4f}, {p['regret_high']:.4f}] | {100 * p['relative_regret']:.0f}% | "
                             f"{'yes' if p['within'] else 'no'} | {pareto} |")
        follows = "; ".join(f"{r}: {v['followed']} of {v['oracle_changes']} ({v['material_followed']} of "
                            f"{v['material_changes']} that matter)" for r, v in toy["follows_lambda"].items())
        lines += ["", f"Picks that change where the best static configuration changes between neighbouring lambdas "
                      f"(a change matters when keeping the previous lambda's best would miss the 10%-or-spread "
                      f"target): {follows}.", ""]
    if results.get("dev"):
        return "\n".join(lines + [f"- {t}: **{v}**" for t, v in results["targets"].items()]) + "\n"
    lines += ["### Which router, and why", "", "| router | toy | lambdas within 10% (or the seed spread) | "
              "worst relative regret | mean relative regret | distinct picks | measured runs to train | "
              "training s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for router_name, entry in results["routers"].items():
        for name, toy in results["toys"].items():
            picks = toy["router"][router_name]
            rel = [p["relative_regret"] for p in picks]
            distinct = len({c for p in picks for c in p["choices"]})
            lines.append(f"| {router_name} | {name} | {sum(p['within'] for p in picks)} of {len(picks)} | "
                         f"{100 * max(rel):.0f}% | {100 * statistics.fmean(rel):.0f}% | {distinct} | "
                         f"{entry['measured_runs']} | {entry['seconds']:.0f} |")
    lines.append("")
    parts = []
    for k, v in results["routers"].items():
        if "pulls" in v:
            parts.append(f"{k} {v['pulls']} measurements (4 per arm, then racing up to 8; common random numbers), "
                         f"{v['seconds']:.0f} s")
        else:
            parts.append(f"{k} {v['iterations']} iterations x 32 draws, {v['measured_runs']} distinct runs, "
                         f"{v['seconds']:.0f} s, mean reward {v['mean_reward_first_10']:.4f} (first 10) -> "
                         f"{v['mean_reward_last_10']:.4f} (last 10)")
    lines += [f"Router training (development pool, {results['args']['router_n']} points per measurement, all toys "
              f"together): " + "; ".join(parts) + ".", ""]
    if "digits" in results:
        dg = results["digits"]
        dc = dg["distill_cost"]
        lines += ["### digits (class-conditional, 64-D)", "",
                  f"Fréchet distance in the features of an MLP classifier (test accuracy "
                  f"{dg['classifier_test_accuracy']:.3f}) to the test split; floor (train vs test images): "
                  f"{dg['floor_fd_train_vs_test']:.3f}. {dg['n']} samples, {dg['n'] // 10} per class; "
                  f"samples clamped to the pixel range [-1, 1] before scoring. One seed. Students: "
                  f"{dc['rounds']} rounds, {dc['iterations']} iterations (batch {dc['settings']['batch_size']}, "
                  f"{dc['settings']['teacher_substeps']} teacher sub-steps in round 1), {dc['seconds']:.0f} s.", "",
                  "| sampler | steps | NFE | FD | class agreement | wall s |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['expert']} | {r['steps']} | {r['nfe']} | {r['fd']:.3f} | {r['class_agreement']:.3f} "
                  f"| {r['wall_s']:.2f} |" for r in dg["rows"]]
        lines.append("")
    lines += [f"- {t}: **{v}**" for t, v in results["targets"].items()]
    return "\n".join(lines) + "\n"


def plot_pareto(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    toys = results["toys"]
    fig, axes = plt.subplots(1, len(toys), figsize=(6 * len(toys), 4.5), squeeze=False)
    for ax, (name, toy) in zip(axes[0], toys.items(), strict=True):
        for expert in [*EXPERTS, "distilled"]:
            rows = [r for r in toy["static"] if r["expert"] == expert]
            ax.plot([r["nfe"] for r in rows], [r["energy"] for r in rows], "o-", label=expert, ms=4,
                    lw=2.5 if expert == "distilled" else 1.2)
        ref = toy["reference"]
        ax.axhspan(ref["energy_min"], ref["energy_max"], color="grey", alpha=0.3, label="DDPM 1000 (seed spread)")
        ax.axhline(toy["floor"]["energy"], color="k", ls="--", lw=1, label="data-vs-data floor")
        points: dict[tuple, list] = {}  # one label per distinct bandit point: "λ = 0.01, 0.1"
        for p in toy["router"]["bandit"]:
            points.setdefault((p["nfe"], p["energy"]), []).append(f"{p['lam']:g}")
        for (nfe, energy), lams in points.items():
            ax.plot(nfe, energy, "*", color="red", ms=14, mec="k")
            ax.annotate(f"λ = {', '.join(lams)}", (nfe, energy), textcoords="offset points", xytext=(8, 8),
                        fontsize=8, color="red")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("NFE (model calls)")
        ax.set_ylabel("energy distance to fresh data")
        ax.set_title(f"{name}: quality vs cost (red stars: bandit router)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
