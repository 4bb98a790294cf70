"""The agent's public data: what you ask (TrainingConfig, OptimizationRequest) and what you get
back (OptimizationResponse, TrainingMetrics). docs/architecture.md describes the data path.

Every number in a response was measured by a probe (or read back from a recorded one); the LM's
proposals are kept as candidates with the measured outcome beside them.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainopt.agent.horizon import Horizon
from trainopt.tools.trial_config import OptimizerName, ScheduleName, TrialConfig

ObjectiveMetric = Literal["loss", "accuracy", "latency_ms"]
CONFIRM_SEED_START = 1000  # default held-out seeds: 1000, 1001, ...
MIN_CONFIRM_SEEDS, MAX_CONFIRM_SEEDS = 3, 10


class HardwareConstraints(BaseModel):
    """Limits of the machine the recommendation must fit."""

    model_config = ConfigDict(extra="forbid")

    max_memory: float | None = Field(None, gt=0, description="MiB one training step may use (CPU or GPU)")
    max_gpu_memory: float | None = Field(None, gt=0, description="MiB of GPU memory a step may use")


class TrainingConfig(BaseModel):
    """The search space the agent may recommend from.

    Examples:
        >>> TrainingConfig(learning_rate_range=(1e-4, 1e-1)).optimizer_options
        ['adamw', 'sgd']
    """

    model_config = ConfigDict(extra="forbid")

    max_epochs: int = Field(1000, gt=0, description="upper bound on passes over the training data of the run a "
                            "recommendation is for (the horizon H)")
    batch_size_range: tuple[int, int] = Field((8, 512), description="smallest and largest batch allowed")
    learning_rate_range: tuple[float, float] = Field((1e-5, 1.0), description="lowest and highest peak LR")
    optimizer_options: list[OptimizerName] = Field(
        default_factory=lambda: ["adamw", "sgd"], description="base optimizers the agent may pick"
    )
    hardware_constraints: HardwareConstraints = Field(default_factory=HardwareConstraints)

    @field_validator("batch_size_range")
    @classmethod
    def _batch_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if not 0 < low <= high:
            raise ValueError(f"batch_size_range must satisfy 0 < low <= high but got {value=}")
        return value

    @field_validator("learning_rate_range")
    @classmethod
    def _lr_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low < high:
            raise ValueError(f"learning_rate_range must satisfy 0 < low < high but got {value=}")
        return value

    @field_validator("optimizer_options")
    @classmethod
    def _optimizers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"optimizer_options must name at least one optimizer but got {value=}")
        return value


class TrainingMetrics(BaseModel):
    """One measured training run, summarised (loss and accuracy on the validation set)."""

    loss: float = Field(description="final validation loss")
    accuracy: float | None = Field(None, description="final validation metric (accuracy for classifiers)")
    gradient_norm: float | None = Field(None, description="last sampled global gradient norm")
    learning_rate: float = Field(description="peak learning rate of the run")
    epoch: float = Field(description="passes over the training data the run made")
    batch_size: int
    memory_usage: float = Field(description="peak MiB of one training step")
    time_per_epoch: float = Field(description="seconds per pass over the training data (measured)")


class MultiObjective(BaseModel):
    """A weighted sum of metrics, each divided by the baseline's value (lower is better overall)."""

    model_config = ConfigDict(extra="forbid")

    metrics: list[ObjectiveMetric] = Field(description="loss, accuracy (counted as 1 - accuracy), latency_ms")
    weights: list[float] = Field(description="one non-negative weight per metric")

    @model_validator(mode="after")
    def _aligned(self) -> MultiObjective:
        if len(self.metrics) != len(self.weights) or not self.metrics:
            raise ValueError(
                f"metrics and weights must be non-empty and aligned but got {self.metrics=}, {self.weights=}"
            )
        if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ValueError(f"weights must be >= 0 with a positive sum but got {self.weights=}")
        return self


