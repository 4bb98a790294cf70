"""`trainopt diffusion`: help texts, a short training run, and sampling through a saved router."""

import pytest
import torch
from typer.testing import CliRunner

from trainopt.ars.diffusion import (
    NoisePredictor,
    NoisePredictorConfig,
    Router,
    load_checkpoint,
    save_checkpoint,
    save_router,
)
from trainopt.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args", [["diffusion", "--help"], ["diffusion", "train", "--help"],
                                  ["diffusion", "sample", "--help"]])
def test_help_works(args):
    result = runner.invoke(app, args)
    # Exit 0 and the options the issue names are documented.
    assert result.exit_code == 0, result.output
    assert "--data" in result.output or "sample" in result.output


def test_sample_help_says_what_happens_when_checkpoints_are_missing():
    result = runner.invoke(app, ["diffusion", "sample", "--help"])
    # Both routers say what they train when something is missing.
    assert "missing" in result.output and "trains it first" in result.output and "cached" in result.output


def test_unknown_data_is_rejected(tmp_path):
    result = runner.invoke(app, ["diffusion", "train", "--data", "cifar", "--out-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "cifar" in result.output


def test_train_then_sample_through_a_saved_router(tmp_path):
    result = runner.invoke(app, ["diffusion", "train", "--data", "moons", "--steps", "5", "--out-dir", str(tmp_path)])
    # A checkpoint loadable with weights_only=True.
    assert result.exit_code == 0, result.output
    model, meta = load_checkpoint(tmp_path / "moons.pt")
    assert meta["steps"] == 5
    torch.manual_seed(0)
    save_router(Router(), tmp_path / "router-moons.pt", datasets=["moons"])
    out = tmp_path / "samples.png"
    result = runner.invoke(app, ["diffusion", "sample", "--data", "moons", "--lam", "0.5", "--n", "50",
                                 "--router", "reinforce", "--out", str(out), "--out-dir", str(tmp_path)])
    # The router's choice is printed with the counted NFE, and the scatter plot is written.
    assert result.exit_code == 0, result.output
    assert "router chose expert" in result.output and "NFE" in result.output
    assert out.stat().st_size > 1000


def test_sample_through_the_bandit_router_honours_the_speed_weight(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(NoisePredictor(NoisePredictorConfig(data_dim=2, hidden=16, depth=1, time_dim=8)),
                    tmp_path / "moons-3000.pt", data="moons", steps=3000)  # where the bandit path looks
    out = tmp_path / "fast.png"
    result = runner.invoke(app, ["diffusion", "sample", "--data", "moons", "--lam", "10000", "--n", "50",
                                 "--no-distilled", "--pool-n", "40", "--out", str(out), "--out-dir", str(tmp_path)])
    # At lambda = 10^4 the cheapest arms win: 5 model calls, printed with the measured quality; plot written.
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps lines at the terminal width
    assert "5 model calls (NFE)" in text and "energy distance" in text
    assert out.stat().st_size > 1000
