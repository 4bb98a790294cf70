"""bench/public_workloads.py: each workload trains, and each is what its docstring says."""

from __future__ import annotations

import math

import pytest

from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial


@pytest.fixture(scope="module")
def public(bench_script):
    return bench_script("public_workloads")


def test_every_workload_trains_at_its_default(public):
    for name, make in sorted(public.PUBLIC_WORKLOADS.items()):
        workload = make()
        result = run_trial(workload, TrialConfig(**{**workload.default_config, "steps": 5}), device="cpu")
        # five steps of the default configuration give a finite validation loss
        assert workload.name == name
        assert math.isfinite(result.final_val_loss), name


def test_small_data_workload_has_at_most_200_training_examples(public):
    assert public.wine_small().num_train <= 200


def test_high_lr_workload_defaults_to_adamw_at_lr_0_3(public):
    assert public.cancer_high_lr().default_config["lr"] == 0.3


def test_waveforms_are_balanced_and_shaped_for_conv1d(public):
    x, y = public.waveform_sequences(400)
    # (N, 1, length) signals, four classes each about a quarter of the data
    assert x.shape == (400, 1, 64)
    assert all(60 < int((y == k).sum()) < 140 for k in range(4))