class Constraints(BaseModel):
    """Hard limits: a candidate that breaks one is rejected with the measured reason."""

    model_config = ConfigDict(extra="forbid")

    max_memory: float | None = Field(None, gt=0, description="MiB one training step may use")
    min_accuracy: float | None = Field(None, ge=0, le=1, description="lowest acceptable validation accuracy")
    max_latency_ms: float | None = Field(None, gt=0, description="slowest acceptable batch-1 inference (ONNX)")
    time_budget_s: float | None = Field(
        None, gt=0, description="wall-clock budget of the whole optimization (default: none; without it and a "
        "step_budget the run plans 10 H of compute)"
    )
    step_budget: int | None = Field(
        None,
        ge=100,
        description="compute to plan the probes, candidates and confirm runs with, in steps at the baseline's batch "
        "(training examples / that batch; a candidate with a larger batch trains fewer steps of it), instead of "
        "converting time_budget_s with the measured step time: the same plan on every machine. Default 10 H "
        "without time_budget_s. The 60 calibration steps and the floors (30-step candidates, 50-step confirm "
        "runs) come on top of a small budget",
    )


class OptimizationRequest(BaseModel):
    """What to optimize, for what, under which limits.

    Examples:
        >>> OptimizationRequest(workload="digits-mlp", constraints={"time_budget_s": 60}).objective
        'minimize_loss'
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    workload: Any = Field("digits-mlp", description="a registered workload name or a Workload")
    model_factory: Any = Field(None, description="() -> nn.Module; with train_data, val_data and loss_fn")
    train_data: Any = None
    val_data: Any = None
    loss_fn: Any = Field(None, description="(model, batch) -> scalar loss tensor")
    metric_fn: Any = Field(None, description="(model, batch) -> float, higher is better")
    objective: Literal["minimize_loss"] | MultiObjective = "minimize_loss"
    constraints: Constraints = Field(default_factory=Constraints)
    seeds: list[int] = Field(
        default_factory=lambda: [0, 1, 2],
        description="selection seeds: candidates race on these (successive halving over seeds) and finalists are "
        "compared on them; never used to confirm",
    )
    confirm_seeds: list[int] | None = Field(
        None,
        description="held-out seeds of the confirm runs (winner against baseline, paired per seed); None: "
        f"{CONFIRM_SEED_START}, {CONFIRM_SEED_START + 1}, ... 5 planned (at least {MIN_CONFIRM_SEEDS} on a tiny "
        f"budget, and a gain is then claimed on 5 or more), more while the budget lasts (up to {MAX_CONFIRM_SEEDS})",
    )
    min_gain: float = Field(
        0.0, ge=0, lt=1, description="a change is recommended only when the 90% interval of its relative gain over "
        "the baseline lies above this",
    )
    proposals: Literal["planner", "random", "none"] = Field(
        "planner", description="where candidates come from: the planner (LM or offline), uniform random draws inside "
        "the probed safe ranges, or none (the seeded search alone)",
    )
    num_candidates: int = Field(4, ge=1, le=8, description="configurations the planner proposes per round")
    refine_rounds: int = Field(1, ge=0, le=3, description="propose-again rounds after measured results")
    train_steps: int | None = Field(
        None, gt=0, description="the horizon H: your training run's length in optimizer steps at the baseline's "
        "batch (H = train_steps x that batch, in training examples); the recommendation is for that run. "
        "Default: the workload's own length (its default_config steps or epochs)")
    epochs: float | None = Field(None, gt=0, description="the horizon H in passes over the training data instead")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if not value or any(s < 0 for s in value) or len(set(value)) != len(value):
            raise ValueError(f"seeds must be a non-empty list of distinct non-negative ints but got {value=}")
        return value

    @field_validator("confirm_seeds")
    @classmethod
    def _confirm_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (len(value) < 2 or any(s < 0 for s in value) or len(set(value)) != len(value)):
            raise ValueError(f"confirm_seeds must hold at least 2 distinct non-negative ints but got {value=}")
        return value

    @model_validator(mode="after")
    def _held_out(self) -> OptimizationRequest:
        if self.train_steps is not None and self.epochs is not None:
            raise ValueError(f"give the horizon as train_steps or as epochs, not both, but got {self.train_steps=}, "
                             f"{self.epochs=}")
        shared = sorted(set(self.seeds) & set(self.confirm_seeds or ()))
        if shared:
            raise ValueError(f"confirm_seeds must be held out from the selection seeds but both hold {shared}")
        return self

    @property
    def objective_metrics(self) -> dict[str, float]:
        """metric -> weight; ``minimize_loss`` is {"loss": 1}."""
        if self.objective == "minimize_loss":
            return {"loss": 1.0}
        return dict(zip(self.objective.metrics, self.objective.weights, strict=True))

    @property
    def wants_latency(self) -> bool:
        return "latency_ms" in self.objective_metrics or self.constraints.max_latency_ms is not None


class CandidateProposal(BaseModel):
    """One configuration a planner proposes; validated here, clamped to the probed ranges later."""

    model_config = ConfigDict(extra="forbid")

    optimizer: OptimizerName = Field(description="base optimizer, one of the evidence's optimizer_options")
    lr: float = Field(gt=0, description="peak learning rate")
    batch_size: int = Field(gt=0, description="training examples per step")
    weight_decay: float = Field(0.0, ge=0, le=1, description="weight decay, 0 to 1")
    schedule: ScheduleName = Field("constant", description="constant, cosine, warmup_cosine, one_cycle or step")
    warmup_fraction: float = Field(0.0, ge=0, lt=0.5, description="share of the steps spent warming up")
    grad_clip: float | None = Field(None, gt=0, description="global gradient-norm clip, or null")
    why: str = Field("", description="one sentence: which evidence this candidate follows")


class CandidateOutcome(BaseModel):
    """A candidate and what measuring it showed."""

    config: TrialConfig
    source: str = Field(description="who proposed it: the LM's name, 'offline', 'random', 'search', 'horizon' "
                                    "(the finals' lower-LR twin of the race's leader) or 'baseline'")
    round: int = Field(description="0: first proposal, 1..: refine rounds, -1: search, horizon twin or baseline")
    steps: int
    val_loss: float = Field(description="final validation loss, mean over the selection seeds it was raced on")
    val_metric: float | None
    peak_memory_mb: float
    diverged: bool
    score: float = Field(description="objective relative to the baseline (lower is better), mean over the "
                                     "selection seeds it was raced on")
    rejected: str | None = Field(None, description="the measured reason a constraint rejected it")
    clamped: list[str] = Field(default_factory=list, description="fields moved into the probed safe range")
    seed_scores: dict[int, float] = Field(default_factory=dict, description="selection seed -> objective score")
    seed_losses: dict[int, float] = Field(default_factory=dict, description="selection seed -> final val loss")
    stopped: str | None = Field(None, description="why the race stopped measuring it on further seeds")
    final_score: float | None = Field(None, description="mean objective score of the full-length finals")


class Gain(BaseModel):
    """The race winner (the challenger) against the baseline on held-out seeds, paired per seed.

    The interval is a paired t interval over the seeds: mean(r) +- t(0.95, n-1) s / sqrt(n) for the
    per-seed relative gains r_i = (b_i - c_i) / b_i; ``new_seeds_interval`` is where the mean a user will
    see over ``new_seeds`` fresh seeds lands: log-normal in the loss ratio c/b (agent/stats.py
    fresh_mean_gain), about mean(r) +- t(0.95, n-1) s sqrt(1/n + 1/new_seeds) when the gains vary little,
    reaching further below a large gain than above it, and never to +100%; that t interval when a loss is
    not finite.

    The claim is about the user's run of ``horizon_examples`` training examples (H). When the budget paid
    for runs of H, it was measured there; otherwise ``predicted`` is true and every per-seed gain was
    extrapolated to H from paired runs of at most ``measured_examples`` (agent/extrapolate.py).
    """

    steps: int = Field(description="baseline steps of the longest paired runs (H / baseline batch when measured)")
    horizon_examples: int = Field(0, description="H: training examples of the run the claim is about")
    measured_examples: int = Field(0, description="training examples of the longest paired runs (= H: measured)")
    predicted: bool = Field(False, description="the gain at H is extrapolated from shorter runs, not measured at H")
    seeds: list[int] = Field(description="the held-out seeds: none of them chose the challenger")
    baseline: TrainingMetrics
    challenger: TrainingMetrics
    baseline_val_losses: list[float] = Field(description="one per seed")
    challenger_val_losses: list[float]
    relative_loss_reduction: float = Field(description="mean over seeds of (baseline - challenger) / baseline")
    interval: tuple[float, float] = Field(description="90% interval of relative_loss_reduction")
    new_seeds_interval: tuple[float, float] = Field(
        description="90% interval of the mean relative loss reduction over `new_seeds` fresh seeds")
    new_seeds: int = 5
    objective_gain: float = Field(description="mean over seeds of 1 - objective score (= relative_loss_reduction "
                                              "for minimize_loss)")
    objective_interval: tuple[float, float] = Field(description="90% interval of objective_gain: the decision's")
    level: float = 0.9
    wins: int = Field(description="seeds where the challenger's objective beat the baseline's")
    losses: int
    significant: bool = Field(description="objective_interval lies above min_gain")
    adopted: bool = Field(description="the challenger is the recommendation (else the baseline is)")
    reason: str = Field(description="why it was adopted or not, with the interval")
    metric_change: float | None = Field(None, description="challenger - baseline validation metric, mean over seeds")

    def claim_text(self) -> str:
        """Whether the gain was measured at H or predicted there, in words."""
        if self.predicted:
            return (f"predicted at H = {self.horizon_examples:,} examples from runs of at most "
                    f"{self.measured_examples:,}")
        return f"measured at H = {self.horizon_examples:,} examples"

    def new_seeds_text(self) -> str | None:
        """What a user who re-runs the challenger should see, in words; None when it is not a figure (no
        challenger: the interval is 0 to 0; a diverged run: unbounded)."""
        low, high = self.new_seeds_interval
        if (low, high) == (0.0, 0.0) or not (math.isfinite(low) and math.isfinite(high)):
            return None
        predicted = ", predicted" if self.predicted else ""
        return (f"over {self.new_seeds} new seeds of yours its mean gain at H lands in {low:+.1%} to {high:+.1%} "
                f"(90%{predicted})")


class Prediction(BaseModel):
    """The ConvergencePredictor's forecast of the confirm run's final loss against the measured one."""

    fit_on_steps: int = Field(description="the prefix of the training curve the fit saw")
    at_step: int
    predicted_loss: float
    interval: tuple[float, float] | None = None
    measured_loss: float
    abs_pct_error: float
    model: str = Field("", description="the fitted curve family")


class LMUsage(BaseModel):
    """Which LM answered and how often."""

    requested: str = Field(description="the LM the run was configured with")
    answered_by: list[str] = Field(description="per planner call: the LM whose answer was used")
    calls: int = Field(description="LM requests made (retries included)")
    fallbacks: list[str] = Field(default_factory=list, description="each time the offline planner took over")


class Artifacts(BaseModel):
    report_html: str | None = None
    result_json: str | None = None
    model_onnx: str | None = None


class OptimizationResponse(BaseModel):
    """The recommendation with every piece of evidence behind it."""

    workload: str
    device: str = Field(description="device type the probes ran on (the recorded one on replay)")
    recommended: TrialConfig = Field(
        description="the recommendation at the confirm runs' length: the challenger when its held-out gain is "
        "significant, else the baseline")
    baseline: TrialConfig
    challenger: TrialConfig | None = Field(
        None, description="the race winner confirmed against the baseline (the recommendation when gain.adopted)")
    rationale: str = Field(description="the planner's reasons for its proposals, then the final explanation")
    evidence: dict[str, Any] = Field(description="every probe result: tool outputs and measured trials")
    candidates: list[CandidateOutcome]
    gain: Gain
    prediction: Prediction | None = None
    latency_ms: float | None = Field(None, description="batch-1 ONNX inference latency, when asked for")
    lm: LMUsage
    artifacts: Artifacts = Field(default_factory=Artifacts)
    replayed: bool = False
    notes: list[str] = Field(default_factory=list)
    wall_time_s: float | None = Field(None, description="seconds the run took (None on replay)")
    horizon: Horizon | None = Field(None, description="the user's training run the recommendation is for")
    steps_spent: int = Field(0, description="compute the run spent on training, calibration included, in steps at the "
                             "baseline's batch (training examples / that batch); probes counted as planned")
    run_seconds: dict[str, float] = Field(
        default_factory=dict, description="seconds of training of the run at H on the probed device, baseline and "
        "recommended, at their measured throughput")

    def comparable(self) -> dict[str, Any]:
        """What a replay must reproduce exactly: recommendation, evidence and rationale."""
        return self.model_dump(
            mode="json", include={"recommended", "evidence", "rationale", "candidates", "gain", "workload"}
        )
