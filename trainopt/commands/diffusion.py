"""``trainopt diffusion``: train a small DDPM on a toy (or digits) and sample it through the router."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

TOYS = ("8gaussians", "moons", "swissroll", "checkerboard")
DEFAULT_DIR = Path("trainopt-out/diffusion")

diffusion_app = typer.Typer(
    help="Mixture-of-experts diffusion sampling: train a DDPM, then sample through the learned router.",
    no_args_is_help=True,
)
console = Console()


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console)


def _check_data(data: str, allowed: tuple[str, ...]) -> None:
    if data not in allowed:
        raise typer.BadParameter(f"--data must be one of {', '.join(allowed)} but got {data!r}")


def train_model(data: str, out_dir: Path, steps: int, batch_size: int, lr: float, seed: int) -> Path:
    """Train the DDPM for ``data`` with a progress bar and save ``<out_dir>/<data>.pt``."""
    import torch

    from trainopt.ars.diffusion import (
        NoisePredictor,
        NoisePredictorConfig,
        load_digits_data,
        sample_toy,
        save_checkpoint,
        train_ddpm,
    )

    if data == "digits":
        x, y = load_digits_data("train")
        config = NoisePredictorConfig(data_dim=64, hidden=256, num_classes=10)
    else:
        x, y = sample_toy(data, 50_000, generator=torch.Generator().manual_seed(seed)), None
        config = NoisePredictorConfig(data_dim=2)
    torch.manual_seed(seed)
    model = NoisePredictor(config)
    start = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task(f"training DDPM on {data}", total=steps, info="")

        def report(step: int, loss: float) -> None:
            if step % 25 == 0 or step == steps - 1:
                bar.update(task, completed=step + 1, info=f"loss {loss:.4f}")

        losses = train_ddpm(model, x, y, steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=report)
    seconds = time.perf_counter() - start
    path = out_dir / f"{data}.pt"
    save_checkpoint(model, path, data=data, steps=steps, final_loss=sum(losses[-100:]) / len(losses[-100:]),
                    train_seconds=seconds)
    console.print(f"saved {path} (final loss {sum(losses[-100:]) / len(losses[-100:]):.4f}, {seconds:.0f} s)")
    return path


def train_router_for(data: str, out_dir: Path, iterations: int, seed: int) -> Path:
    """REINFORCE the router on ``data``'s model with a progress bar; save ``<out_dir>/router-<data>.pt``."""
    from trainopt.ars.diffusion import Router, ToySamplingEnv, load_checkpoint, save_router, train_router

    model, _ = load_checkpoint(out_dir / f"{data}.pt")
    env = ToySamplingEnv({data: model}, seed=seed)
    router = Router()
    with _progress() as bar:
        task = bar.add_task(f"training router on {data}", total=iterations, info="")

        def report(it: int, reward: float) -> None:
            bar.update(task, completed=it + 1, info=f"mean reward {reward:.4f}, {env.measurements} runs")

        train_router(router, env.reward, env.sample_request, iterations=iterations, seed=seed, progress=report)
    path = out_dir / f"router-{data}.pt"
    save_router(router, path, datasets=[data], iterations=iterations)
    console.print(f"saved {path}")
    return path


@diffusion_app.command("train")
def train(
    data: str = typer.Option("moons", help=f"Training data: {', '.join(TOYS)} or digits (64-D, class-conditional)."),
    steps: int = typer.Option(3000, min=1, help="Optimizer steps (3000 takes about 0.5-2.5 min on 2 CPU cores)."),
    batch_size: int = typer.Option(256, min=1, help="Batch size."),
    lr: float = typer.Option(2e-3, min=0.0, help="Peak learning rate of AdamW (cosine decay)."),
    seed: int = typer.Option(0, help="Seed of data, initialisation and noise."),
    out_dir: Path = typer.Option(DEFAULT_DIR, help="Where the checkpoint <data>.pt is written."),
    threads: int = typer.Option(1, min=1, help="torch CPU threads (1 is fastest for this MLP on a busy machine)."),
) -> None:
    """Train the MLP noise predictor (T = 1000, linear VP schedule) and save a checkpoint.

    Writes <out-dir>/<data>.pt: a state_dict plus its config, loadable with torch.load(weights_only=True).
    """
    import torch

    _check_data(data, (*TOYS, "digits"))
    torch.set_num_threads(threads)
    train_model(data, out_dir, steps, batch_size, lr, seed)


