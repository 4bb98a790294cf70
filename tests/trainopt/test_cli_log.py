"""`trainopt optimize --log ...`: the agent's trials land in TensorBoard."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from trainopt.cli import app


def test_a_bad_log_spec_is_a_usage_error_naming_it(tmp_path):
    result = CliRunner().invoke(app, ["optimize", "--step-budget", "100", "--out", str(tmp_path), "--log", "wandb"])
    # exit code 2 and the message names the value, before anything trains
    assert result.exit_code == 2 and "wandb" in result.output
    assert not (tmp_path / "report.html").exists()


@pytest.mark.slow
def test_optimize_writes_every_trial_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from trainopt.tools.store import TrialStore

    result = CliRunner().invoke(app, ["optimize", "--workload", "digits-mlp", "--step-budget", "300", "--device", "cpu",
                                      "--out", str(tmp_path / "out"), "--log", f"tensorboard:{tmp_path / 'tb'}"])
    assert result.exit_code == 0, result.output
    runs = list((tmp_path / "tb" / "digits-mlp").iterdir())
    stored = TrialStore(out_dir=tmp_path / "out").results()
    # one TensorBoard run per trial the agent stored, each with event files
    assert len(runs) == len(stored) > 0
    assert all(any(p.name.startswith("events.out.tfevents") for p in run.iterdir()) for run in runs)


def test_trial_log_writes_its_curves_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    result = CliRunner().invoke(app, ["trial", "--workload", "digits-mlp", "--steps", "20", "--device", "cpu",
                                      "--out", str(tmp_path), "--log", f"tensorboard:{tmp_path / 'tb'}"])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "tb" / "digits-mlp").iterdir()
    # the run folder names the configuration and holds an event file
    assert run.name.startswith("adamw-lr0.001-b64-constant-s0-")
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
