"""ARSOptimizer as a drop-in: closures forwarded, plain base checkpoints, tensor lr, torch 2.4 APIs only."""

import warnings

import pytest
import torch

from trainopt.ars.ars_reference import ARSReference
from trainopt.ars.optimizer import ARSOptimizer


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    model = torch.nn.Linear(4, 1)
    return model, x, y


def test_lbfgs_wrapped_gets_the_closure_and_converges():
    model, x, y = _problem()
    opt = ARSOptimizer.wrap(torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=5))
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    first = float(closure().detach())
    for _ in range(5):
        loss = opt.step(closure)
    # LBFGS ran (it needs the closure and re-evaluates it) and the least-squares fit converged
    assert len(calls) > 1 + 5 and float(loss.detach()) < 1e-2 * first


def test_adamw_with_a_closure_evaluates_it_once_per_step():
    model, x, y = _problem()
    opt = ARSOptimizer(model.parameters(), lr=1e-2)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    returned = [opt.step(closure) for _ in range(3)]
    # the forwarded closure hands AdamW the evaluation ARS already made: no extra forward/backward
    assert len(calls) == 3 and all(isinstance(r, torch.Tensor) for r in returned)


def test_a_plain_adamw_checkpoint_loads_with_fresh_ars_state_and_a_warning():
    model, x, y = _problem()
    adamw = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        adamw.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        adamw.step()
    opt = ARSOptimizer(model.parameters(), lr=1e-2)
    with pytest.warns(UserWarning, match="ARS statistics start fresh"):
        opt.load_state_dict(adamw.state_dict())
    # AdamW's moments carried over; ARS starts its warmup again
    first = next(iter(model.parameters()))
    assert torch.equal(opt.state[first]["exp_avg"], adamw.state[first]["exp_avg"])
    assert opt.state_dict()["ars"]["t"] == 0


def test_an_ars_checkpoint_still_needs_no_warning():
    model, _, _ = _problem()
    opt = ARSOptimizer(model.parameters(), lr=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ARSOptimizer(model.parameters(), lr=1e-2).load_state_dict(opt.state_dict())


def test_a_tensor_lr_is_accepted_like_torch():
    model, x, y = _problem()
    lr = torch.tensor(1e-2)
    opt = ARSOptimizer(model.parameters(), lr=lr, foreach=False)
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    # the scheduled lr object is the one given, untouched by ARS's temporary scaling
    assert opt.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(1e-2)


@pytest.mark.parametrize("lr", [torch.tensor([1e-2, 1e-3]), torch.tensor(-1.0)], ids=["two-elements", "negative"])
def test_a_bad_tensor_lr_is_rejected_naming_it(lr):
    model, _, _ = _problem()
    with pytest.raises(ValueError, match="lr"):
        ARSOptimizer(model.parameters(), lr=lr)


def test_the_grad_norm_signal_matches_torchs_total_norm():
    model, x, y = _problem()
    opt = ARSOptimizer(model.parameters(), lr=1e-2)
    torch.nn.functional.mse_loss(model(x), y).backward()
    expected = torch.stack([p.grad.norm() for p in model.parameters()]).norm().item()
    assert opt._grad_norm() == pytest.approx(expected, rel=1e-6)


def test_the_grad_norm_needs_no_get_total_norm(monkeypatch):
    # torch.nn.utils.get_total_norm is torch >= 2.6; pyproject promises less
    def missing(*args, **kwargs):
        raise AttributeError("module 'torch.nn.utils' has no attribute 'get_total_norm'")

    monkeypatch.setattr(torch.nn.utils, "get_total_norm", missing, raising=False)
    model, x, y = _problem()
    opt = ARSOptimizer(model.parameters(), lr=1e-2)
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    assert opt.signal > 0


def test_the_reference_takes_a_closure_too():
    model, x, y = _problem()
    ref = ARSReference(model.parameters(), lr=torch.tensor(1e-2))

    def closure():
        ref.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    before = [p.detach().clone() for p in model.parameters()]
    ref.step(closure)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