@diffusion_app.command("sample")
def sample(
    data: str = typer.Option("moons", help=f"Which toy to sample: {', '.join(TOYS)}."),
    lam: float = typer.Option(0.5, help="Price of speed, lambda > 0: the router maximises "
                              "-(energy distance) - lambda * NFE / 1000. Larger = fewer steps."),
    router: str = typer.Option("bandit", help="bandit: the contextual bandit over the measured (expert, steps) "
                               "table, distilled students included (measured best); reinforce: the policy network "
                               "<out-dir>/router-<data>.pt."),
    max_nfe: int | None = typer.Option(None, min=1, help="At most this many model calls (bandit router only)."),
    distilled: bool = typer.Option(True, help="Let the bandit pick the distilled few-step students."),
    pool_n: int = typer.Option(500, min=2, help="Points per measurement of the bandit's table."),
    out: Path = typer.Option(Path("samples.png"), help="Scatter plot of the samples (PNG)."),
    n: int = typer.Option(2000, min=2, help="Number of samples."),
    seed: int = typer.Option(0, help="Seed of the initial noise x_T."),
    out_dir: Path = typer.Option(DEFAULT_DIR, help="Where checkpoints are read (and written if missing)."),
    router_iterations: int = typer.Option(400, min=1, help="REINFORCE iterations if the router must be trained."),
    threads: int = typer.Option(1, min=1, help="torch CPU threads."),
) -> None:
    """Sample through the learned router: it picks the expert and the step budget for this request.

    With --router bandit, what is missing under <out-dir> is trained first and cached: the DDPM \
(<data>-<steps>.pt, the benchmark's recipe), the distilled students and the bandit's table (minutes on a \
busy 2-core machine). With --router reinforce, if the DDPM checkpoint (<out-dir>/<data>.pt) or the router \
(<out-dir>/router-<data>.pt) is missing, this command trains it first with a progress bar (the DDPM with the \
defaults of `trainopt diffusion train`, then the router by REINFORCE).
    """
    import torch

    _check_data(data, TOYS)
    if lam <= 0:
        raise typer.BadParameter(f"--lam must be > 0 but got {lam}")
    if router not in ("bandit", "reinforce"):
        raise typer.BadParameter(f"--router must be bandit or reinforce but got {router!r}")
    torch.set_num_threads(threads)
    if router == "bandit":
        _sample_bandit(data, lam, max_nfe, distilled, pool_n, out, n, seed, out_dir)
        return
    from trainopt.ars.diffusion import (
        SAMPLERS,
        NFECounter,
        Request,
        load_checkpoint,
        load_router,
        off_mode_fraction,
        quality_floor,
        request_features,
        sample_toy,
        toy_quality,
    )

    if not (out_dir / f"{data}.pt").exists():
        console.print(f"no checkpoint {out_dir / f'{data}.pt'}: training one now")
        train_model(data, out_dir, 3000, 256, 2e-3, 0)
    if not (out_dir / f"router-{data}.pt").exists():
        console.print(f"no router {out_dir / f'router-{data}.pt'}: training one now")
        train_router_for(data, out_dir, router_iterations, 0)
    model, _ = load_checkpoint(out_dir / f"{data}.pt")
    policy, _ = load_router(out_dir / f"router-{data}.pt")
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    features = request_features(Request(data, lam, x_T))
    with torch.no_grad():
        decision = policy.choose(features)
    counted = NFECounter(model)
    start = time.perf_counter()
    x = SAMPLERS[decision.expert](counted, x_T, decision.num_steps,
                                  generator=torch.Generator().manual_seed(seed + 1))
    seconds = time.perf_counter() - start
    reference = sample_toy(data, n, generator=torch.Generator().manual_seed(seed + 2))
    quality, floor = toy_quality(data, x, reference), quality_floor(data, n)
    console.print(f"router chose expert [bold]{decision.expert}[/bold] with [bold]{decision.num_steps}[/bold] steps "
                  f"at lambda={lam}: {counted.calls} model calls (NFE), {seconds:.2f} s")
    console.print(f"energy distance {quality['energy']:.4f} (data-vs-data floor {floor['energy']:.4f}), "
                  f"MMD {quality['mmd']:.4f} (floor {floor['mmd']:.4f}), "
                  f"off-mode fraction {off_mode_fraction(data, x):.3f} (floor {floor['off_mode']:.3f})")
    _scatter(x, reference, out, f"{data}: {decision.expert}, {decision.num_steps} steps, NFE {counted.calls}")
    console.print(f"saved {out}")


def _sample_bandit(data: str, lam: float, max_nfe: int | None, distilled: bool, pool_n: int, out: Path, n: int,
                   seed: int, out_dir: Path) -> None:
    """route_and_sample (trains and caches what is missing), then print the pick and its measured quality."""
    import torch

    from trainopt.ars.diffusion import route_and_sample, sample_toy

    with console.status("routing (the first call on a toy trains its model, students and table: minutes)"):
        o = route_and_sample(data, lam, max_nfe=max_nfe, n=n, seed=seed, cache_dir=out_dir, distilled=distilled,
                             pool_n=pool_n)
    console.print(f"router chose expert [bold]{o['expert']}[/bold] with [bold]{o['num_steps']}[/bold] steps "
                  f"at lambda={lam}: {o['nfe']} model calls (NFE), {o['seconds']:.2f} s")
    console.print(f"energy distance {o['energy']:.4f} (data-vs-data floor {o['floor_energy']:.4f}; the table "
                  f"expected {o['expected']['energy']:.4f}), MMD {o['mmd']:.4f}, off-mode fraction "
                  f"{o['off_mode']:.3f}")
    reference = sample_toy(data, n, generator=torch.Generator().manual_seed(seed + 2))
    _scatter(o["samples"], reference, out, f"{data}: {o['expert']}, {o['num_steps']} steps, NFE {o['nfe']}")
    console.print(f"saved {out}")


def _scatter(x, reference, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    for ax, pts, name in ((axes[0], reference, "data"), (axes[1], x, "samples")):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
        ax.set_title(name)
        ax.set_aspect("equal")
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def register(app: typer.Typer) -> None:
    app.add_typer(diffusion_app, name="diffusion")
