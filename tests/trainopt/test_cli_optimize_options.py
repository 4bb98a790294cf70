"""`trainopt optimize` options of the held-out confirmation: bad values are named, nothing runs."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from trainopt.cli import app


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "0,1", "--confirm-seeds", "1,5"], "confirm_seeds must be held out from the selection seeds"),
        (["--seeds", "a,b"], "seeds must be comma-separated integers but got 'a,b'"),
        (["--proposals", "foo"], "proposals: Input should be 'planner', 'random' or 'none' (got 'foo')"),
        (["--min-gain", "2"], "min_gain: Input should be less than 1 (got 2.0)"),
    ],
)
def test_bad_options_are_named_before_anything_runs(args, message, tmp_path):
    result = CliRunner().invoke(app, ["optimize", "--out", str(tmp_path), *args])
    output = " ".join((result.stdout + (result.stderr or "")).split())
    # exit 2 with the field and the value; no trial store was created
    assert result.exit_code == 2 and message in output
    assert not (tmp_path / "trials.db").exists()
