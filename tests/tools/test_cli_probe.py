import json

import pytest
from typer.testing import CliRunner

from trainopt.cli import app

runner = CliRunner()



def test_probe_lr_json_parses_and_writes_a_png(tmp_path):
    result = runner.invoke(app, ["probe", "lr", "--workload", "digits-mlp", "--json", "--out", str(tmp_path),
                                 "--set", "range_steps=20", "--set", "check_steps=10", "--set", "budget_steps=20",
                                 "--set", 'schedules=["constant"]'])
    assert result.exit_code == 0, result.output
    # stdout is exactly the Output as JSON; the figure and the JSON file are in --out.
    output = json.loads(result.stdout)
    assert output["sweep"]["lrs"][0] <= output["suggested_lr"] <= output["sweep"]["lrs"][-1]
    assert (tmp_path / "learning_rate_scheduler.png").stat().st_size > 0
    assert json.loads((tmp_path / "learning_rate_scheduler.json").read_text()) == output


def test_probe_gradients_prints_tables_and_a_png(tmp_path):
    result = runner.invoke(app, ["probe", "gradients", "--out", str(tmp_path), "--set", "steps=10"])
    assert result.exit_code == 0, result.output
    assert "findings" in result.stdout and "clip_threshold" in result.stdout
    assert (tmp_path / "gradient_analyzer.png").stat().st_size > 0


def test_impossible_memory_budget_is_an_error_message_not_a_traceback(tmp_path):
    result = runner.invoke(app, ["probe", "batch", "--out", str(tmp_path), "--set", "max_memory_mb=0.01",
                                 "--set", "timed_steps=1"])
    # Exit code 1 with the budget named; no exception escapes.
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "max_memory_mb=0.01" in result.output


@pytest.mark.parametrize("pair", ["no_such_input=1", "missing-equals"])
def test_bad_set_pairs_are_usage_errors(pair):
    result = runner.invoke(app, ["probe", "lr", "--set", pair])
    assert result.exit_code == 2


def test_invalid_value_is_a_hyperparameter_error():
    result = runner.invoke(app, ["probe", "lr", "--set", "range_steps=500"])
    assert result.exit_code == 1 and "range_steps=500" in result.output


def test_options_lists_the_tool_inputs():
    result = runner.invoke(app, ["probe", "batch", "--options"])
    assert result.exit_code == 0 and "max_memory_mb" in result.stdout
