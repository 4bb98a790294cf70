"""Diffusion sampling benchmark: every sampler expert at 5..100 steps, the 1000-step DDPM reference,
and the learned router at several lambda, on 2-D toys. One process, one run, shared seeds.

For each toy: train the DDPM (cached in a temp dir), measure each (expert, steps) on the same
seeds (same x_T per seed, same fresh reference data per seed): energy distance (primary), RBF MMD,
sliced Wasserstein, off-mode fraction, NFE (counted model calls) and wall time; then train one
router by REINFORCE on all toys and let it pick per request at each lambda.

Targets:
  1. some configuration with NFE <= 20 reaches the 1000-step DDPM quality: its mean energy
     distance is <= the worst (max) of the DDPM-1000 seeds.
  2. the router's picks lie on or next to the Pareto front: no static configuration has
     NFE <= the pick's and an energy distance lower by more than the DDPM-1000 seed spread.

    python3 bench/diffusion_sampling.py            # full run (~20-30 min on a busy 2-core box)
    python3 bench/diffusion_sampling.py --quick    # smoke run, writes *_quick outputs
    # re-measure one toy with a longer-trained model, keep the other toys' rows and digits from the JSON
    python3 bench/diffusion_sampling.py --update --data 8gaussians --toy-train-steps 8gaussians=12000
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from trainopt.ars.diffusion import (
    EXPERTS,
    SAMPLERS,
    NFECounter,
    NoisePredictor,
    NoisePredictorConfig,
    Request,
    Router,
    ToySamplingEnv,
    load_checkpoint,
    quality_floor,
    request_features,
    sample_toy,
    save_checkpoint,
    toy_quality,
    train_ddpm,
    train_router,
)

RESULTS = Path(__file__).parent / "results"
console = Console()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny smoke run (1 toy, small N, short training)")
    p.add_argument("--data", nargs="+", default=["moons", "8gaussians"], help="toys to benchmark")
    p.add_argument("--n", type=int, default=2000, help="samples per measurement (and reference size)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per configuration (>= 3 for the spread)")
    p.add_argument("--train-steps", type=int, default=3000, help="DDPM training steps per toy")
    p.add_argument("--toy-train-steps", nargs="*", default=["8gaussians=12000"], metavar="NAME=STEPS",
                   help="per-toy override of --train-steps (3000 steps underfit 8 gaussians' modes)")
    p.add_argument("--toy-ema", nargs="*", default=["8gaussians=0.999"], metavar="NAME=DECAY",
                   help="sample that toy's model from an EMA of its weights with this decay, e.g. 8gaussians=0.999")
    p.add_argument("--update", action="store_true",
                   help="re-measure only the toys in --data; keep the other toys' rows and the digits section "
                        "from the saved JSON; retrain the router on all toys and re-measure all its picks")
    p.add_argument("--router-iterations", type=int, default=400, help="REINFORCE iterations (16 requests each)")
    p.add_argument("--lams", type=float, nargs="+", default=[0.01, 0.1, 0.5, 2.0, 10.0, 30.0],
                   help="lambda values at which the router is evaluated")
    p.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "trainopt-bench-diffusion",
                   help="where trained models are cached (outside the repository)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no-digits", action="store_true", help="skip the class-conditional digits section")
    p.add_argument("--rerender", action="store_true",
                   help="rewrite the markdown and plot from the saved JSON without measuring anything")
    args = p.parse_args()
    if args.quick:
        args.toy_train_steps, args.toy_ema = [], []
        args.data, args.n, args.train_steps, args.router_iterations = ["moons"], 400, 400, 20
        args.lams = [0.1, 10.0]
    if args.seeds < 1 or args.n < 2:
        raise ValueError(f"need seeds >= 1 and n >= 2 but got {args.seeds=}, {args.n=}")
    args.toy_train_steps = {k: int(v) for k, v in _name_values(args.toy_train_steps, "--toy-train-steps").items()}
    args.toy_ema = {k: float(v) for k, v in _name_values(args.toy_ema, "--toy-ema").items()}
    if any(s <= 0 for s in args.toy_train_steps.values()) or any(not 0 < d < 1 for d in args.toy_ema.values()):
        raise ValueError(f"need steps > 0 and 0 < decay < 1 but got {args.toy_train_steps=}, {args.toy_ema=}")
    return args


def _name_values(items: list[str], flag: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in items]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"{flag} takes NAME=VALUE items but got {items=}")
    return dict(pairs)


def model_recipe(args, name: str) -> dict:
    """How toy ``name``'s model is trained: steps and the EMA decay (0 = the raw weights)."""
    return {"train_steps": args.toy_train_steps.get(name, args.train_steps), "ema_decay": args.toy_ema.get(name, 0.0)}


