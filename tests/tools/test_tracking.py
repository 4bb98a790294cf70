"""--log tensorboard / mlflow: each stored trial's curves and configuration, read back from disk."""

from __future__ import annotations

import pytest

from trainopt.errors import HyperparameterError
from trainopt.tools.store import TrialStore
from trainopt.tools.tracking import log_trials, parse_spec
from trainopt.tools.trial_config import TrialConfig

CONFIG = TrialConfig(lr=3e-3, steps=30, weight_decay=0.01)


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [("tensorboard", ("tensorboard", None)), ("tensorboard:runs/tb", ("tensorboard", "runs/tb")),
     ("mlflow:file:./mlruns", ("mlflow", "file:./mlruns")), ("mlflow", ("mlflow", None))],
)
def test_spec_names_the_backend_and_its_target(spec, parsed):
    assert parse_spec(spec) == parsed


def test_an_unknown_backend_is_a_hyperparameter_error():
    # the message names the bad value
    with pytest.raises(HyperparameterError, match="wandb"):
        parse_spec("wandb:x")


def test_tensorboard_event_files_hold_the_curves_and_config(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    store = TrialStore(f"sqlite:///{tmp_path / 'trials.db'}")
    with log_trials(f"tensorboard:{tmp_path / 'tb'}"):
        result = store.run("digits-mlp", CONFIG)
        store.run("digits-mlp", CONFIG)  # read back from the store: not written twice
    runs = list((tmp_path / "tb" / "digits-mlp").iterdir())
    # one run folder for the one trial that ran
    assert len(runs) == 1
    events = event_accumulator.EventAccumulator(str(runs[0]), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "val/loss", "grad/global_norm"} <= set(scalars)
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(result.train_losses, rel=1e-6)
    assert [e.step for e in events.Scalars("val/loss")] == result.val_steps
    # the configuration is there as text
    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"lr": 0.003' in text and '"weight_decay": 0.01' in text


def test_mlflow_file_store_holds_the_curves_and_params(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    uri = (tmp_path / "mlruns").as_uri()
    store = TrialStore(f"sqlite:///{tmp_path / 'trials.db'}")
    with log_trials(f"mlflow:{uri}"):
        result = store.run("digits-mlp", CONFIG)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("trainopt/digits-mlp")
    (run,) = client.search_runs([experiment.experiment_id])
    # params are the configuration, metrics the curves, per step
    assert run.data.params["lr"] == "0.003" and run.data.params["optimizer"] == "adamw"
    assert run.data.tags["trainopt.workload"] == "digits-mlp" and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(result.train_losses, rel=1e-6)
    val = client.get_metric_history(run.info.run_id, "val_loss")
    assert sorted(m.step for m in val) == result.val_steps
