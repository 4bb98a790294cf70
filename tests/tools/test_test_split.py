"""The test split: a workload's third split, measured once at the end of a trial and selected on by nothing."""

import json
import math

import pytest
import torch
from torch import nn

from trainopt.errors import WorkloadError
from trainopt.tools.ddp import Ranks, shard
from trainopt.tools.store import TrialStore
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import TrialResult, run_trial
from trainopt.tools.workloads import Workload, get_workload
from trainopt.tools.workloads.char_gpt import char_windows, encode_text, pydoc_text

CONFIG = TrialConfig(lr=3e-2, batch_size=16, steps=20)


def regression(test_data="shifted", n=64) -> Workload:
    """y = x w on train and val; by default the test targets are shifted by 1, so test loss differs."""
    g = torch.Generator().manual_seed(0)
    x, x_test = torch.randn(n, 4, generator=g), torch.randn(n // 2, 4, generator=g)
    w = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    if test_data == "shifted":
        test_data = (x_test, x_test @ w + 1.0)
    return Workload.from_callables(
        lambda: nn.Linear(4, 1), (x, x @ w), (x[: n // 2], x[: n // 2] @ w),
        lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]),
        lambda m, b: (m(b[0]) - b[1]).abs().mean().item(),  # mean absolute error
        name="regression", test_data=test_data,
    )


def test_test_loss_and_metric_reach_the_result():
    result = run_trial(regression(), CONFIG, device="cpu")
    # The final model is measured on test: finite, and not the validation numbers (the test targets differ).
    assert math.isfinite(result.final_test_loss) and result.final_test_loss != result.final_val_loss
    assert result.final_test_metric is not None and result.final_test_metric != result.final_val_metric


def test_test_data_equal_to_validation_scores_like_validation():
    workload = regression()
    workload.test_data = workload.val_data
    result = run_trial(workload, CONFIG, device="cpu")
    # The same averaging as validation: identical data gives identical numbers.
    assert result.final_test_loss == result.final_val_loss
    assert result.final_test_metric == result.final_val_metric


def test_test_loss_is_the_mean_loss_of_the_final_model_on_test():
    workload, trained = regression(), []
    result = run_trial(workload, CONFIG, device="cpu", on_trained=trained.append)
    x, y = workload.test_data
    with torch.no_grad():
        expected = nn.functional.mse_loss(trained[0](x), y).item()
    # The model on_trained receives is the one test measured.
    assert result.final_test_loss == pytest.approx(expected, rel=1e-6)


def test_without_test_data_the_fields_are_none():
    result = run_trial(regression(test_data=None), CONFIG, device="cpu")
    assert result.final_test_loss is None and result.final_test_metric is None


def test_a_diverged_trial_has_no_test_numbers():
    result = run_trial(regression(), TrialConfig(optimizer="sgd", lr=50.0, batch_size=16, steps=50), device="cpu")
    # Divergence ends the trial before a final model exists to measure.
    assert result.diverged
    assert result.final_test_loss is None and result.final_test_metric is None


def test_test_data_changes_nothing_that_selection_reads():
    with_test = run_trial(regression(), CONFIG, device="cpu")
    without = run_trial(regression(test_data=None), CONFIG, device="cpu")
    # Training and validation are the same, bit for bit, with or without a test split.
    assert with_test.train_losses == without.train_losses
    assert with_test.val_losses == without.val_losses and with_test.score == without.score


def test_empty_test_data_is_a_workload_error():
    with pytest.raises(WorkloadError, match="no test examples"):
        regression(test_data=(torch.empty(0, 4), torch.empty(0, 1)))


@pytest.mark.parametrize("change", ["values", "added"])
def test_the_fingerprint_covers_test_data(change):
    a = regression()
    if change == "values":
        x, y = a.test_data
        b = regression(test_data=(x, y + 1.0))
    else:
        a, b = regression(test_data=None), regression()
    # A changed (or added) test set is a changed workload.
    assert a.fingerprint() != b.fingerprint()


def test_the_same_test_data_gives_the_same_fingerprint():
    assert regression().fingerprint() == regression().fingerprint()


@pytest.mark.parametrize("name, sizes", [
    ("digits-mlp", (1437, 180, 180)),
    ("diffusion-2d", (20000, 4000, 4000)),
])
def test_a_builtin_test_split_is_disjoint_from_train_and_val(name, sizes):
    workload = get_workload(name)
    rows = lambda data: {tuple(r) for r in data[0].tolist()}  # noqa: E731
    train, val, test = rows(workload.train_data), rows(workload.val_data), rows(workload.test_data)
    # Sizes as documented; no test example appears in training or validation.
    assert (workload.num_train, workload.num_val, workload.num_test) == sizes
    assert len(test) == workload.num_test  # no duplicate rows, so set disjointness is row disjointness
    assert test.isdisjoint(train) and test.isdisjoint(val)


def test_char_gpt_tests_on_a_stretch_of_text_after_training_and_validation():
    workload = get_workload("char-gpt")
    windows = char_windows(encode_text(pydoc_text())[0], block_size=64)  # (N, 65), in text order
    (train,), (val,), (test,) = workload.train_data, workload.val_data, workload.test_data

    def start(block: torch.Tensor) -> int:
        """Where ``block`` (consecutive windows) begins in the text's windows."""
        return next(i for i in range(len(windows) - len(block) + 1) if torch.equal(windows[i : i + len(block)], block))

    # The text repeats itself in places, so windows are told apart by position, not content:
    # training is the first windows, validation follows it, test follows validation.
    assert (len(train), len(val), len(test)) == (6437, 256, 256)
    assert start(train) == 0 and start(val) >= len(train) and start(test) >= start(val) + len(val)


def test_every_builtin_has_a_test_split_in_its_data_column():
    rows = {name: get_workload(name).describe()["data"] for name in ("digits-mlp", "digits-cnn", "moe-digits")}
    assert set(rows.values()) == {"1,437 / 180 / 180"}
    assert get_workload("char-gpt").num_test > 0 and get_workload("diffusion-2d").num_test > 0


def test_a_stored_result_without_the_test_fields_loads(tmp_path):
    result = run_trial(regression(test_data=None), TrialConfig(batch_size=16, steps=2), device="cpu")
    old = json.loads(result.model_dump_json())
    del old["final_test_loss"], old["final_test_metric"]
    # A result written before the test split existed: the fields default to None.
    loaded = TrialResult.model_validate_json(json.dumps(old))
    assert loaded.final_test_loss is None and loaded.final_test_metric is None
    assert loaded.final_val_loss == result.final_val_loss


def test_the_test_fields_survive_the_trial_store(tmp_path):
    store, workload = TrialStore(out_dir=tmp_path), regression()
    first = store.run(workload, CONFIG, device="cpu")
    again = TrialStore(out_dir=tmp_path).run(workload, CONFIG, device="cpu")
    # Read back from the database (what queue workers hand the coordinator), not re-run.
    assert again.from_store
    assert (again.final_test_loss, again.final_test_metric) == (first.final_test_loss, first.final_test_metric)


def test_a_ddp_rank_shard_keeps_the_test_split():
    workload = regression()
    ranked = shard(workload, Ranks(rank=0, world=1, device=torch.device("cpu"), backend="gloo"))
    assert ranked.test_data is workload.test_data