def get_model(name: str, steps: int, cache_dir: Path, ema_decay: float = 0.0) -> NoisePredictor:
    """Train (or load the cached) DDPM for toy ``name``; with ``ema_decay`` > 0 return the EMA weights
    w_ema <- decay * w_ema + (1 - decay) * w after every step (the training run itself is the same)."""
    path = cache_dir / (f"{name}-{steps}.pt" if not ema_decay else f"{name}-{steps}-ema{ema_decay:g}.pt")
    if path.exists():
        return load_checkpoint(path)[0]
    torch.manual_seed(0)
    model = NoisePredictor(NoisePredictorConfig(data_dim=2))
    ema = copy.deepcopy(model)

    def update_ema(step: int, loss: float) -> None:
        with torch.no_grad():
            for w_ema, w in zip(ema.parameters(), model.parameters(), strict=True):
                w_ema.lerp_(w, 1 - ema_decay)

    data = sample_toy(name, 50_000, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    train_ddpm(model, data, steps=steps, batch_size=256, seed=0, progress=update_ema if ema_decay else None)
    console.print(f"trained {name} in {time.perf_counter() - start:.0f} s")
    if ema_decay:
        ema.eval()
        model = ema
    save_checkpoint(model, path, data=name, steps=steps, ema_decay=ema_decay)
    return model


def measure(model, name: str, expert: str, steps: int, seed: int, n: int) -> dict:
    """One sampler run on seed ``seed``'s x_T, scored against seed ``seed``'s fresh data."""
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(1000 + seed))
    counted = NFECounter(model)
    start = time.perf_counter()
    x = SAMPLERS[expert](counted, x_T, steps, generator=torch.Generator().manual_seed(2000 + seed))
    wall = time.perf_counter() - start
    reference = sample_toy(name, n, generator=torch.Generator().manual_seed(3000 + seed))
    return {"nfe": counted.calls, "wall_s": wall, **toy_quality(name, x, reference)}


def summarise(runs: list[dict]) -> dict:
    out = {"seeds": len(runs)}
    for key in ("energy", "mmd", "swd", "off_mode", "nfe", "wall_s"):
        vals = [r[key] for r in runs]
        out[key] = statistics.fmean(vals)
        out[f"{key}_min"], out[f"{key}_max"] = min(vals), max(vals)
    return out


def pareto_verdict(point: dict, statics: list[dict], tol: float) -> tuple[str, dict | None]:
    """'on' if no static config is at least as cheap and better; 'next to' if it is better by < tol."""
    better = [s for s in statics if s["nfe"] <= point["nfe"] + 1e-9 and s["energy"] < point["energy"]]
    if not better:
        return "on", None
    best = min(better, key=lambda s: s["energy"])
    return ("next to" if point["energy"] - best["energy"] <= tol else "off"), best


