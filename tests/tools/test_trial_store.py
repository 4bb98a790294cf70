import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from trainopt.cli import app
from trainopt.errors import ResourceError
from trainopt.tools.store import SCHEMA_VERSION, TrialStore, trial_key
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial
from trainopt.tools.workloads import Workload


def test_a_stored_trial_is_read_back_not_rerun(tmp_path):
    storage = f"sqlite:///{tmp_path / 'trials.db'}"
    config = TrialConfig(steps=10)
    first = TrialStore(storage).run("digits-mlp", config)
    # A second store on the same file (a new process, say) finds the finished trial.
    again = TrialStore(storage).run("digits-mlp", config)
    assert not first.from_store and again.from_store
    assert again.train_losses == first.train_losses


def test_the_key_includes_the_seed(tmp_path):
    store = TrialStore(f"sqlite:///{tmp_path / 'trials.db'}")
    store.run("digits-mlp", TrialConfig(steps=5, seed=0))
    assert store.get("digits-mlp", TrialConfig(steps=5, seed=1)) is None
    assert len(store.results("digits-mlp")) == 1


def mse(model, batch):
    return nn.functional.mse_loss(model(batch[0]), batch[1])


def mae(model, batch):
    return (model(batch[0]) - batch[1]).abs().mean()


def _custom(y_scale=1.0, make_model=lambda: nn.Linear(4, 1), loss=mse) -> Workload:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x.sum(-1, keepdim=True) * y_scale
    return Workload.from_callables(make_model, (x, y), (x, y), loss, default_config={"batch_size": 16})


CONFIG = TrialConfig(steps=5, batch_size=16)


def test_two_datasets_with_the_same_name_and_config_are_not_read_back_as_each_other(tmp_path):
    store = TrialStore(f"sqlite:///{tmp_path / 'trials.db'}")
    first = store.run(_custom(y_scale=1.0), CONFIG)
    # both are named "custom"; the second has other labels: it is measured, not read back
    second = store.run(_custom(y_scale=3.0), CONFIG)
    assert not second.from_store and second.final_val_loss != first.final_val_loss


def test_an_unchanged_user_workload_is_read_back_by_a_new_store(tmp_path):
    storage = f"sqlite:///{tmp_path / 'trials.db'}"
    first = TrialStore(storage).run(_custom(), CONFIG)
    # a new instance of the same workload (the next process, say) finds the trial
    again = TrialStore(storage).run(_custom(), CONFIG)
    assert again.from_store and again.final_val_loss == first.final_val_loss


@pytest.mark.parametrize("edited", [
    {"make_model": lambda: nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))},
    {"loss": mae},
], ids=["edited-model", "edited-loss"])
def test_an_edited_model_or_loss_is_rerun(tmp_path, edited):
    storage = f"sqlite:///{tmp_path / 'trials.db'}"
    TrialStore(storage).run(_custom(), CONFIG)
    assert not TrialStore(storage).run(_custom(**edited), CONFIG).from_store


def test_a_schema_1_store_opens_and_its_name_keyed_trials_are_not_matched(tmp_path):
    storage = f"sqlite:///{tmp_path / 'trials.db'}"
    old = run_trial("digits-mlp", CONFIG, device="cpu")
    study = optuna.create_study(storage=storage, study_name="trainopt-trials")  # as trainopt 0.1 wrote it
    study.add_trial(optuna.trial.create_trial(value=old.final_val_loss, params={}, distributions={}, user_attrs={
        "key": trial_key("digits-mlp", CONFIG, "cpu"), "workload": "digits-mlp", "device": "cpu",
        "result": old.model_dump_json()}))
    store = TrialStore(storage)
    # the store opens, is marked with the current schema, lists the old trial, but measures again
    assert store.study.user_attrs["schema_version"] == SCHEMA_VERSION
    assert len(store.results("digits-mlp")) == 1
    assert store.get("digits-mlp", CONFIG, "cpu") is None


