import os
import signal
import sqlite3
import subprocess
import sys
import time

from typer.testing import CliRunner

from trainopt.cli import app
from trainopt.tools.store import TrialStore
from trainopt.tools.trial_config import TrialConfig


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