def main() -> None:
    args = parse_args()
    if args.rerender:
        suffix = "_quick" if args.quick else ""
        write_outputs(json.loads((RESULTS / f"diffusion_sampling{suffix}.json").read_text()), args.quick)
        return
    torch.set_num_threads(args.threads)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    budgets = [5, 10, 20] if args.quick else [5, 10, 20, 50, 100]
    seeds = list(range(args.seeds))
    results: dict = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                     "toys": {}}
    router_toys = list(args.data)
    if args.update:  # keep the other toys' measurements (same seeds, same models) and the digits section
        saved = json.loads((RESULTS / f"diffusion_sampling{'_quick' if args.quick else ''}.json").read_text())
        results["args"]["updated_toys"] = list(args.data)
        results["previous_args"] = saved["args"]
        router_toys = [*saved["toys"], *(n for n in args.data if n not in saved["toys"])]
        results["toys"] = {n: saved["toys"][n] for n in router_toys if n not in args.data}
        if "digits" in saved and not args.no_digits:
            results["digits"] = saved["digits"]
    recipes = {name: results["toys"].get(name, {}).get("model") or model_recipe(args, name) for name in router_toys}
    for name, toy in results["toys"].items():
        toy.setdefault("model", recipes[name])  # runs before per-toy recipes were recorded: the defaults
    models = {name: get_model(name, recipes[name]["train_steps"], args.cache_dir, recipes[name]["ema_decay"])
              for name in router_toys}
    total = len(seeds) * (len(args.data) * (len(EXPERTS) * len(budgets) + 1) + len(router_toys) * len(args.lams))
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("static configurations", total=total)
        for name in args.data:
            model = models[name]
            rows = []
            for expert in EXPERTS:
                for steps in budgets:
                    runs = []
                    for seed in seeds:
                        runs.append(measure(model, name, expert, steps, seed, args.n))
                        bar.advance(task)
                    rows.append({"expert": expert, "steps": steps, **summarise(runs)})
            ref_runs = []
            for seed in seeds:
                ref_runs.append(measure(model, name, "ddpm", 1000, seed, args.n))
                bar.advance(task)
            reference = {"expert": "ddpm", "steps": 1000, **summarise(ref_runs), "runs": ref_runs}
            results["toys"][name] = {"model": recipes[name], "floor": quality_floor(name, args.n), "static": rows,
                                     "reference": reference}

        bar.update(task, description="training the router")
        env = ToySamplingEnv(models, seed=0)
        router = Router()
        start = time.perf_counter()
        history = train_router(router, env.reward, env.sample_request, iterations=args.router_iterations)
        results["router_training"] = {"iterations": args.router_iterations, "measured_runs": env.measurements,
                                      "seconds": time.perf_counter() - start,
                                      "mean_reward_first_10": statistics.fmean(history[:10]),
                                      "mean_reward_last_10": statistics.fmean(history[-10:])}
        bar.update(task, description="router picks")
        for name, model in models.items():
            picks = []
            for lam in args.lams:
                runs, chosen = [], []
                for seed in seeds:
                    x_T = torch.randn(args.n, 2, generator=torch.Generator().manual_seed(1000 + seed))
                    with torch.no_grad():
                        d = router.choose(request_features(Request(name, lam, x_T)))
                    chosen.append(f"{d.expert}/{d.num_steps}")
                    runs.append(measure(model, name, d.expert, d.num_steps, seed, args.n))
                    bar.advance(task)
                picks.append({"lam": lam, "choices": chosen, **summarise(runs)})
            results["toys"][name]["router"] = picks
    if not args.no_digits and "digits" not in results:
        results["digits"] = digits_section(args)
    evaluate_targets(results)
    write_outputs(results, args.quick)


