"""optuna-dashboard opens the trial store as it is: objective, learning curve and params."""

from __future__ import annotations

import json
from wsgiref.util import setup_testing_defaults

import pytest

from trainopt.tools.store import TrialStore
from trainopt.tools.trial_config import TrialConfig

optuna_dashboard = pytest.importorskip("optuna_dashboard")


def _get(app, path: str):
    """One GET through the dashboard's WSGI app, in-process (no server, no socket)."""
    environ: dict = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = path
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    assert status[0].startswith("200"), (status, body[:500])
    return json.loads(body)


def test_the_dashboard_reads_a_stored_trial_back(tmp_path):
    storage = f"sqlite:///{tmp_path / 'trials.db'}"
    stored = TrialStore(storage).run("digits-mlp", TrialConfig(lr=3e-3, steps=30, schedule="cosine", grad_clip=1.0))
    app = optuna_dashboard.wsgi(storage)

    study = _get(app, "/api/studies")["study_summaries"][0]
    detail = _get(app, f"/api/studies/{study['study_id']}")
    trial = detail["trials"][0]
    # the objective is the final validation loss
    assert study["study_name"] == "trainopt-trials" and study["directions"] == ["minimize"]
    assert trial["values"] == [pytest.approx(stored.final_val_loss)]
    # intermediate values are the validation curve, so the learning-curve plot has points
    assert detail["has_intermediate_values"]
    assert [(p["step"], p["value"]) for p in trial["intermediate_values"]] == [
        (s, pytest.approx(v)) for s, v in zip(stored.val_steps, stored.val_losses, strict=True)]
    # params are the configuration
    params = {p["name"]: p["param_external_value"] for p in trial["params"]}
    assert params["optimizer"] == "adamw" and params["schedule"] == "cosine"
    assert float(params["lr"]) == pytest.approx(3e-3) and int(params["batch_size"]) == 64
    assert float(params["grad_clip"]) == 1.0