def test_a_store_from_a_newer_trainopt_is_refused(tmp_path):
    storage = f"sqlite:///{tmp_path / 'trials.db'}"
    TrialStore(storage).study.set_user_attr("schema_version", SCHEMA_VERSION + 1)
    with pytest.raises(ResourceError, match=f"schema_version={SCHEMA_VERSION + 1}"):
        TrialStore(storage)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_store_file_is_a_resource_error_naming_it(tmp_path, damage):
    db = tmp_path / "trials.db"
    TrialStore(f"sqlite:///{db}").run("digits-mlp", CONFIG)
    data = db.read_bytes()
    db.write_bytes(b"not a database " * 100 if damage == "garbage" else data[: len(data) // 3])
    with pytest.raises(ResourceError, match="cannot open the trial store") as error:
        TrialStore(f"sqlite:///{db}").run("digits-mlp", CONFIG)
    assert str(db) in str(error.value)


def _completed(db) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_sigkill_mid_study_then_rerun_resumes_without_rerunning(tmp_path):
    db = tmp_path / "trials.db"
    command = [sys.executable, "-m", "trainopt.cli", "sweep", "--workload", "digits-mlp",
               "--lr", "1e-3,2e-3,3e-3,4e-3,5e-3,6e-3", "--steps", "250", "--out", str(tmp_path), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 240
    while _completed(db) < 1 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = _completed(db)
    # The kill landed mid-study: some trials finished, not all.
    assert 1 <= finished_before < 6

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    # Every finished trial was read back; only the rest ran; nothing was stored twice.
    assert rerun.stdout.count('"from_store": true') == finished_before
    assert _completed(db) == 6


def test_cli_trial_json_and_bad_input_leaves_no_file(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["trial", "--steps", "5", "--out", str(tmp_path / "ok"), "--json"])
    assert ok.exit_code == 0, ok.output
    assert '"steps_run": 5' in ok.output
    bad = runner.invoke(app, ["trial", "--lr", "-1", "--out", str(tmp_path / "bad")])
    # A clear error naming the value, exit code 2, and no store file half-created.
    assert bad.exit_code == 2
    assert "lr=-1.0" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "bad").exists()



def test_a_locked_or_half_created_store_is_retried_then_opened(tmp_path, monkeypatch):
    import sqlalchemy

    from trainopt.tools import store as store_module

    real = optuna.create_study
    failures = [sqlalchemy.exc.OperationalError("create table studies", {}, Exception("database is locked")),
                sqlalchemy.exc.OperationalError("create table", {}, Exception("table studies already exists")),
                sqlalchemy.exc.IntegrityError("insert into alembic_version", {},
                                              Exception("UNIQUE constraint failed: alembic_version.version_num"))]

    def flaky(**kwargs):
        if failures:
            raise failures.pop(0)
        return real(**kwargs)

    monkeypatch.setattr(store_module.optuna, "create_study", flaky)
    monkeypatch.setattr(store_module.time, "sleep", lambda s: None)
    # another process holding the lock, or creating the tables right now: waited out, not an error
    study = store_module.open_study(f"sqlite:///{tmp_path / 'trials.db'}", "trainopt-trials")
    assert study.study_name == "trainopt-trials" and not failures


def test_sqlite_writers_wait_for_each_others_locks(tmp_path):
    from trainopt.tools.store import SQLITE_BUSY_TIMEOUT_S

    store = TrialStore(f"sqlite:///{tmp_path / 'trials.db'}")
    # the engine's busy timeout, not sqlite's 5 s default: "database is locked" is waited out
    engine = store.study._storage.engine if hasattr(store.study._storage, "engine") else \
        store.study._storage._backend.engine
    with engine.connect() as connection:
        timeout = connection.exec_driver_sql("pragma busy_timeout").scalar()
    assert timeout == SQLITE_BUSY_TIMEOUT_S * 1000