def digits_section(args) -> dict:
    """Class-conditional digits: Fréchet distance in classifier features and class agreement."""
    from trainopt.ars.diffusion import (
        ClassConditioned,
        class_agreement,
        frechet_distance,
        load_digits_data,
        train_digits_classifier,
    )

    steps = 200 if args.quick else 3000
    path = args.cache_dir / f"digits-{steps}.pt"
    x_train, y_train = load_digits_data("train")
    if path.exists():
        model = load_checkpoint(path)[0]
    else:
        torch.manual_seed(0)
        model = NoisePredictor(NoisePredictorConfig(data_dim=64, hidden=256, num_classes=10))
        train_ddpm(model, x_train, y_train, steps=steps, batch_size=256, seed=0)
        save_checkpoint(model, path, data="digits", steps=steps)
    clf = train_digits_classifier(epochs=10 if args.quick else 60)
    x_test, y_test = load_digits_data("test")
    n = 100 if args.quick else 500
    labels = torch.arange(10).repeat_interleave(n // 10)  # (n,) balanced conditions
    test_feats = clf.features(x_test)
    out = {"classifier_test_accuracy": class_agreement(clf, x_test, y_test),
           "floor_fd_train_vs_test": frechet_distance(clf.features(x_train[: len(x_test)]), test_feats),
           "n": n, "rows": []}
    configs = [(e, b) for e in EXPERTS for b in ([10] if args.quick else [10, 20, 50])] + [("ddpm", 1000)]
    for expert, steps in configs:
        x_T = torch.randn(n, 64, generator=torch.Generator().manual_seed(1000))
        counted = NFECounter(ClassConditioned(model, labels))
        start = time.perf_counter()
        x = SAMPLERS[expert](counted, x_T, steps, generator=torch.Generator().manual_seed(2000))
        out["rows"].append({"expert": expert, "steps": steps, "nfe": counted.calls,
                            "wall_s": time.perf_counter() - start,
                            "fd": frechet_distance(clf.features(x.clamp(-1, 1)), test_feats),
                            "class_agreement": class_agreement(clf, x.clamp(-1, 1), labels)})
    return out


def evaluate_targets(results: dict) -> None:
    holds_fast, holds_front = True, True
    for toy in results["toys"].values():
        ref = toy["reference"]
        tol = ref["energy_max"] - ref["energy_min"]
        fast = [r for r in toy["static"] if r["nfe_max"] <= 20 and r["energy"] <= ref["energy_max"]]
        toy["fast_matches_reference"] = [f"{r['expert']}/{r['steps']}" for r in fast]
        holds_fast &= bool(fast)
        for pick in toy["router"]:
            verdict, beaten_by = pareto_verdict(pick, toy["static"], tol)
            pick["pareto"] = verdict
            pick["dominated_by"] = f"{beaten_by['expert']}/{beaten_by['steps']}" if beaten_by else None
            # reward at this lambda vs the best static configuration's (the oracle)
            reward = lambda r, lam=pick["lam"]: -r["energy"] - lam * r["nfe"] / 1000  # noqa: E731
            best = max(toy["static"], key=reward)
            pick["reward"], pick["oracle"] = reward(pick), f"{best['expert']}/{best['steps']}"
            pick["oracle_reward"] = reward(best)
            holds_front &= verdict != "off"
    results["targets"] = {
        "reference quality at <= 20 NFE": "holds" if holds_fast else "falls short",
        "router picks on or next to the Pareto front": "holds" if holds_front else "falls short",
    }


def write_outputs(results: dict, quick: bool) -> None:
    suffix = "_quick" if quick else ""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"diffusion_sampling{suffix}.json").write_text(json.dumps(results, indent=2))
    md = render_markdown(results)
    (RESULTS / f"diffusion_sampling{suffix}.md").write_text(md)
    plot_pareto(results, RESULTS / f"diffusion_pareto{suffix}.png")
    console.print(md)
    for target, verdict in results["targets"].items():
        console.print(f"target '{target}': {verdict}")


