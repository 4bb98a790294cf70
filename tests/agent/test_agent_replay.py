"""Replaying the recorded runs in tests/cassettes: no network, no training, the same answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainopt.agent import OptimizationRequest, TrainingOptimizationAgent
from trainopt.cli import app
from trainopt.errors import OptimizationError

CASSETTES = Path(__file__).resolve().parents[1] / "cassettes"
WORKLOADS = ["digits-mlp", "digits-cnn"]


def _recorded(workload: str) -> tuple[OptimizationRequest, dict]:
    meta = json.loads((CASSETTES / workload / "recording.json").read_text())
    result = json.loads((CASSETTES / workload / "result.json").read_text())
    return OptimizationRequest(**{**meta["request"], "workload": workload}), result


def _json(response) -> dict:
    return json.loads(response.model_dump_json())


@pytest.mark.parametrize("workload", WORKLOADS)
def test_replay_returns_the_recorded_answer(workload, tmp_path, blocked_network):
    request, recorded = _recorded(workload)
    response = TrainingOptimizationAgent(out_dir=tmp_path).optimize_training(request, replay=CASSETTES / workload)
    replayed = _json(response)
    # same recommendation, evidence, rationale, candidates and measured gain, with every LM call replayed
    for key in ("recommended", "evidence", "rationale", "candidates", "gain", "prediction"):
        assert replayed[key] == recorded[key], key
    assert response.replayed and response.lm.calls == recorded["lm"]["calls"] >= 2
    assert response.lm.answered_by == recorded["lm"]["answered_by"]
    assert all("offline" not in who for who in response.lm.answered_by)  # the server's LM answered
    # the report is one file: plots embedded as PNG, no external resources
    html = Path(response.artifacts.report_html).read_text()
    assert html.count("data:image/png;base64,") >= 4 and 'src="http' not in html
    # both recordings held finals: the leader's horizon twin is among the candidates, named as such
    assert [c["source"] for c in recorded["candidates"]].count("horizon") == 1 and "horizon twin" in html
    # the claim is about the user's run H: measured there (digits-mlp's 90 s pay for runs of H) or predicted
    gain = recorded["gain"]
    assert gain["predicted"] == (workload == "digits-cnn") and gain["horizon_examples"] == 300 * 64
    assert ("predicted at H" if gain["predicted"] else "measured at H") in html
    # and what a user's own 5 seeds should show
    low, high = gain["new_seeds_interval"]
    tail = ", predicted" if gain["predicted"] else ""
    assert f"over 5 new seeds of yours its mean gain at H lands in {low:+.1%} to {high:+.1%} (90%{tail})" in html
    assert json.loads(Path(response.artifacts.result_json).read_text())["recommended"] == replayed["recommended"]


def test_replay_of_a_different_request_fails_loudly(tmp_path, blocked_network):
    request, _ = _recorded("digits-mlp")
    limits = {**request.constraints.model_dump(), "min_accuracy": 0.123}
    changed = request.model_copy(update={"constraints": type(request.constraints)(**limits)})
    # the LM was never asked with that constraint: the cassette has no answer, and nothing is invented
    with pytest.raises(OptimizationError, match="failed during propose"):
        TrainingOptimizationAgent(out_dir=tmp_path).optimize_training(changed, replay=CASSETTES / "digits-mlp")


def test_replay_refuses_another_workload(tmp_path):
    with pytest.raises(OptimizationError, match="recording is of workload 'digits-mlp'"):
        TrainingOptimizationAgent(out_dir=tmp_path).optimize_training(
            OptimizationRequest(workload="digits-cnn"), replay=CASSETTES / "digits-mlp"
        )


def test_cassettes_hold_no_secrets():
    for workload in WORKLOADS:
        text = (CASSETTES / workload / "cassette.yaml").read_text().lower()
        # filtered headers are gone from the recorded requests
        assert "authorization:" not in text and "api-key:" not in text


def test_cli_optimize_replay_prints_the_table_and_report(tmp_path, blocked_network):
    _, recorded = _recorded("digits-mlp")
    result = CliRunner().invoke(
        app, ["optimize", "--workload", "digits-mlp", "--replay", str(CASSETTES / "digits-mlp"), "--out", str(tmp_path)]
    )
    output = result.stdout + (result.stderr or "")
    # exit 0, the held-out comparison table with its interval and decision, and the report's path
    assert result.exit_code == 0, output
    gain = recorded["gain"]
    assert "for H = 19,200 training examples" in output and f"{gain['baseline']['loss']:.4f}" in output
    assert f"90% interval {gain['interval'][0]:+.1%}" in output and gain["reason"][:40] in output.replace("\n", " ")
    low, high = gain["new_seeds_interval"]
    assert "if you re-run it" in output and f"{low:+.1%} to {high:+.1%}" in output.replace("\n", " ")
    assert str(tmp_path / "report.html") in output.replace("\n", "")


def test_replay_store_answers_for_the_recorded_device(tmp_path):
    import optuna

    from trainopt.agent.record import ReplayStore
    from trainopt.tools.store import TrialStore, trial_key
    from trainopt.tools.trial_config import TrialConfig
    from trainopt.tools.trials import run_trial

    config = TrialConfig(steps=5)
    measured = run_trial("digits-mlp", config, device="cpu").model_copy(update={"device": "cuda:0"})
    storage = f"sqlite:///{tmp_path / 'trials.db'}"
    store = TrialStore(storage)  # write it as a GPU machine's store would hold it
    store.study.add_trial(optuna.trial.create_trial(value=measured.final_val_loss, params={}, distributions={},
                                                    user_attrs={"key": trial_key("digits-mlp", config, "cuda"),
                                                                "workload": "digits-mlp", "device": "cuda",
                                                                "result": measured.model_dump_json()}))
    # this CPU machine's own store does not see it; a replay of the GPU recording does, without training
    assert TrialStore(storage).get("digits-mlp", config, "cpu") is None
    replayed = ReplayStore(storage, "cuda").run("digits-mlp", config, device="cpu")
    assert replayed.from_store and replayed.device == "cuda:0"
    assert replayed.final_val_loss == measured.final_val_loss
    with pytest.raises(OptimizationError, match="no recorded trial"):
        ReplayStore(storage, "cuda").run("digits-mlp", TrialConfig(steps=6))


def test_a_run_recorded_on_a_gpu_is_read_back_on_this_cpu(tmp_path):
    # tests/cassettes/digits-cnn-cuda was recorded on an NVIDIA H200 (bench/gpu_check.py, torch 2.11) in an
    # older recording format, so it is data here, not a replay: its trial store, read through the replay's
    # store under the CUDA device type and that machine's workload fingerprint, answers every trial its
    # response names, without training; and its batch probe measured CUDA memory
    import shutil

    from trainopt.agent.record import ReplayStore
    from trainopt.tools.trial_config import TrialConfig

    folder = CASSETTES / "digits-cnn-cuda"
    recorded = json.loads((folder / "result.json").read_text())
    assert recorded["device"] == "cuda" and json.loads((folder / "recording.json").read_text())["device"] == "cuda"
    shutil.copyfile(folder / "trials.db", tmp_path / "trials.db")  # the store opens read-write
    store = ReplayStore(f"sqlite:///{tmp_path / 'trials.db'}", "cuda")
    trials = recorded["evidence"]["trials"]
    assert trials and {t["device"].split(":")[0] for t in trials} == {"cuda"}
    for trial in trials:
        stored = store.run("digits-cnn", TrialConfig(**trial["config"]), device="cpu")
        assert stored.from_store and stored.device.startswith("cuda"), trial["purpose"]
        assert stored.final_val_loss == trial["final_val_loss"], trial["purpose"]
    # nothing is stored under this CPU's device type: a CPU run would not find these trials
    assert ReplayStore(f"sqlite:///{tmp_path / 'trials.db'}", "cpu").get(
        "digits-cnn", TrialConfig(**trials[0]["config"])) is None
    # the batch probe measured CUDA's allocator against free CUDA memory; every batch up to the probed
    # range's top fitted (none ran out of memory), so the range, not memory, bounds the batch
    probe = recorded["evidence"]["tools"]["batch_size_optimizer"]
    assert probe["device"] == "cuda" and probe["memory_method"] == "torch.cuda.max_memory_allocated"
    assert probe["budget_source"].startswith("free CUDA memory") and probe["limited_by"] == "search range"
    sizes = [m["batch_size"] for m in probe["measurements"]]
    assert all(m["fits"] and not m["out_of_memory"] for m in probe["measurements"])
    assert probe["max_batch_size"] == max(sizes) == recorded["evidence"]["digest"]["batch_range"][1]
    peaks = [m["peak_memory_mb"] for m in probe["measurements"]]
    assert peaks == sorted(peaks) and peaks[-1] < probe["max_memory_mb"]
