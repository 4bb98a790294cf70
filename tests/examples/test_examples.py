"""The examples run as a user would copy them (small budgets, offline)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_own_model_example_is_a_workload_that_trains():
    from trainopt.tools.trial_config import TrialConfig
    from trainopt.tools.trials import run_trial

    workload = _load("optimize_own_model").tumour_workload()
    result = run_trial(workload, TrialConfig(**{**workload.default_config, "steps": 20}), device="cpu")
    assert (workload.num_train, workload.num_val, workload.num_test) == (455, 57, 57)
    assert math.isfinite(result.final_val_loss) and 0.5 < result.final_val_metric <= 1.0


@pytest.mark.slow
def test_own_model_example_runs_the_agent(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["optimize_own_model.py", "--step-budget", "100", "--out", str(tmp_path)])
    _load("optimize_own_model").main()
    out = capsys.readouterr().out
    assert "challenger: " in out and "held-out seeds" in out and "90% interval" in out and "decision: " in out
    assert "for your run: H = 6,400 training examples" in out  # 200 steps at batch 32
    # with a challenger, what the user's own seeds should show
    assert ("if you re-run it: over 5 new seeds of yours" in out) == ("no raced candidate" not in out)
    assert (tmp_path / "report.html").is_file()


@pytest.mark.parametrize("loop", [[], ["--loop"]], ids=["create_agent", "hand-written loop"])
def test_langchain_example_runs_offline(monkeypatch, capsys, tmp_path, loop):
    monkeypatch.chdir(tmp_path)  # the tools write their full outputs under ./trainopt-out
    monkeypatch.setattr(sys, "argv", ["langchain_agent.py", "--offline", *loop])
    _load("langchain_agent").main()
    out = capsys.readouterr().out
    # the agent called the tool, read its summary back and answered
    assert "calls convergence_predictor" in out and "predicted_loss" in out and "[AIMessage] The forecast" in out


@pytest.mark.parametrize(("args", "line"), [
    (["--offline"], 'this example needs langchain: pip install "trainopt[langchain]"'),
    (["--model", "openai:gpt-4o-mini"],
     'this example needs langchain, langchain_openai: pip install "trainopt[langchain]" langchain-openai'),
], ids=["offline", "real model"])
def test_langchain_example_without_its_packages_names_the_pip_command(monkeypatch, capsys, args, line):
    for module in ("langchain", "langchain_openai"):  # as after `pip install -e .`: neither can be imported
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setattr(sys, "argv", ["langchain_agent.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        _load("langchain_agent").main()
    # exit 1 with one line: what is missing and the pip command that installs it; no traceback
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.splitlines() == [line]
