"""A response whose challenger diverged on held-out seeds, on a workload without a metric, renders through
every view: the CLI table, report.html, the chat answer, the MCP/LangChain summary and the explanation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from trainopt.agent.chat_tools import OptimizeSummary
from trainopt.agent.digest import ProbeDigest
from trainopt.agent.explanation import explain
from trainopt.agent.offline_chat import _optimize_answer
from trainopt.agent.report import write_report
from trainopt.agent.response_summary import summarize_response
from trainopt.agent.schemas import OptimizationResponse
from trainopt.commands.optimize import summary_table

RECORDED = Path(__file__).resolve().parents[1] / "cassettes" / "digits-mlp" / "result.json"


@pytest.fixture
def diverged() -> OptimizationResponse:
    """The recorded digits-mlp answer with its challenger diverged on two held-out seeds and no metric."""
    response = OptimizationResponse.model_validate_json(RECORDED.read_text())
    g = response.gain
    losses = [math.inf, *g.challenger_val_losses[1:-1], math.inf]
    gain = g.model_copy(update={
        "challenger_val_losses": losses, "relative_loss_reduction": -math.inf, "interval": (-math.inf, -math.inf),
        "objective_gain": -math.inf, "objective_interval": (-math.inf, -math.inf), "new_seeds_interval": (
            -math.inf, math.inf), "metric_change": None, "adopted": False, "significant": False,
        "baseline": g.baseline.model_copy(update={"accuracy": None}),
        "challenger": g.challenger.model_copy(update={"loss": math.inf, "accuracy": None}),
        "reason": "the challenger is significantly worse: a run diverged; the baseline is recommended"})
    return response.model_copy(update={"gain": gain, "recommended": response.baseline, "prediction": None})


def test_the_cli_table_renders_a_diverged_challenger(diverged):
    console = Console(record=True, width=200)
    console.print(summary_table(diverged))
    text = console.export_text()
    # the loss reduction is not a figure, the accuracy is missing: both said, no crash
    assert "n/a" in text and "for H = 19,200 training examples" in text
    assert "if you re-run it" not in text  # an unbounded interval is not where a user's seeds land


def test_the_summary_and_the_chat_answer_render_it(diverged):
    summary = summarize_response(diverged)
    # the summary crosses JSON: infinities are dropped to null there, never a crash
    assert json.loads(json.dumps(summary, default=str))["held_out"]["if_you_rerun"] is None
    g = diverged.gain
    observation = OptimizeSummary(
        workload=diverged.workload, budget_s=90.0, recommended={**diverged.recommended.model_dump(mode="json")},
        baseline=diverged.baseline.model_dump(mode="json"), steps=g.steps, horizon=diverged.horizon.text(),
        claim=g.claim_text(), seeds=g.seeds, baseline_val_loss=g.baseline.loss, recommended_val_loss=g.baseline.loss,
        relative_loss_reduction=g.relative_loss_reduction, interval=g.interval, adopted=False, reason=g.reason,
        baseline_metric=None, recommended_metric=None, candidates_measured=len(diverged.candidates),
        report_html=None, notes=["a note", "another note"]).model_dump(mode="json")
    answer = _optimize_answer(observation, "optimize digits-mlp")
    # the answer names the run it is for, keeps the default, and lists the notes one per line
    assert "H = 19,200 training examples" in answer and "keep the default" in answer
    assert "\n- a note\n- another note" in answer


def test_the_explanation_survives_figures_that_crossed_json_as_null(digest):
    # a NaN or an infinity becomes null in JSON: the explanation says n/a instead of crashing on None
    comparison = {"seeds": [1000, 1001], "steps": 60, "claim": "predicted at H", "challenger_val_loss": None,
                  "baseline_val_loss": 0.12, "relative_loss_reduction": None, "interval": [None, None],
                  "challenger": {"optimizer": "adamw", "lr": 0.02, "batch_size": 32, "schedule": "constant"},
                  "adopted": False, "wins": 0}
    text = explain(digest, None, comparison)
    assert "n/a" in text and "diverged" in text and "predicted at H" in text


def test_report_html_renders_it(diverged, tmp_path, digest: ProbeDigest):
    run = SimpleNamespace(tools={}, outcomes=[], results={}, confirm={}, digest=digest, budget=None)
    path = write_report(diverged, run, tmp_path / "report.html", plots=False)
    html = path.read_text()
    # the decision and the run it is about are in the report; nothing crashed on the infinities
    assert "Recommended for H = 19,200 training examples" in html and "significantly worse" in html