def render_markdown(results: dict) -> str:
    lines = []
    for name, toy in results["toys"].items():
        fl, ref = toy["floor"], toy["reference"]
        recipe = toy.get("model", {"train_steps": results["args"]["train_steps"], "ema_decay": 0.0})
        ema = f", EMA of the weights (decay {recipe['ema_decay']:g})" if recipe["ema_decay"] else ""
        lines += [f"### {name}", "", f"Model: {recipe['train_steps']} training steps{ema}.", "",
                  f"Data-vs-data floor (N = {results['args']['n']}): energy {fl['energy']:.4f}, "
                  f"MMD {fl['mmd']:.4f}, SW {fl['swd']:.4f}, off-mode {fl['off_mode']:.3f}. "
                  f"DDPM 1000 steps over {ref['seeds']} seeds: energy {ref['energy']:.4f} "
                  f"(min {ref['energy_min']:.4f}, max {ref['energy_max']:.4f}).", "",
                  "| sampler | steps | NFE | energy | MMD | SW | off-mode | wall s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in [*toy["static"], ref]:
            lines.append(f"| {r['expert']} | {r['steps']} | {r['nfe']:.0f} | {r['energy']:.4f} | {r['mmd']:.4f} "
                         f"| {r['swd']:.4f} | {r['off_mode']:.3f} | {r['wall_s']:.2f} |")
        lines += ["", f"<= 20 NFE configurations within the DDPM-1000 spread: "
                      f"{', '.join(toy['fast_matches_reference']) or 'none'}", "",
                  "| router lambda | picks (per seed) | NFE | energy | MMD | wall s | Pareto | reward | "
                  "best static (reward) |",
                  "|---:|---|---:|---:|---:|---:|---|---:|---|"]
        for p in toy["router"]:
            pareto = p["pareto"] + (f" (beaten by {p['dominated_by']})" if p["dominated_by"] else "")
            lines.append(f"| {p['lam']} | {', '.join(sorted(set(p['choices'])))} | {p['nfe']:.0f} | "
                         f"{p['energy']:.4f} | {p['mmd']:.4f} | {p['wall_s']:.2f} | {pareto} | {p['reward']:.4f} | "
                         f"{p['oracle']} ({p['oracle_reward']:.4f}) |")
        lines.append("")
    if "digits" in results:
        dg = results["digits"]
        lines += ["### digits (class-conditional, 64-D)", "",
                  f"Fréchet distance in the features of an MLP classifier (test accuracy "
                  f"{dg['classifier_test_accuracy']:.3f}) to the test split; floor (train vs test images): "
                  f"{dg['floor_fd_train_vs_test']:.3f}. {dg['n']} samples, {dg['n'] // 10} per class; "
                  f"samples clamped to the pixel range [-1, 1] before scoring. One seed.", "",
                  "| sampler | steps | NFE | FD | class agreement | wall s |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['expert']} | {r['steps']} | {r['nfe']} | {r['fd']:.3f} | {r['class_agreement']:.3f} "
                  f"| {r['wall_s']:.2f} |" for r in dg["rows"]]
        lines.append("")
    if "updated_toys" in results["args"]:
        kept = [n for n in results["toys"] if n not in results["args"]["updated_toys"]]
        lines += [f"Partial rerun (`--update`): {', '.join(results['args']['updated_toys'])} re-measured with the "
                  f"model above; {', '.join(kept + (['digits'] if 'digits' in results else []))} rows kept from the "
                  f"previous full run (same models, same seeds); the router was retrained on all toys and all its "
                  f"picks re-measured.", ""]
    rt = results["router_training"]
    lines += [f"Router: REINFORCE, {rt['iterations']} iterations x 16 requests, {rt['measured_runs']} distinct "
              f"measured runs, {rt['seconds']:.0f} s; mean reward {rt['mean_reward_first_10']:.4f} (first 10) -> "
              f"{rt['mean_reward_last_10']:.4f} (last 10).", ""]
    lines += [f"- {t}: **{v}**" for t, v in results["targets"].items()]
    return "\n".join(lines) + "\n"


def plot_pareto(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    toys = results["toys"]
    fig, axes = plt.subplots(1, len(toys), figsize=(6 * len(toys), 4.5), squeeze=False)
    for ax, (name, toy) in zip(axes[0], toys.items(), strict=True):
        for expert in EXPERTS:
            rows = [r for r in toy["static"] if r["expert"] == expert]
            ax.plot([r["nfe"] for r in rows], [r["energy"] for r in rows], "o-", label=expert, ms=4)
        ref = toy["reference"]
        ax.axhspan(ref["energy_min"], ref["energy_max"], color="grey", alpha=0.3, label="DDPM 1000 (seed spread)")
        ax.axhline(toy["floor"]["energy"], color="k", ls="--", lw=1, label="data-vs-data floor")
        points: dict[tuple, list] = {}  # one label per distinct router point: "λ = 0.01, 0.1, 0.5"
        for p in toy["router"]:
            points.setdefault((p["nfe"], p["energy"]), []).append(f"{p['lam']:g}")
        for (nfe, energy), lams in points.items():
            ax.plot(nfe, energy, "*", color="red", ms=14, mec="k")
            ax.annotate(f"λ = {', '.join(lams)}", (nfe, energy), textcoords="offset points", xytext=(8, 8),
                        fontsize=8, color="red")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("NFE (model calls)")
        ax.set_ylabel("energy distance to fresh data")
        ax.set_title(f"{name}: quality vs cost (red stars: router)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
