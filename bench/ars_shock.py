"""ARS shock benchmark: a character GPT on pydoc_data.topics through three scenarios, four optimizers.

Scenarios: clean; shift (the training text is reversed from 30% of the steps on, and validation is on
the reversed held-out text); spike (the learning rate is multiplied by 10 for a few steps at 50%).
Contenders, same initial weights and same batches on every seed: AdamW, ARS over AdamW,
schedule-free AdamW (schedulefree.AdamWScheduleFree; train()/eval() switched around evaluation) and
Prodigy (prodigyopt.Prodigy, lr = 1.0). All contenders advance in lockstep, one step each in a rotating
order, so CPU contention from other processes hits all of them alike; time/step is the median
per-step wall time (forward, backward, optimizer step, one ``loss.item()``) as a ratio to AdamW's.

Metrics per run: final validation loss; steps to recover = steps from the shock's onset until the mean
training loss over the next 5 steps is back under the pre-shock running mean (EMA, momentum 0.1, of the
training loss before the shock), scanned from the end of the shock; peak training loss after the
shock; divergence = a non-finite training loss (the run stops there).

    python3 bench/ars_shock.py            # the default run (12 min on 2 cores shared with other jobs)
    python3 bench/ars_shock.py --quick    # a smoke run (about a minute on an idle machine)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from trainopt.ars import ARSOptimizer
from trainopt.tools.workloads.char_gpt import CharGPT, CharGPTConfig, char_windows, encode_text, pydoc_text

CONTENDERS = ("adamw", "ars", "schedulefree", "prodigy")
SCENARIOS = ("clean", "shift", "spike")
RECOVERY_EMA = 0.1  # momentum of the pre-shock running mean of the training loss
RECOVERY_AHEAD = 5  # steps averaged when testing "back under the pre-shock mean"


@dataclass
class Settings:
    steps: int
    seeds: int
    batch_size: int
    lr: float
    weight_decay: float
    shift_at: float
    spike_at: float
    spike_steps: int
    spike_factor: float
    n_layer: int
    n_embd: int
    block_size: int
    val_windows: int
    threads: int
    ars_kwargs: dict[str, Any]


# ---- data ---------------------------------------------------------------------------------------------
def build_data(s: Settings) -> dict[str, Any]:
    """Forward and reversed train/val windows; the last 10% of the text is held out."""
    tokens, vocab = encode_text(pydoc_text())
    n_train = int(0.9 * tokens.numel())
    train, val = tokens[:n_train], tokens[n_train:]
    return {
        "vocab_size": len(vocab),
        "train": char_windows(train, s.block_size),
        "train_rev": char_windows(train.flip(0), s.block_size),
        "val": char_windows(val, s.block_size)[: s.val_windows],
        "val_rev": char_windows(val.flip(0), s.block_size)[: s.val_windows],
    }


def lm_loss(model: torch.nn.Module, windows: torch.Tensor) -> torch.Tensor:
    logits = model(windows[:, :-1])  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), windows[:, 1:].reshape(-1))


# ---- contenders ---------------------------------------------------------------------------------------
def make_optimizer(name: str, model: torch.nn.Module, s: Settings) -> torch.optim.Optimizer:
    params = list(model.parameters())
    if name == "adamw":
        return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    if name == "ars":
        return ARSOptimizer(params, lr=s.lr, base="adamw", weight_decay=s.weight_decay, **s.ars_kwargs)
    if name == "schedulefree":
        import schedulefree

        return schedulefree.AdamWScheduleFree(params, lr=s.lr, weight_decay=s.weight_decay)
    if name == "prodigy":
        import prodigyopt

        with contextlib.redirect_stdout(io.StringIO()):  # Prodigy prints a note on every construction
            return prodigyopt.Prodigy(params, lr=1.0, weight_decay=s.weight_decay)
    raise ValueError(f"unknown contender {name=}; known: {CONTENDERS}")


def set_mode(name: str, opt: torch.optim.Optimizer, train: bool) -> None:
    """Schedule-free keeps two iterates: train() before steps, eval() before evaluation."""
    if name == "schedulefree":
        opt.train() if train else opt.eval()


# ---- one scenario, one seed, all contenders in lockstep ---------------------------------------------
def shock_window(scenario: str, s: Settings) -> tuple[int, int] | None:
    """(onset, end) step of the shock; the shift never ends, so its end is its onset."""
    if scenario == "shift":
        onset = int(s.shift_at * s.steps)
        return onset, onset
    if scenario == "spike":
        onset = int(s.spike_at * s.steps)
        return onset, onset + s.spike_steps
    return None


def run_seed(scenario: str, seed: int, data: dict[str, Any], s: Settings, contenders, advance) -> list[dict]:
    torch.manual_seed(seed)
    config = CharGPTConfig(
        vocab_size=data["vocab_size"], block_size=s.block_size, n_layer=s.n_layer, n_head=4, n_embd=s.n_embd
    )
    init = CharGPT(config)
    order = torch.randint(
        0, data["train"].size(0), (s.steps, s.batch_size), generator=torch.Generator().manual_seed(seed)
    )
    shock = shock_window(scenario, s)
    runs = []
    for name in contenders:
        model = copy.deepcopy(init)
        opt = make_optimizer(name, model, s)
        set_mode(name, opt, train=True)
        runs.append(
            {
                "name": name,
                "model": model,
                "opt": opt,
                "losses": [],
                "times": [],
                "diverged": False,
                "damped_steps": 0,
                "resonance_events": 0,
            }
        )
    for t in range(s.steps):
        shifted = scenario == "shift" and t >= shock[0]
        batch = (data["train_rev"] if shifted else data["train"])[order[t] % data["train_rev"].size(0)]
        spiking = scenario == "spike" and shock[0] <= t < shock[1]
        k = t % len(runs)
        for run in runs[k:] + runs[:k]:  # rotate who goes first
            if run["diverged"]:
                continue
            opt = run["opt"]
            if spiking:
                scheduled = [g["lr"] for g in opt.param_groups]
                for g in opt.param_groups:
                    g["lr"] = g["lr"] * s.spike_factor
            start = time.perf_counter()
            loss = lm_loss(run["model"], batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if isinstance(opt, ARSOptimizer):
                opt.step(loss=loss)
            else:
                opt.step()
            value = loss.item()
            run["times"].append(time.perf_counter() - start)
            if spiking:
                for g, lr in zip(opt.param_groups, scheduled, strict=True):
                    g["lr"] = lr
            if isinstance(opt, ARSOptimizer):
                run["damped_steps"] += opt.surprise_gate < 1.0
                run["resonance_events"] = opt.resonance_events
            run["losses"].append(value)
            if not math.isfinite(value):
                run["diverged"] = True
        advance()
    val = data["val_rev"] if scenario == "shift" else data["val"]
    results = []
    for run in runs:
        set_mode(run["name"], run["opt"], train=False)
        run["model"].eval()
        with torch.no_grad():
            val_loss = lm_loss(run["model"], val).item() if not run["diverged"] else float("nan")
        results.append(
            {
                "scenario": scenario,
                "seed": seed,
                "contender": run["name"],
                "final_val_loss": val_loss,
                "diverged": run["diverged"],
                **recovery(run["losses"], shock),
                "median_step_s": statistics.median(run["times"]),
                "step_times_s": run["times"],
                "damped_steps": run["damped_steps"],
                "resonance_events": run["resonance_events"],
                "train_loss": [round(x, 5) for x in run["losses"]],
            }
        )
    return results


def recovery(losses: list[float], shock: tuple[int, int] | None) -> dict[str, Any]:
    """Pre-shock running mean, steps to recover (None = not within the run), peak loss after the shock."""
    if shock is None:
        return {"pre_shock_mean": None, "steps_to_recover": None, "peak_after_shock": None}
    onset, end = shock
    level = losses[0]
    for x in losses[1:onset]:
        level += RECOVERY_EMA * (x - level)
    after = losses[onset:]
    peak = max(after) if after and all(math.isfinite(x) for x in after) else float("inf")
    steps = None
    for t in range(end, len(losses) - RECOVERY_AHEAD + 1):
        ahead = losses[t : t + RECOVERY_AHEAD]
        if all(math.isfinite(x) for x in ahead) and sum(ahead) / RECOVERY_AHEAD <= level:
            steps = t - onset
            break
    return {"pre_shock_mean": level, "steps_to_recover": steps, "peak_after_shock": peak}


# ---- aggregation ----------------------------------------------------------------------------------------
def _steps_text(v: float | None) -> str:
    return "not recovered" if v is None or v == math.inf else f"{v:g}"


def _median_steps(values: list[int | None]) -> float:
    return statistics.median(math.inf if v is None else v for v in values)


def aggregate(records: list[dict], contenders, scenarios) -> dict[str, Any]:
    times = {c: [t for r in records if r["contender"] == c for t in r["step_times_s"]] for c in contenders}
    base_time = statistics.median(times["adamw"])
    rows = []
    for scenario in scenarios:
        for c in contenders:
            rs = [r for r in records if r["scenario"] == scenario and r["contender"] == c]
            vals = [r["final_val_loss"] for r in rs if math.isfinite(r["final_val_loss"])]
            rows.append(
                {
                    "scenario": scenario,
                    "contender": c,
                    "val_loss_mean": statistics.fmean(vals) if vals else float("nan"),
                    "val_loss_sd": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                    "steps_to_recover": [r["steps_to_recover"] for r in rs],
                    "median_steps_to_recover": _median_steps([r["steps_to_recover"] for r in rs])
                    if scenario != "clean"
                    else None,
                    "median_peak_after_shock": statistics.median(r["peak_after_shock"] for r in rs)
                    if scenario != "clean"
                    else None,
                    "divergences": sum(r["diverged"] for r in rs),
                    "runs": len(rs),
                    "time_per_step_ratio": statistics.median(times[c]) / base_time,
                    "damped_steps_mean": statistics.fmean(r["damped_steps"] for r in rs) if c == "ars" else None,
                }
            )
    return {"rows": rows, "adamw_median_step_s": base_time}


def targets(records: list[dict], agg: dict, scenarios) -> list[dict[str, Any]]:
    def row(scenario, c):
        return next(r for r in agg["rows"] if r["scenario"] == scenario and r["contender"] == c)

    out = []
    bad = [
        (r["scenario"], r["seed"])
        for r in records
        if r["contender"] == "ars"
        and r["diverged"]
        and not any(
            q["diverged"]
            for q in records
            if q["contender"] == "adamw" and (q["scenario"], q["seed"]) == (r["scenario"], r["seed"])
        )
    ]
    out.append(
        {
            "target": "ARS never diverges where AdamW does not",
            "holds": not bad,
            "measured": f"ARS-only divergences: {bad or 'none'}",
        }
    )
    for scenario in ("shift", "spike"):
        if scenario not in scenarios:
            continue
        a, b = (
            row(scenario, "ars")["median_steps_to_recover"],
            row(scenario, "adamw")["median_steps_to_recover"],
        )
        out.append(
            {
                "target": f"ARS recovers in fewer steps than AdamW ({scenario}, median seed)",
                "holds": a < b,
                "measured": f"ARS {_steps_text(a)} vs AdamW {_steps_text(b)} steps",
            }
        )
    if "clean" in scenarios:
        a, b = row("clean", "ars")["val_loss_mean"], row("clean", "adamw")["val_loss_mean"]
        out.append(
            {
                "target": "clean final val loss within 1% of AdamW",
                "holds": a <= 1.01 * b,
                "measured": f"ARS {a:.4f} vs AdamW {b:.4f} ({100 * (a / b - 1):+.2f}%)",
            }
        )
    ratio = row(scenarios[0], "ars")["time_per_step_ratio"]
    out.append(
        {
            "target": "step overhead <= 5%",
            "holds": ratio <= 1.05,
            "measured": f"ARS/AdamW time per step {ratio:.3f}",
        }
    )
    return out


def markdown(agg: dict, tgt: list[dict], s: Settings, command: str) -> str:
    lines = [
        f"Command: `{command}`  ",
        f"{s.steps} steps, {s.seeds} seeds, batch {s.batch_size}x{s.block_size} chars, "
        f"{s.n_layer} layers x {s.n_embd} wide, lr {s.lr:g} (Prodigy lr 1.0), {s.threads} torch thread(s); "
        f"AdamW median step {1000 * agg['adamw_median_step_s']:.1f} ms"
        + (f"; ARS arguments {s.ars_kwargs}." if s.ars_kwargs else "."),
        "",
        "| scenario | optimizer | final val loss (mean ± sd) | steps to recover (median; per seed) "
        "| peak loss after shock (median) | divergences | time/step vs AdamW |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in agg["rows"]:
        per_seed = ", ".join(_steps_text(v) for v in r["steps_to_recover"])
        median = _steps_text(r["median_steps_to_recover"])
        recover = "–" if r["scenario"] == "clean" else f"{median}; {per_seed}"
        val = f"{r['val_loss_mean']:.4f} ± {r['val_loss_sd']:.4f}"
        peak = "–" if r["median_peak_after_shock"] is None else f"{r['median_peak_after_shock']:.3f}"
        lines.append(
            f"| {r['scenario']} | {r['contender']} | {val} | {recover} "
            f"| {peak} | {r['divergences']}/{r['runs']} | {r['time_per_step_ratio']:.3f} |"
        )
    lines += ["", "| target | result | measured |", "|---|---|---|"]
    for t in tgt:
        lines.append(f"| {t['target']} | {'holds' if t['holds'] else 'falls short'} | {t['measured']} |")
    return "\n".join(lines) + "\n"


def finite_or_none(value: Any) -> Any:
    """JSON without NaN/Infinity: non-finite floats become null, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    os.replace(tmp, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, 120 steps, a 1-layer 32-wide model")
    p.add_argument("--steps", type=int, default=240, help="training steps per run (default 240)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per scenario, >= 3 for the real run (default 3)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per batch (default 16)")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate of AdamW, ARS, schedule-free (default 3e-3)")
    p.add_argument("--weight-decay", type=float, default=0.01, help="decoupled weight decay, all (default 0.01)")
    p.add_argument("--shift-at", type=float, default=0.3, help="fraction of steps where the text reverses")
    p.add_argument("--spike-at", type=float, default=0.5, help="fraction of steps where the LR spike starts")
    p.add_argument("--spike-steps", type=int, default=5, help="length of the LR spike in steps (default 5)")
    p.add_argument("--spike-factor", type=float, default=10.0, help="LR multiplier during the spike (default 10)")
    p.add_argument("--n-layer", type=int, default=2, help="transformer blocks (default 2)")
    p.add_argument("--n-embd", type=int, default=48, help="model width (default 48)")
    p.add_argument("--block-size", type=int, default=64, help="context length in characters (default 64)")
    p.add_argument("--val-windows", type=int, default=256, help="held-out windows for the final val loss")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: stable timings)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma list of clean,shift,spike")
    p.add_argument(
        "--ars-kwargs", default="{}", help="JSON of extra ARSOptimizer arguments, e.g. '{\"surprise_threshold\": 1.0}'"
    )
    p.add_argument("--out", default="bench/results", help="folder for ars_shock.json and ars_shock.md")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.n_layer, args.n_embd = min(args.seeds, 2), 120, 1, 32
    return args


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    args = parse_args(argv)
    scenarios = tuple(x for x in args.scenarios.split(",") if x)
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenarios {unknown}; known: {SCENARIOS}")
    s = Settings(
        steps=args.steps,
        seeds=args.seeds,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        shift_at=args.shift_at,
        spike_at=args.spike_at,
        spike_steps=args.spike_steps,
        spike_factor=args.spike_factor,
        n_layer=args.n_layer,
        n_embd=args.n_embd,
        block_size=args.block_size,
        val_windows=args.val_windows,
        threads=args.threads,
        ars_kwargs=json.loads(args.ars_kwargs),
    )
    torch.set_num_threads(s.threads)
    command = "python3 bench/ars_shock.py " + " ".join(sys.argv[1:] if argv is None else argv)
    data = build_data(s)
    records = []
    console = Console()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("ARS shock", total=len(scenarios) * s.seeds * s.steps)
        for scenario in scenarios:
            for seed in range(s.seeds):
                progress.update(task, description=f"{scenario} seed {seed}")
                records += run_seed(scenario, seed, data, s, CONTENDERS, lambda: progress.advance(task))
    agg = aggregate(records, CONTENDERS, scenarios)
    tgt = targets(records, agg, scenarios)
    table = markdown(agg, tgt, s, command.strip())
    out = Path(args.out)
    payload = {
        "settings": asdict(s),
        "command": command.strip(),
        "aggregate": agg,
        "targets": tgt,
        "runs": [{k: v for k, v in r.items() if k != "step_times_s"} for r in records],
    }
    write_atomic(out / "ars_shock.json", json.dumps(finite_or_none(payload), indent=1, allow_nan=False))
    write_atomic(out / "ars_shock.md", table)
    console.print(table)
    for t in tgt:
        console.print(f"{t['target']}: {'holds' if t['holds'] else 'falls short'} ({t['measured']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
