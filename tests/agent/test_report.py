"""report.html: the explanation agrees with the table, findings read as sentences, and the page
renders in headless Chromium at 1280 px with every plot shown and nothing overflowing."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from types import SimpleNamespace

import pytest

from trainopt.agent import explanation
from trainopt.agent.digest import MeasuredResult
from trainopt.agent.report import finding_text
from trainopt.tools.gradients import Finding

BASELINE = {"optimizer": "adamw", "lr": 1e-3, "batch_size": 64, "schedule": "constant", "weight_decay": 0.0}
DIGEST = SimpleNamespace(baseline=BASELINE, lr_suggested=1.2e-3, lr_safe_range=(1e-4, 2e-2), lr_batch_size=64,
                         batch_recommended=128)
WINNER = MeasuredResult(optimizer="adamw", lr=1e-3, batch_size=64, weight_decay=0.1, schedule="constant",
                        warmup_fraction=0.0, grad_clip=None, val_loss=0.12, val_metric=None, diverged=False, score=0.97)


def _comparison(challenger: dict, adopted: bool, interval=(0.01, 0.05)) -> dict:
    return {"steps": 440, "seeds": [1000, 1001, 1002], "baseline_val_loss": 0.1265, "challenger_val_loss": 0.1231,
            "relative_loss_reduction": 0.027, "interval": list(interval), "wins": 3, "losses": 0,
            "adopted": adopted, "reason": "", "challenger": challenger}


def test_a_weight_decay_only_change_is_named_and_the_winner_adopted():
    challenger = {**BASELINE, "weight_decay": 0.1, "warmup_steps": 0, "grad_clip": None}
    text = explanation.explain(DIGEST, WINNER, _comparison(challenger, adopted=True))
    # the one differing field is named; the text does not claim the baseline is recommended
    assert "weight decay 0 -> 0.1" in text and "1 field(s)" in text
    assert text.startswith("Recommended: the race winner") and "is kept" not in text
    # the held-out interval is quoted, not one seed's figure
    assert "90% interval +1.0% to +5.0%" in text and "3 held-out seeds" in text


def test_a_kept_baseline_names_the_changes_and_why_it_was_kept():
    challenger = {**BASELINE, "lr": 3e-3, "schedule": "cosine"}
    text = explanation.explain(DIGEST, WINNER, _comparison(challenger, adopted=False, interval=(-0.02, 0.06)))
    assert text.startswith("The baseline") and "is kept" in text
    assert "peak LR 0.001 -> 0.003" in text and "schedule constant -> cosine" in text
    assert "straddles zero" in text


@pytest.mark.parametrize(
    ("baseline", "other", "labels"),
    [
        (BASELINE, {**BASELINE, "weight_decay": 0.1}, ["weight decay"]),
        (BASELINE, {**BASELINE, "grad_clip": 1.0, "warmup_steps": 5}, ["warmup steps", "gradient clipping"]),
        (BASELINE, dict(BASELINE), []),
    ],
)
def test_config_changes_lists_every_differing_field(baseline, other, labels):
    assert [label for label, _, _ in explanation.config_changes(baseline, other)] == labels


@pytest.mark.parametrize(
    ("finding", "text"),
    [
        (Finding(severity="info", layer=None, evidence="noise scale 90 at batch 64.", suggested_fix="keep the batch"),
         "Whole model (info): noise scale 90 at batch 64. Suggested: keep the batch."),
        (Finding(severity="warning", layer="0.weight", evidence="ratio 0.02", suggested_fix="lower the LR"),
         "Layer 0.weight (warning): ratio 0.02. Suggested: lower the LR."),
    ],
)
def test_a_finding_reads_as_a_sentence(finding, text):
    # a model-level finding names the whole model, never "None"
    assert finding_text(finding) == text


CHECK = """<script>window.addEventListener('load', () => {
  const w = window.innerWidth, plots = [...document.querySelectorAll('img.plot')];
  const over = [...document.body.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > w + 1)
    .map(e => e.tagName + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''));
  const scrolled = [...document.querySelectorAll('.wide')].filter(e => e.scrollWidth > e.clientWidth + 1).length;
  document.body.setAttribute('data-check', JSON.stringify({w, page: document.documentElement.scrollWidth,
    plots: plots.map(i => [i.complete, i.naturalWidth, Math.round(i.getBoundingClientRect().width)]),
    over: over.slice(0, 5), scrolled}));
});</script>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from trainopt.agent import OptimizationRequest, TrainingOptimizationAgent

    out = tmp_path_factory.mktemp("report")
    response = TrainingOptimizationAgent(lm="offline", out_dir=out, device="cpu").optimize_training(
        OptimizationRequest(workload="digits-mlp", constraints={"step_budget": 900}))
    return response, (out / "report.html").read_text()


@pytest.mark.slow
def test_the_table_and_the_explanation_agree(report):
    response, page = report
    changed = re.findall(r'<tr class="diff"><td>([^<]+)</td>', page)
    changes = html.unescape(re.search(r'<p class="changes">(.*?)</p>', page, re.S).group(1))
    choice = html.unescape(re.search(r'<p class="choice">Planner: (.*?)</p>', page, re.S).group(1))
    # every field the table marks as changed is named in the report's own sentence and in the offline
    # planner's explanation, and both state the decision the response made
    assert all(label in changes and label in choice for label in changed)
    assert ("not adopted" in changes) != response.gain.adopted
    assert ("is kept" in choice or choice.startswith("The baseline")) != response.gain.adopted
    # the search's trials are listed with their origin
    if "hyperparameter_suggester" in response.evidence["tools"]:
        assert "TPE sample" in page or "enqueued race candidate" in page


@pytest.mark.slow
def test_report_renders_in_headless_chromium_at_1280px(report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    _, page = report
    shown = tmp_path / "report.html"
    shown.write_text(page.replace("</body>", CHECK + "</body>"))
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,900",
         "--virtual-time-budget=5000", "--dump-dom", shown.as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    check = json.loads(html.unescape(re.search(r'data-check="([^"]*)"', dom).group(1)))
    # every plot embedded is decoded and drawn at a visible size
    assert len(check["plots"]) == page.count('<img class="plot"') >= 4
    assert all(done and natural > 0 and width >= 300 for done, natural, width in check["plots"])
    # nothing is wider than the 1280 px window, and no table needs its scrollbar
    assert check["w"] == 1280 and check["page"] <= 1280 and check["over"] == [] and check["scrolled"] == 0
