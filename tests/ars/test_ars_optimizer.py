"""ARSOptimizer: validation, step styles, damping, resonance, reference twin, exact state round trip."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

from trainopt.ars import ARSOptimizer
from trainopt.ars.ars_reference import ARSReference, reference_spectral_entropy
from trainopt.ars.optimizer import spectral_entropy


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(16, 4, generator=g)
    return x, x.sum(dim=1, keepdim=True).sin()


def _loss(model: torch.nn.Module, step: int) -> torch.Tensor:
    x, y = _batch(step)
    return torch.nn.functional.mse_loss(model(x), y)


def _periodic(t: int) -> float:
    """A surprise signal that oscillates with period 8 around a slowly falling level."""
    return 1.0 - 0.002 * t + 0.3 * math.sin(2.0 * math.pi * t / 8.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "lr=-1.0"),
        ({"entropy_threshold": 1.5}, "entropy_threshold=1.5"),
        ({"surprise_scale": -0.1}, "surprise_scale=-0.1"),
        ({"jitter_scale": 1.0}, "jitter_scale=1.0"),
        ({"min_damping": 0.0}, "min_damping=0.0"),
        ({"base": "lion"}, "base='lion'"),
        ({"window": 4}, "window=4"),
        ({"entropy_every": 0}, "entropy_every=0"),
        ({"stats_momentum": 1.0}, "stats_momentum=1.0"),
        ({"warmup_steps": 0}, "warmup_steps=0"),
    ],
)
def test_invalid_arguments_name_the_value(kwargs, message):
    # Each bad hyperparameter is rejected with its name and value in the message.
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ARSOptimizer(_model().parameters(), **kwargs)


def test_wrap_rejects_unknown_arguments_and_non_optimizers():
    model = _model()
    with pytest.raises(ValueError, match="unknown ARS arguments"):
        ARSOptimizer.wrap(torch.optim.SGD(model.parameters(), lr=0.1), damping=0.5)
    with pytest.raises(ValueError, match="list"):
        ARSOptimizer.wrap([1, 2])


@pytest.mark.parametrize("base", ["adamw", "adam", "sgd"])
@pytest.mark.parametrize("style", ["plain", "closure", "loss"])
def test_step_styles_update_parameters(base, style):
    model = _model()
    opt = ARSOptimizer(model.parameters(), lr=1e-2, base=base)
    before = [p.detach().clone() for p in model.parameters()]
    for step in range(3):
        opt.zero_grad()
        if style == "closure":

            def closure(step=step):
                opt.zero_grad()
                loss = _loss(model, step)
                loss.backward()
                return loss

            returned = opt.step(closure)
            # step(closure) returns the closure's loss, and that loss is the signal.
            assert returned is not None and opt.signal == pytest.approx(returned.item())
        else:
            loss = _loss(model, step)
            loss.backward()
            if style == "loss":
                opt.step(loss=loss)
                assert opt.signal == pytest.approx(loss.item())
            else:
                opt.step()
                # Without a loss, the signal is the global gradient norm.
                grad_norm = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters())).item()
                assert opt.signal == pytest.approx(grad_norm, rel=1e-6)
    # Every parameter moved and the scheduled lr is untouched.
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert opt.param_groups[0]["lr"] == 1e-2


def test_closure_and_loss_together_is_an_error():
    opt = ARSOptimizer(_model().parameters())
    with pytest.raises(ValueError, match="either closure or loss"):
        opt.step(lambda: torch.tensor(1.0), loss=1.0)


def test_damping_scales_the_applied_lr_under_a_shock():
    # SGD makes the applied lr visible: delta = -lr_applied * grad.
    model = torch.nn.Linear(3, 1)
    opt = ARSOptimizer(model.parameters(), lr=0.1, base="sgd")
    noise = torch.Generator().manual_seed(0)
    for _ in range(60):  # calm: loss ~ 1 ± 0.01
        model.weight.grad = torch.ones_like(model.weight)
        model.bias.grad = torch.ones_like(model.bias)
        opt.step(loss=1.0 + 0.01 * torch.randn((), generator=noise).item())
    assert opt.surprise_gate == 1.0
    before = model.weight.detach().clone()
    opt.step(loss=5.0)  # the shock: hundreds of spreads above the running mean
    applied = (before - model.weight.detach())[0, 0].item()
    # The gate fell to min_damping, the step shrank by exactly that factor, the scheduled lr is back.
    assert opt.surprise_gate == pytest.approx(0.1)
    assert applied == pytest.approx(0.1 * 0.1, rel=1e-4)  # float32 parameters
    assert opt.param_groups[0]["lr"] == 0.1


def test_damping_costs_nothing_on_a_smooth_quadratic():
    # Full-batch descent on a quadratic: the loss only falls, so Φ stays exactly 1, no rhythm is seen
    # (χ = 0), and ARS reproduces plain AdamW bit for bit.
    target = torch.linspace(-1.0, 1.0, 10)
    w_ars = torch.zeros(10, requires_grad=True)
    w_ref = torch.zeros(10, requires_grad=True)
    ars = ARSOptimizer([w_ars], lr=1e-3)
    ref = torch.optim.AdamW([w_ref], lr=1e-3)
    for _ in range(200):
        for w, opt in ((w_ars, ars), (w_ref, ref)):

            def closure(w=w, opt=opt):
                opt.zero_grad()
                loss = ((w - target) ** 2).sum()
                loss.backward()
                return loss

            opt.step(closure)
        assert ars.surprise_gate == 1.0 and ars.lr_scale == 1.0
    assert ars.resonance_events == 0
    assert torch.equal(w_ars, w_ref)


def test_periodic_surprise_lowers_entropy_guard_and_counts_a_resonance_event():
    w = torch.zeros(2, requires_grad=True)
    opt = ARSOptimizer([w], lr=1e-2, jitter_scale=0.05)
    guards, jitters = [], []
    for t in range(1, 101):
        w.grad = torch.ones_like(w)
        opt.step(loss=_periodic(t))
        guards.append(opt.entropy_guard)
        jitters.append(opt.chronos_jitter)
    # Before the window fills Ψ is 1; a period-8 signal then drives Ψ well below 1, once (one rising edge).
    assert guards[0] == 1.0
    assert min(guards) < 0.5
    assert opt.resonance_events == 1
    # χ is non-zero only while Ψ < 1, and bounded by jitter_scale.
    assert all(j == 0.0 for g, j in zip(guards, jitters, strict=True) if g == 1.0)
    assert any(j != 0.0 for j in jitters)
    assert max(abs(j) for j in jitters) <= 0.05


def test_white_noise_keeps_entropy_guard_at_one():
    w = torch.zeros(2, requires_grad=True)
    opt = ARSOptimizer([w], lr=1e-2)
    noise = torch.Generator().manual_seed(3)
    for _ in range(200):
        w.grad = torch.ones_like(w)
        opt.step(loss=1.0 + 0.1 * torch.randn((), generator=noise).item())
    assert opt.resonance_events == 0 and opt.entropy_guard == 1.0


def test_spectral_entropy_matches_explicit_dft():
    values = [math.sin(0.7 * i) + 0.1 * math.cos(3.1 * i * i) for i in range(64)]
    import numpy as np

    assert spectral_entropy(np.array(values)) == pytest.approx(reference_spectral_entropy(values), abs=1e-12)


@pytest.mark.parametrize("signal", ["loss", "grad_norm"])
def test_fast_matches_reference_over_100_steps(signal):
    fast_model, ref_model = _model(), _model()
    kwargs = {"lr": 1e-2, "jitter_scale": 0.05, "window": 16, "entropy_every": 4, "warmup_steps": 10}
    fast = ARSOptimizer(fast_model.parameters(), foreach=False, **kwargs)
    ref = ARSReference(list(ref_model.parameters()), **kwargs)
    seen_resonance = seen_damping = False
    for t in range(1, 101):
        for model, opt in ((fast_model, fast), (ref_model, ref)):
            opt.zero_grad()
            loss = _loss(model, t)
            loss.backward()
            if signal == "loss":  # a periodic signal with a shock at t = 60 moves every gate
                opt.step(loss=_periodic(t) + (3.0 if t == 60 else 0.0))
            else:
                opt.step()
        # Same gates at every step (the grad norm differs in float rounding), same parameters.
        tol = 1e-9 if signal == "loss" else 1e-5
        assert fast.entropy_guard == pytest.approx(ref.entropy_guard, rel=tol, abs=1e-12)
        assert fast.surprise_gate == pytest.approx(ref.surprise_gate, rel=tol)
        assert fast.chronos_jitter == pytest.approx(ref.chronos_jitter, rel=tol, abs=1e-15)
        seen_resonance |= fast.entropy_guard < 1.0
        seen_damping |= fast.surprise_gate < 1.0
    for p_fast, p_ref in zip(fast_model.parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(p_fast, p_ref, rtol=1e-5, atol=1e-6)
    assert fast.resonance_events == ref.resonance_events
    if signal == "loss":
        assert seen_resonance and seen_damping


def _train(model, opt, steps, start):
    for t in range(start, start + steps):
        opt.zero_grad()
        loss = _loss(model, t)
        loss.backward()
        opt.step(loss=loss.item() + _periodic(t) + (2.0 if t in (40, 70) else 0.0))


def test_state_dict_round_trip_is_bit_exact():
    model = _model()
    kwargs = {"lr": 1e-2, "jitter_scale": 0.05, "window": 16, "entropy_every": 4}
    opt = ARSOptimizer(model.parameters(), **kwargs)
    _train(model, opt, 50, start=1)
    saved_model = copy.deepcopy(model.state_dict())
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    _train(model, opt, 50, start=51)

    fresh_model = _model()
    fresh_model.load_state_dict(saved_model)
    fresh = ARSOptimizer(fresh_model.parameters(), **kwargs)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    _train(fresh_model, fresh, 50, start=51)
    # The resumed run is the uninterrupted run, bit for bit, including the RNG-driven jitter.
    assert opt.resonance_events >= 1
    for p, q in zip(model.parameters(), fresh_model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert (fresh.entropy_guard, fresh.surprise_gate, fresh.chronos_jitter, fresh.resonance_events) == (
        opt.entropy_guard,
        opt.surprise_gate,
        opt.chronos_jitter,
        opt.resonance_events,
    )


def test_wrap_shares_groups_and_works_with_a_scheduler():
    model = _model()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt = ARSOptimizer.wrap(sgd, min_damping=0.2)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for t in range(4):
        opt.zero_grad()
        _loss(model, t).backward()
        opt.step()
        scheduler.step()
    # The scheduler's value lives in the one shared group; ARS restores it after each step.
    assert opt.param_groups is sgd.param_groups
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.025)
    assert len(sgd.state) == len(list(model.parameters()))
