import math

import pytest
import torch

from trainopt.errors import ConvergenceError, ResourceError
from trainopt.tools.batch_memory import find_max_batch_size, measure_batch
from trainopt.tools.batch_size import BatchSizeOptimizer
from trainopt.tools.noise_scale import estimate_noise_scale, noise_scale_from_norms
from trainopt.tools.probe_setup import probe_config
from trainopt.tools.workloads import Workload, get_workload

CPU = torch.device("cpu")
FAST = {"timed_steps": 1, "noise_warm_steps": 2, "noise_draws": 2}




def test_search_finds_the_largest_batch_within_the_budget():
    workload = get_workload("digits-mlp")
    config = probe_config(workload)
    budget = 0.8  # MiB: parameters + AdamW state take about 0.47 MiB, activations the rest
    largest, points = find_max_batch_size(workload, config, CPU, budget, 1, workload.num_train)
    # The largest batch fits the budget and one more example does not: the search is exact.
    assert measure_batch(workload, config, largest, CPU, budget).peak_memory_mb <= budget
    assert not measure_batch(workload, config, largest + 1, CPU, budget).fits
    assert 1 < largest < workload.num_train
    assert all(p.peak_memory_mb <= budget for p in points if p.fits)


def test_impossible_budget_is_a_resource_error_naming_the_budget_and_the_need():
    with pytest.raises(ResourceError, match=r"max_memory_mb=0\.01.*needs 0\.\d+ MiB"):
        BatchSizeOptimizer("digits-mlp")(max_memory_mb=0.01, **FAST)


def test_noise_scale_formula_recovers_a_known_b_simple():
    # E|G_B|^2 = |G|^2 + tr(Sigma)/B with |G|^2 = 2, tr(Sigma) = 100: B_simple = 50.
    g2, trace = 2.0, 100.0
    estimate = noise_scale_from_norms(4, 64, g2 + trace / 4, g2 + trace / 64)
    assert estimate.grad_sq == pytest.approx(g2) and estimate.b_simple == pytest.approx(50.0)


def test_noise_scale_estimate_matches_per_example_gradients():
    # Linear regression at w = 0: per-example gradients are exact, so tr(Sigma)/|G|^2 is known.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 8, generator=g)
    y = x @ torch.ones(8, 1) * 0.3 + torch.randn(4096, 1, generator=g)
    loss = lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1])  # noqa: E731
    workload = Workload.from_callables(lambda: torch.nn.Linear(8, 1, bias=False), (x, y), (x, y), loss)
    model = workload.make_model()
    torch.nn.init.zeros_(model.weight)
    per_example = 2 * x * (-y)  # d/dw (w.x - y)^2 at w = 0, (N, 8)
    exact = per_example.var(0, unbiased=False).sum() / per_example.mean(0).pow(2).sum()
    estimate = estimate_noise_scale(workload, model, 4, 256, draws=300, device=CPU)
    assert estimate.b_simple == pytest.approx(exact.item(), rel=0.25)


@pytest.mark.parametrize(("optimizer", "rule"), [("adamw", "square root"), ("sgd", "linear")])
def test_lr_is_scaled_by_the_optimizer_family_rule(optimizer, rule):
    out = BatchSizeOptimizer("digits-mlp")(optimizer=optimizer, base_lr=0.01, base_batch=32,
                                           max_batch=128, **FAST)
    factor = out.recommended_batch_size / 32
    expected = 0.01 * (factor if rule == "linear" else math.sqrt(factor))
    assert out.lr_scaling_rule == rule and out.recommended_lr == pytest.approx(expected)
    # The knee is a measured batch size with at least 90% of the best throughput.
    best = max(p.samples_per_s for p in out.throughput)
    knee = next(p for p in out.throughput if p.batch_size == out.knee_batch_size)
    assert knee.samples_per_s >= 0.9 * best and out.limited_by == "search range"


def test_nan_workload_is_a_convergence_error(nan_workload):
    with pytest.raises(ConvergenceError, match="first step"):
        BatchSizeOptimizer(nan_workload)(**FAST)


def test_cuda_out_of_memory_is_caught_and_the_search_goes_on(monkeypatch):
    # No GPU here: make every step above 100 examples raise CUDA's OOM type, as a full GPU would.
    import trainopt.tools.batch_memory as batch_memory

    real = batch_memory.measure_step_memory

    def fake_oom(device, model, optimizer, step):
        out, peak, method = real(device, model, optimizer, step)
        if batch_memory_size[0] > 100:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return out, peak, method

    batch_memory_size = [0]
    real_measure = batch_memory.measure_batch

    def measure(workload, config, batch_size, *args, **kwargs):
        batch_memory_size[0] = batch_size
        return real_measure(workload, config, batch_size, *args, **kwargs)

    monkeypatch.setattr(batch_memory, "measure_step_memory", fake_oom)
    monkeypatch.setattr(batch_memory, "measure_batch", measure)
    workload = get_workload("digits-mlp")
    largest, points = find_max_batch_size(workload, probe_config(workload), CPU, 1e9, 64, 256)
    # The process survives, the OOM points are marked, and the search lands on the last batch that ran.
    assert largest == 100
    assert any(p.out_of_memory and not p.fits for p in points)


def test_when_only_batch_one_fits_the_knee_is_recommended_without_a_noise_scale():
    out = BatchSizeOptimizer("digits-mlp")(max_batch=1, **FAST)
    # B_simple needs two batch sizes: it is left out and the recommendation says why.
    assert out.max_batch_size == out.recommended_batch_size == 1
    assert out.noise_scale is None and "no usable noise scale" in out.recommendation_reason


def test_a_batch_that_fits_the_search_but_not_its_timing_stays_off_the_curve(monkeypatch):
    # Seen on an H200 (bench/gpu_check.py): the binary search found the largest fitting batch by memory alone,
    # then its timing run hit a CUDA OOM. The probe must report the rest of the curve, not crash on it.
    import trainopt.tools.batch_size as batch_size

    real = batch_size.measure_batch

    def timing_fails(workload, config, batch, *args, **kwargs):
        point = real(workload, config, batch, *args, **kwargs)
        return point.model_copy(update={"samples_per_s": None})

    monkeypatch.setattr(batch_size, "measure_batch", timing_fails)
    out = BatchSizeOptimizer("digits-mlp")(max_memory_mb=0.8, **FAST)
    assert all(p.samples_per_s is not None for p in out.throughput)
    assert out.max_batch_size not in {p.batch_size for p in out.throughput}
