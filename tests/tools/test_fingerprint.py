"""Workload.fingerprint(): the same workload hashes the same; a changed model, data or loss does not."""

import subprocess
import sys

import torch
from torch import nn
from torch.utils.data import Dataset

from trainopt.tools.workloads import Workload, get_workload


def mse(model, batch):
    return nn.functional.mse_loss(model(batch[0]), batch[1])


def mae(model, batch):
    return (model(batch[0]) - batch[1]).abs().mean()


def _workload(x=None, y=None, make_model=lambda: nn.Linear(3, 1), loss=mse) -> Workload:
    x = torch.arange(24.0).reshape(8, 3) if x is None else x
    y = torch.ones(8, 1) if y is None else y
    return Workload.from_callables(make_model, (x, y), (x, y), loss)


def test_an_equal_workload_built_twice_has_the_same_fingerprint():
    # two instances of the same model, data and loss: one identity
    assert _workload().fingerprint() == _workload().fingerprint()


def test_a_builtin_fingerprint_is_the_same_in_another_process():
    code = "from trainopt.tools.workloads import get_workload; print(get_workload('digits-mlp').fingerprint())"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    # a stored trial of one run must be found by the next
    assert other == get_workload("digits-mlp").fingerprint()


def test_different_data_under_the_same_name_differs():
    # same name ("custom"), same model and loss, one label changed
    y = torch.ones(8, 1)
    y[3] = 2.0
    assert _workload().fingerprint() != _workload(y=y).fingerprint()


def test_a_changed_architecture_differs():
    wider = lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))  # noqa: E731
    assert _workload().fingerprint() != _workload(make_model=wider).fingerprint()


def test_a_changed_activation_with_the_same_shapes_differs():
    relu = lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))  # noqa: E731
    tanh = lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))  # noqa: E731
    assert _workload(make_model=relu).fingerprint() != _workload(make_model=tanh).fingerprint()


def test_an_edited_forward_differs():
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 1)

        def forward(self, x):
            return self.linear(x)

    class Residual(Plain):  # same parameters, other computation
        def forward(self, x):
            return self.linear(x) + x.sum(-1, keepdim=True)

    assert _workload(make_model=Plain).fingerprint() != _workload(make_model=Residual).fingerprint()


def test_a_changed_loss_function_differs():
    assert _workload(loss=mse).fingerprint() != _workload(loss=mae).fingerprint()


def test_a_loss_closure_value_counts():
    def scaled(scale):
        return lambda model, batch: scale * mse(model, batch)

    assert _workload(loss=scaled(1.0)).fingerprint() != _workload(loss=scaled(2.0)).fingerprint()


def test_assigning_a_field_recomputes_the_fingerprint():
    workload = _workload()
    before = workload.fingerprint()
    workload.loss_fn = mae
    assert workload.fingerprint() != before


class Squares(Dataset):
    def __init__(self, n, offset=0.0):
        self.n, self.offset = n, offset

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        x = torch.tensor([float(i)])
        return x, x**2 + self.offset + torch.rand(1) * 0  # random draw: the sample must be seeded


def test_a_dataset_is_fingerprinted_by_length_and_items():
    def of(data):
        return Workload.from_callables(lambda: nn.Linear(1, 1), data, data, mse).fingerprint()

    # equal datasets agree; another length or other items do not
    assert of(Squares(100)) == of(Squares(100))
    assert of(Squares(100)) != of(Squares(101))
    assert of(Squares(100)) != of(Squares(100, offset=1.0))


def test_fingerprinting_leaves_the_callers_rng_alone():
    workload = _workload()
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    workload.fingerprint()
    assert torch.rand(1) == expected


def test_a_large_model_is_fingerprinted_without_building_it_for_real(monkeypatch):
    from trainopt.tools import fingerprint

    built_on = []

    def make():
        model = nn.Linear(3, 1)
        built_on.append(model.weight.device.type)
        return model

    monkeypatch.setattr(fingerprint, "MAX_VALUE_HASH_PARAMS", 2)  # "large": more than 2 parameters
    first = fingerprint.model_digest(make)
    # built once, on the meta device (no host memory); the shapes still tell models apart
    assert built_on == ["meta"]
    assert first != fingerprint.model_digest(lambda: nn.Linear(4, 1))
