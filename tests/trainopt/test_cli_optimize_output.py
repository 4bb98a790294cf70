"""`trainopt optimize` tells one story: a bar for every phase the agent reports (never a crash on a new
phase name), and an error as the last and only line, with no progress bar drawn after it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from trainopt.agent import TrainingOptimizationAgent
from trainopt.agent.phases import PHASES
from trainopt.cli import app


class _Answer:
    """Stands in for the OptimizationResponse: ``--json`` prints only this."""

    def model_dump_json(self, indent=None) -> str:
        return '{"answer": "measured"}'


def test_a_phase_without_a_bar_gets_one_instead_of_a_crash(monkeypatch, tmp_path):
    new_phases = ("finals", "respond", "a-phase-added-later")

    def optimize_training(self, request=None, *, record=None, replay=None):
        for phase in (*PHASES, *new_phases):
            self.progress(phase, 1, 1, f"{phase} done")
        return _Answer()

    monkeypatch.setattr(TrainingOptimizationAgent, "optimize_training", optimize_training)
    result = CliRunner().invoke(app, ["optimize", "--out", str(tmp_path), "--json"])
    # the run finished and answered; every phase reported, the new ones included, has its own bar
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == '{"answer": "measured"}'
    bars = [line.split()[0] for line in result.stderr.splitlines() if line.strip()]
    assert bars == [*dict.fromkeys((*PHASES, *new_phases))]


def test_an_unknown_workload_is_one_line_and_no_bar(tmp_path):
    result = CliRunner().invoke(app, ["optimize", "--workload", "no-such-workload", "--out", str(tmp_path)])
    # exit 2 and one line naming the workload and the known ones: no traceback, no empty bars after it
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error (hyperparameter): unknown workload 'no-such-workload'; known workloads:")


@pytest.mark.parametrize("make", [False, True], ids=["no-such-folder", "empty-folder"])
def test_replaying_what_is_not_a_recording_is_one_line_saying_how_to_record_one(make, tmp_path):
    folder = tmp_path / "DOES-NOT-EXIST"
    if make:
        folder.mkdir()
    result = CliRunner().invoke(app, ["optimize", "--replay", str(folder), "--out", str(tmp_path / "out")])
    # exit 2, one line naming the folder and what to do (record one with --record DIR); no traceback
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert f"--replay {folder} is not a recording" in result.stderr and "--record DIR" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()
