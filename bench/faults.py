"""Fault suite: kill, interrupt, share, corrupt and break trainopt, and count what goes wrong.

Every scenario runs the real CLI (``python -m trainopt.cli``) in subprocesses, or the Python API
in this process, and counts per run:

    trials lost      finished trials (COMPLETE in the store when the fault hit) that the next run
                     did not read back (it ran them again, or they were gone)
    wrong results    a rerun whose answer differs from an uninterrupted reference run of the same
                     command (sweep: every trial's validation losses, bit for bit; optimize: the
                     recommended configuration and the held-out losses; a rerun that measured the
                     probe timings afresh is held to an uninterrupted run given the same measurements:
                     same_measurements_answer), or a half-written result.json / report.html, or a
                     fault reported as a measurement
    unclear errors   an exit that is not the documented one: a Python traceback on the terminal,
                     a message that does not name the file / workload / phase, a rerun that fails,
                     or an exception that is not the documented type

Scenarios (the workload is digits-mlp unless named; the N moments of a kill scenario are spread over
the reference run's wall time, one uniform draw in each of N equal slices of it from ``--seed``, and
each is placed after as many stored trials as the reference run had by then: see moments_over):

    kill -9 optimize     `trainopt optimize --step-budget S`, SIGKILL at a random moment, rerun
    kill -9 sweep        `trainopt sweep` of 8 LRs, SIGKILL at a random moment, rerun
    SIGINT optimize      Ctrl-C at a random moment: clean message, store consistent, rerun
    SIGINT sweep         the same for a sweep
    two processes        two sweeps with overlapping grids on one SQLite store at once
    damaged trials.db    garbage / truncated store file under sweep, optimize and trial
    failing writes       result.json / report.html writer (atomic_write) failing mid-write or at
                         the rename; kill -9 during optimize also checks the files it left
    workload faults      NaN loss mid-run, a model raising at step 7, an empty training set, a
                         model without trainable parameters (run_trial, the probe tools, the CLI
                         and the agent), a model larger than max_memory_mb (batch-size tool)

Usage:
    python bench/faults.py                   # full run: writes bench/results/faults.{json,md}
    python bench/faults.py --at HEAD         # the same on a clean checkout of a commit (a temporary git
                                             # worktree): edits made to this tree during the run don't reach it
    python bench/faults.py --quick           # a few runs of each (minutes): a smoke test
    python bench/faults.py --only sweep,corrupt --no-write

The runs are small (a 300-step optimize, an 8-LR sweep of 150 steps) so that 20 moments of each fit on
a shared 2-core machine; the counts and the git commit are printed with the table. The target is
0 lost, 0 wrong, 0 unclear in every row.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import torch
from torch import nn

from trainopt.cli import INTERRUPTED, INTERRUPTED_MESSAGE

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks" / "faults.md"
SWEEP_ARGS = ["sweep", "--workload", "digits-mlp", "--lr", "1e-3,2e-3,3e-3,4e-3,5e-3,6e-3,7e-3,8e-3", "--steps", "150",
              "--device", "cpu", "--json"]
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "120",
             # bench/ first (the faults:<name> workloads), then whatever put this trainopt on the path (--at)
             "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "bench"), os.environ.get("PYTHONPATH")]))}


# ---- the workloads the fault scenarios train (importable as faults:<name> from the CLI) ---------------


def _regression(make_model, loss=None, n=256, n_val=64) -> object:
    from trainopt.tools.workloads import Workload

    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g)
    loss = loss or (lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]))
    return Workload.from_callables(make_model, (x, y), (x[:n_val], y[:n_val]), loss,
                                   default_config={"batch_size": 16, "steps": 40, "lr": 1e-2})


class RaisesAtStep7(nn.Module):
    """A linear model whose 7th training forward pass raises (a bug that shows only mid-run)."""

    def __init__(self):
        super().__init__()
        self.linear, self.calls = nn.Linear(8, 1), 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == 7:
                raise IndexError("index 8 is out of bounds for dimension 0 with size 8")
        return self.linear(x)


def nan_mid_run():
    """The loss turns NaN after 10 training steps."""
    calls = []

    def loss(model, batch):
        value = nn.functional.mse_loss(model(batch[0]), batch[1])
        if model.training:
            calls.append(1)
            if len(calls) > 10:
                return value * math.nan
        return value

    workload = _regression(lambda: nn.Linear(8, 1), loss)
    workload.name = "nan-mid-run"
    return workload


def raises_at_step_7():
    workload = _regression(RaisesAtStep7)
    workload.name = "raises-at-step-7"
    return workload


def empty_training_set():
    from trainopt.tools.workloads import Workload

    x, y = torch.randn(32, 8), torch.randn(32, 1)
    return Workload.from_callables(lambda: nn.Linear(8, 1), (x[:0], y[:0]), (x, y),
                                   lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]), name="empty-train",
                                   default_config={"batch_size": 16, "steps": 40})


def no_trainable_parameters():
    def frozen():
        model = nn.Linear(8, 1)
        model.requires_grad_(False)
        return model

    workload = _regression(frozen)
    workload.name = "no-trainable-params"
    return workload


def large_model():
    """About 64 MiB of float32 weights: more than a 1 MiB memory budget holds."""
    workload = _regression(lambda: nn.Sequential(nn.Linear(8, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 1)))
    workload.name = "large-model"
    return workload


# ---- helpers --------------------------------------------------------------------------------------------


def cli(args: list[str], out: Path) -> subprocess.Popen:
    env = {**os.environ, **CHILD_ENV}
    out.parent.mkdir(parents=True, exist_ok=True)
    # SIGINT back to its default in the child: a shell starts background jobs with it ignored
    return subprocess.Popen([sys.executable, "-m", "trainopt.cli", *args, "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=out.parent,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def run_cli(args: list[str], out: Path, timeout: float = 900) -> tuple[int, str, str, float]:
    started = time.monotonic()
    process = cli(args, out)
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr, time.monotonic() - started


def stored_keys(db: Path) -> list[str]:
    """``study/key`` of every COMPLETE trial in the SQLite file (repeats included).

    Every study counts: the trials (trainopt-trials) and the stored probe-tool outputs (trainopt-tool-outputs),
    which a rerun reads back as well. Read from a copy of the file and its journal, so that a hot journal
    left by a killed writer is rolled back there (as the next run would) instead of failing a read-only open;
    a file without tables yet is no trials, any other damage is raised.
    """
    if not db.exists():
        return []
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / db.name
        for suffix in ("", "-journal", "-wal"):
            if Path(f"{db}{suffix}").exists():
                shutil.copyfile(f"{db}{suffix}", f"{copy}{suffix}")
        connection = sqlite3.connect(copy)
        try:
            rows = connection.execute(
                "select s.study_name, a.value_json from trial_user_attributes a join trials t on a.trial_id = "
                "t.trial_id join studies s on t.study_id = s.study_id where t.state = 'COMPLETE' and a.key = 'key'"
            ).fetchall()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):  # killed before the schema was written
                return []
            raise
        finally:
            connection.close()
    return [f"{study}/{json.loads(value)}" for study, value in rows]


def traceback_shown(text: str) -> bool:
    return "Traceback (most recent call last)" in text or re.search(r"^\w+Error: ", text, re.M) is not None


def sweep_losses(stdout: str) -> dict[float, list[float]] | None:
    try:
        return {r["config"]["lr"]: r["val_losses"] for r in json.loads(stdout)}
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def optimize_answer(stdout: str) -> dict | None:
    """What must not change between an uninterrupted run and a resumed one."""
    try:
        response = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    gain = response.get("gain") or {}
    return {"recommended": response.get("recommended"), "challenger": response.get("challenger"),
            "baseline_val_losses": gain.get("baseline_val_losses"),
            "challenger_val_losses": gain.get("challenger_val_losses"), "adopted": gain.get("adopted")}


def files_whole(out: Path) -> bool:
    """result.json parses and report.html is closed, where they exist; no temporary file is left."""
    result, report = out / "result.json", out / "report.html"
    if result.exists():
        try:
            json.loads(result.read_text())
        except json.JSONDecodeError:
            return False
    return not report.exists() or report.read_text().rstrip().endswith("</html>")


def row(scenario: str, runs: int, lost: int, wrong: int, unclear: int, notes: list[str]) -> dict:
    return {"scenario": scenario, "runs": runs, "trials_lost": lost, "wrong_results": wrong,
            "unclear_errors": unclear, "notes": notes}


# ---- kill -9 / SIGINT at random moments ---------------------------------------------------------------


def interrupted(name: str, args: list[str], answer, moments: int, sig: int, rng: random.Random,
                work: Path) -> dict:
    """Reference runs; then per moment: start, send ``sig`` at a moment of the run, check, rerun, compare."""
    references = []
    for attempt in (1, 2):
        started = datetime.now()
        rc, stdout, stderr, wall = run_cli(args, work / f"{name}-reference-{attempt}")
        if rc != 0:
            return row(name, 0, 0, 0, 1, [f"reference run failed (exit {rc}): {stderr[-300:]}"])
        references.append((wall, answer(stdout), stored_times(work / f"{name}-reference-{attempt}" / "trials.db",
                                                              started)))
    (wall, expected, _), (again_wall, again, _) = references
    notes = [f"reference runs {wall:.0f} s and {again_wall:.0f} s; the second "
             f"{'gives the same answer' if again == expected else 'DIFFERS (comparison void)'}"]
    wall, _, timeline = min(references, key=lambda r: r[0])  # the first may also compile bytecode
    lost = wrong = unclear = 0
    kept_at_kill, finished_first_count = [], 0
    for i, (after_trials, offset) in enumerate(moments_over(wall, timeline, moments, rng)):
        out = work / f"{name}-{i}"
        process = cli(args, out)
        started = time.monotonic()
        finished_first = True  # until the signal is sent: a run that ends before its moment tests nothing
        if wait_for_trials(process, out / "trials.db", after_trials):
            try:
                process.wait(timeout=offset)
            except subprocess.TimeoutExpired:
                process.send_signal(sig)
                finished_first = False
        finished_first_count += finished_first
        delay = time.monotonic() - started
        stdout, stderr = process.communicate(timeout=300)
        try:
            before = Counter(stored_keys(out / "trials.db"))
        except sqlite3.DatabaseError as error:  # what sqlite itself cannot read: every trial in it is at risk
            before = Counter()
            wrong += 1
            notes.append(f"{name} #{i}: the store left by a signal at {delay:.1f} s is unreadable: {error}")
        kept_at_kill.append(sum(before.values()))
        # Ctrl-C: the CLI's one-line message with exit 130, no traceback, not exit 0 (unless the run had finished
        # its work: the whole answer printed, the same as the reference's, and the signal came during the
        # interpreter's exit)
        completed = process.returncode == 0 and answer(stdout) == expected
        silent = process.returncode == INTERRUPTED and INTERRUPTED_MESSAGE not in " ".join(stderr.split())
        if sig == signal.SIGINT and not finished_first and ((process.returncode == 0 and not completed)
                                                             or traceback_shown(stderr + stdout) or silent):
            unclear += 1
            notes.append(f"{name} #{i}: Ctrl-C at {delay:.1f} s gave exit {process.returncode}: "
                         f"{_interrupt_lines(stderr + stdout)}")
        elif sig == signal.SIGINT and not finished_first and completed:
            notes.append(f"{name} #{i}: Ctrl-C at {delay:.1f} s came after the answer was printed (exit 0, the "
                         f"reference's answer){'; ' + _interrupt_lines(stderr) if 'Interrupt' in stderr else ''}")
        if not files_whole(out):
            wrong += 1
            notes.append(f"{name} #{i}: a half-written result.json or report.html after the signal")
        rc, stdout, stderr, _ = run_cli(args, out)
        try:
            after = Counter(stored_keys(out / "trials.db"))
        except sqlite3.DatabaseError as error:
            after = Counter()
            notes.append(f"{name} #{i}: the store after the rerun is unreadable: {error}")
        rerun = sum(1 for key in before if after[key] > before[key])
        lost += rerun + sum(1 for key in before if after[key] == 0)
        if rc != 0 or traceback_shown(stderr):
            unclear += 1
            notes.append(f"{name} #{i}: rerun after a signal at {delay:.1f} s failed (exit {rc}): {stderr[-300:]!r}")
        elif answer(stdout) != expected:
            what = (f"{name} #{i}: rerun after a signal at {delay:.1f} s ({sum(before.values())} finished trials "
                    f"kept) answered differently from the reference: {differences(expected, answer(stdout))}")
            control = same_measurements_answer(args, answer, out, work / f"{name}-{i}-control")
            if control == answer(stdout):
                notes.append(f"{what}; an uninterrupted run given the rerun's probe measurements (its stored tool "
                             f"outputs: the throughput timings differ run to run) gives the rerun's answer: not a "
                             f"fault")
            else:
                wrong += 1
                notes.append(f"{what}; and from an uninterrupted run given the same probe measurements: "
                             f"{differences(control, answer(stdout))}")
        print(f"  {name} #{i}: signal at {delay:5.1f} s (trial {after_trials} stored + {offset:.1f} s)"
              f"{' (had finished)' if finished_first else ''}, {sum(before.values())} finished trials kept, "
              f"{rerun} re-run, rerun exit {rc}", flush=True)
    notes.append(f"{moments} moments over a {wall:.0f} s run that stores {len(timeline)} trials; finished trials in "
                 f"the store at each signal: {kept_at_kill}; {finished_first_count} run(s) had ended before their "
                 f"moment (no signal sent)")
    return row(name, moments, lost, wrong, unclear, notes)


def same_measurements_answer(args: list[str], answer, out: Path, control: Path):
    """The answer of an uninterrupted run given the probe measurements stored in ``out``.

    Some tool outputs are timings (the batch-size tool's throughput curve and its knee), so a run that
    measured them afresh after a kill may rightly answer differently from the reference run. The control
    starts from a copy of ``out``'s store without its trials (the tool outputs stay) and runs to the end.
    """
    control.mkdir(parents=True)
    db = control / "trials.db"
    shutil.copyfile(out / "trials.db", db)
    connection = sqlite3.connect(db)
    try:
        with connection:
            ids = "select t.trial_id from trials t join studies s on t.study_id = s.study_id " \
                  "where s.study_name = 'trainopt-trials'"
            tables = {name for (name,) in connection.execute("select name from sqlite_master where type = 'table'")}
            for table in ("trial_params", "trial_values", "trial_intermediate_values", "trial_user_attributes",
                          "trial_system_attributes", "trial_heartbeats"):
                if table in tables:
                    connection.execute(f"delete from {table} where trial_id in ({ids})")
            connection.execute(f"delete from trials where trial_id in ({ids})")
    finally:
        connection.close()
    rc, stdout, _, _ = run_cli(args, control)
    return answer(stdout) if rc == 0 else None


def differences(expected, got) -> str:
    """What differs between two answers, field by field (values shortened)."""
    if not isinstance(expected, dict) or not isinstance(got, dict):
        return f"expected {str(expected)[:200]}, got {str(got)[:200]}"
    return "; ".join(f"{key}: {str(expected.get(key))[:160]} -> {str(got.get(key))[:160]}"
                     for key in sorted(set(expected) | set(got)) if expected.get(key) != got.get(key))


def _interrupt_lines(text: str) -> str:
    """The lines of a terminal's text that say what happened to an interrupt (not the progress bars)."""
    lines = [line for line in text.splitlines() if "━" not in line and line.strip()]
    keep = [line for line in lines if re.search(r"Interrupt|Aborted|interrupted|ignored|Error", line)]
    return repr("\n".join(keep[-6:] or lines[-3:])[-400:])


def stored_times(db: Path, started: datetime) -> list[float]:
    """Seconds from ``started`` at which each COMPLETE trial of the store was stored, in order."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:  # the trials stored_keys counts
        rows = connection.execute(
            "select t.datetime_complete from trials t join trial_user_attributes a on a.trial_id = t.trial_id "
            "where t.state = 'COMPLETE' and a.key = 'key' order by t.datetime_complete").fetchall()
    return [(datetime.fromisoformat(value) - started).total_seconds() for (value,) in rows]


def moments_over(wall: float, timeline: list[float], moments: int, rng: random.Random) -> list[tuple[int, float]]:
    """``moments`` moments of a run, each as (trials stored before it, seconds after the last of them).

    One uniform draw in each of ``moments`` equal slices of 2%-95% of the reference run's ``wall``,
    then placed relative to the reference's ``timeline`` (when each trial was stored): "3.1 s after the
    5th trial". A killed run waits for its trials, so a machine slower than during the reference run
    still gets its signal between the same two trials, from the imports to the report.
    """
    low, high = 0.02 * wall, 0.95 * wall
    width = (high - low) / moments
    placed = []
    for i in range(moments):
        at = low + (i + rng.random()) * width
        done = [t for t in timeline if t <= at]
        placed.append((len(done), at - (done[-1] if done else 0.0)))
    return placed


def _count_or_zero(db: Path) -> int:
    try:
        return len(stored_keys(db))
    except (sqlite3.DatabaseError, OSError):  # copied mid-write: look again
        return 0


def wait_for_trials(process: subprocess.Popen, db: Path, count: int, poll: float = 0.2) -> bool:
    """Wait until ``db`` holds ``count`` finished trials; False if the process ended first."""
    while count and _count_or_zero(db) < count:
        if process.poll() is not None:
            return False
        time.sleep(poll)
    return process.poll() is None


# ---- two processes on one store -------------------------------------------------------------------------


def two_processes(repeats: int, work: Path) -> dict:
    grid_a = ["sweep", "--workload", "digits-mlp", "--lr", "1e-3,2e-3,3e-3,4e-3", "--steps", "120",
              "--device", "cpu", "--json"]
    grid_b = ["sweep", "--workload", "digits-mlp", "--lr", "4e-3,3e-3,5e-3,6e-3", "--steps", "120",
              "--device", "cpu", "--json"]
    lost = wrong = unclear = 0
    notes = []
    for i in range(repeats):
        out = work / f"shared-{i}"
        a, b = cli(grid_a, out), cli(grid_b, out)
        (out_a, err_a), (out_b, err_b) = a.communicate(timeout=900), b.communicate(timeout=900)
        for label, process, err in (("A", a, err_a), ("B", b, err_b)):
            if process.returncode != 0 or traceback_shown(err):
                unclear += 1
                notes.append(f"#{i} process {label} exit {process.returncode}: {err[-300:]!r}")
        losses_a, losses_b = sweep_losses(out_a) or {}, sweep_losses(out_b) or {}
        keys = Counter(stored_keys(out / "trials.db"))
        lost += max(0, 6 - len(keys))  # 6 distinct configurations between them
        shared = set(losses_a) & set(losses_b)
        wrong += sum(losses_a[lr] != losses_b[lr] for lr in shared)
        twice = sum(n - 1 for n in keys.values())
        print(f"  two processes #{i}: {len(keys)} distinct trials stored, {twice} stored twice", flush=True)
        if twice:
            notes.append(f"#{i}: {twice} trial(s) run by both processes at once (stored twice: wasted, not lost)")
    notes.append(f"{repeats} runs of two overlapping 4-LR sweeps at once")
    return row("two processes, one SQLite store", repeats, lost, wrong, unclear, notes)


# ---- a damaged trials.db ----------------------------------------------------------------------------------


def damaged_store(work: Path) -> list[dict]:
    rows = []
    seed_dir = work / "damaged-seed"
    run_cli(["trial", "--workload", "digits-mlp", "--steps", "5", "--device", "cpu"], seed_dir)
    good = (seed_dir / "trials.db").read_bytes()
    damages = {"garbage bytes": b"this is not a database\n" * 400, "truncated to a third": good[: len(good) // 3],
               "header only": good[:100]}
    commands = {"sweep": ["sweep", "--workload", "digits-mlp", "--lr", "1e-3", "--steps", "5", "--device", "cpu"],
                "trial": ["trial", "--workload", "digits-mlp", "--steps", "5", "--device", "cpu"],
                "optimize": ["optimize", "--workload", "digits-mlp", "--step-budget", "300", "--device", "cpu"]}
    for damage, data in damages.items():
        unclear, notes = 0, []
        for command, args in commands.items():
            out = work / f"damaged-{damage.replace(' ', '-')}-{command}"
            out.mkdir(parents=True)
            (out / "trials.db").write_bytes(data)
            rc, stdout, stderr, _ = run_cli(args, out, timeout=600)
            text = stdout + stderr
            named = "trials.db" in text.replace("\n", "")
            if rc == 0 or traceback_shown(text) or not named:
                unclear += 1
                notes.append(f"{command}: exit {rc}, file named: {named}, traceback: {traceback_shown(text)}: "
                             f"{text.strip()[-300:]!r}")
            print(f"  damaged store ({damage}) under {command}: exit {rc}, file named {named}", flush=True)
        rows.append(row(f"trials.db {damage}", len(commands), 0, 0, unclear, notes or ["sweep, trial, optimize"]))
    return rows


# ---- failing writes ---------------------------------------------------------------------------------------


def failing_writes(work: Path) -> dict:
    """atomic_write (result.json, report.html, recording.json) failing mid-write and at the rename."""
    from unittest import mock

    from trainopt.agent.record import atomic_write

    wrong = unclear = 0
    notes = []
    cases = 0
    for where in ("write", "flush", "rename"):
        for previous in (None, '{"old": "complete"}'):
            cases += 1
            folder = work / f"writes-{where}-{previous is not None}"
            folder.mkdir(parents=True)
            target = folder / "result.json"
            if previous is not None:
                target.write_text(previous)
            text = json.dumps({"new": "x" * 100_000})
            raised = _fail_during(where, lambda t=target, x=text: atomic_write(t, x), mock)
            leftovers = [p.name for p in folder.iterdir() if p.name != "result.json"]
            content = target.read_text() if target.exists() else None
            if content not in (previous, text):
                wrong += 1
                notes.append(f"{where}: result.json holds neither the old nor the new text (a half file)")
            if leftovers:
                wrong += 1
                notes.append(f"{where}: temporary files left behind: {leftovers}")
            if not isinstance(raised, OSError):
                unclear += 1
                notes.append(f"{where}: raised {type(raised).__name__} instead of the OSError")
    notes.append("disk full while writing, while flushing, and a failing rename; with and without a previous file")
    return row("failing writes (result.json, report.html)", cases, 0, wrong, unclear, notes)


def _fail_during(where: str, write, mock) -> BaseException | None:
    error = OSError(28, "No space left on device")
    if where == "rename":
        patch = mock.patch.object(Path, "replace", side_effect=error)
    elif where == "flush":
        patch = mock.patch("os.fsync", side_effect=error)
    else:
        real_open = tempfile.NamedTemporaryFile

        def half_writer(*args, **kwargs):
            handle = real_open(*args, **kwargs)
            real_write = handle.write

            def write_half(text):
                real_write(text[: len(text) // 2])
                raise error

            handle.write = write_half
            return handle

        patch = mock.patch("tempfile.NamedTemporaryFile", side_effect=half_writer)
    try:
        with patch:
            write()
    except BaseException as raised:  # noqa: BLE001 - what was raised is the measurement
        return raised
    return None


# ---- broken workloads -------------------------------------------------------------------------------------


def broken_workloads(work: Path, with_agent: bool) -> list[dict]:
    from trainopt.errors import ResourceError, WorkloadError
    from trainopt.tools import BatchSizeOptimizer, GradientAnalyzer, LearningRateScheduler
    from trainopt.tools.trial_config import TrialConfig
    from trainopt.tools.trials import run_trial

    config = TrialConfig(steps=40, batch_size=16, lr=1e-2)
    expected = {  # factory -> (documented outcome, how to recognise it)
        "nan_mid_run": ("a measured divergence (diverged=True)", None),
        "raises_at_step_7": ("WorkloadError, phase forward/loss", ("forward/loss", "IndexError")),
        "empty_training_set": ("WorkloadError: no training examples (when the workload is built)",
                               ("no training examples",)),
        "no_trainable_parameters": ("WorkloadError: no trainable parameters", ("no trainable parameters",)),
    }
    rows = []
    for factory, (documented, marks) in expected.items():
        wrong = unclear = runs = 0
        notes = [f"expected: {documented}"]
        entry_points = {
            "run_trial": lambda w: run_trial(w, config, device="cpu"),
            "LR range test": lambda w: LearningRateScheduler(w, device="cpu")(range_steps=30, budget_steps=40,
                                                                               check_steps=20),
            "gradient analysis": lambda w: GradientAnalyzer(w, device="cpu")(steps=30),
        }
        for entry, call in entry_points.items():
            runs += 1
            outcome = _call(call, globals()[factory])
            if marks is None:  # NaN: a measurement (a diverged result or the tools' own reading), never a crash
                if isinstance(outcome, BaseException) and not _is_documented_nan(outcome):
                    unclear += 1
                    notes.append(f"{entry}: {type(outcome).__name__}: {outcome}")
                elif entry == "run_trial" and not getattr(outcome, "diverged", False):
                    wrong += 1
                    notes.append("run_trial: the NaN run was not reported as diverged")
            elif not isinstance(outcome, WorkloadError) or not all(m in str(outcome) for m in marks):
                if isinstance(outcome, BaseException):
                    unclear += 1
                else:
                    wrong += 1  # a broken workload reported as a measurement
                notes.append(f"{entry}: got {type(outcome).__name__}: {str(outcome)[:200]}")
        runs += 1  # the CLI, as a user sees it
        rc, stdout, stderr, _ = run_cli(["trial", "--workload", f"faults:{factory}", "--steps", "40",
                                         "--device", "cpu"], work / f"cli-{factory}")
        text = stdout + stderr
        if marks is None:
            if rc != 0 or "diverged" not in text:
                unclear += 1
                notes.append(f"CLI: exit {rc}: {text.strip()[-300:]!r}")
        elif rc == 0 or traceback_shown(text) or not all(m in text.replace("\n", " ") for m in marks):
            unclear += 1
            notes.append(f"CLI: exit {rc}, traceback {traceback_shown(text)}: {text.strip()[-300:]!r}")
        if with_agent and marks is not None:
            runs += 1
            outcome = _agent(globals()[factory], work / f"agent-{factory}")
            if not isinstance(outcome, WorkloadError):
                if isinstance(outcome, BaseException):
                    unclear += 1
                else:
                    wrong += 1  # the agent answered as if the broken workload had been measured
                notes.append(f"agent: got {type(outcome).__name__}: {str(outcome)[:200]}")
        print(f"  {factory}: {runs} entry points, wrong {wrong}, unclear {unclear}", flush=True)
        rows.append(row(factory.replace("_", " "), runs, 0, wrong, unclear, notes))
    runs, unclear, notes = 1, 0, ["expected: ResourceError naming max_memory_mb"]
    outcome = _call(lambda w: BatchSizeOptimizer(w, device="cpu")(max_memory_mb=1.0, noise_draws=2), large_model)
    if not isinstance(outcome, ResourceError) or "max_memory_mb" not in str(outcome):
        unclear += 1
        notes.append(f"batch-size tool: got {type(outcome).__name__}: {str(outcome)[:200]}")
    print(f"  large model under max_memory_mb=1: {type(outcome).__name__}", flush=True)
    rows.append(row("model larger than max_memory_mb", runs, 0, 0, unclear, notes))
    return rows


def _is_documented_nan(error: BaseException) -> bool:
    from trainopt.errors import ConvergenceError

    return isinstance(error, ConvergenceError)


def _call(call, factory):
    """``call(factory())``, or what it raised: building the workload is part of the measurement."""
    try:
        return call(factory())
    except Exception as error:  # noqa: BLE001 - the exception is the measurement
        return error


def _agent(factory, out: Path):
    from trainopt.agent import TrainingOptimizationAgent
    from trainopt.agent.schemas import OptimizationRequest

    try:
        request = OptimizationRequest(workload=factory(), constraints={"step_budget": 300})
        return TrainingOptimizationAgent(device="cpu", out_dir=out).optimize_training(request)
    except Exception as error:  # noqa: BLE001
        return error


# ---- report -------------------------------------------------------------------------------------------------


def table(rows: list[dict]) -> str:
    lines = ["| scenario | runs | trials lost | wrong results | unclear errors |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['scenario']} | {r['runs']} | {r['trials_lost']} | {r['wrong_results']} | "
              f"{r['unclear_errors']} |" for r in rows]
    total = {k: sum(r[k] for r in rows) for k in ("runs", "trials_lost", "wrong_results", "unclear_errors")}
    lines.append(f"| **all** | {total['runs']} | {total['trials_lost']} | {total['wrong_results']} | "
                 f"{total['unclear_errors']} |")
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    out = []
    for key, label in (("trials_lost", "trials lost"), ("wrong_results", "wrong results"),
                       ("unclear_errors", "unclear errors")):
        total = sum(r[key] for r in rows)
        out.append(f"target 0 {label}: {total} -> {'holds' if total == 0 else 'falls short'}")
    return out


def portable(rows: list[dict], work: Path) -> list[dict]:
    """The rows with this machine's paths in their notes replaced: <tmp> for the scratch folder, . for the repo."""
    def clean(note: str) -> str:
        for path, name in ((str(work), "<tmp>"), (str(ROOT), "."), (tempfile.gettempdir(), "<tmp>"),
                           (str(Path.home()), "~")):
            note = note.replace(path, name)
        return note

    return [{**r, "notes": [clean(note) for note in r["notes"]]} for r in rows]


def header(meta: dict) -> str:
    dirty = " (with uncommitted changes)" if meta["dirty"] else ""
    load = meta["load"]
    return (f"`{meta['command']}` at commit `{meta['commit'][:12]}`{dirty}, torch {meta['torch']}, "
            f"Python {meta['python']}; {meta['moments']}; {meta['wall_s'] / 60:.0f} min on {meta['cpus']} CPUs, "
            f"1-minute load average {load['mean']:.1f} on average (min {load['min']:.1f}, max {load['max']:.1f})")


def write(rows: list[dict], meta: dict, root: Path) -> None:
    results, docs = root / RESULTS.relative_to(ROOT), root / DOCS.relative_to(ROOT)
    results.mkdir(parents=True, exist_ok=True)
    (results / "faults.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    notes = "\n".join(f"- **{r['scenario']}**: " + "; ".join(r["notes"]) for r in rows)
    text = (f"# Fault suite\n\n{header(meta)}\n\n"
            f"{table(rows)}\n\n" + "\n".join(f"- {v}" for v in verdicts(rows))
            + f"\n\n## Notes per scenario\n\n{notes}\n")
    (results / "faults.md").write_text(text)
    if docs.exists():  # the docs page carries the generated table between markers
        page = docs.read_text()
        start, end = "<!-- faults-table -->", "<!-- /faults-table -->"
        if start in page and end in page:
            head, rest = page.split(start, 1)
            _, tail = rest.split(end, 1)
            generated = (f"\n{header(meta)}:\n\n{table(rows)}\n\n"
                         + "\n".join(f"- {v}" for v in verdicts(rows)) + "\n")
            docs.write_text(head + start + generated + end + tail)


class LoadSampler:
    """The 1-minute load average every 30 s in a daemon thread (the machine may be shared)."""

    def __init__(self, every: float = 30.0):
        self.samples, self._done = [os.getloadavg()[0]], threading.Event()
        self._every = every
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._done.wait(self._every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict:
        self._done.set()
        self.samples.append(os.getloadavg()[0])
        return {"mean": round(sum(self.samples) / len(self.samples), 2), "min": min(self.samples),
                "max": max(self.samples), "samples": len(self.samples)}


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def code_version() -> dict:
    """The commit this code is, and whether the package or this script differ from it."""
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--", "trainopt", "agent", "tools", "ars", "prompts",
                         "bench/faults.py"))
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", True
    return {"commit": commit, "dirty": dirty}


def run_at(commit: str, argv: list[str]) -> int:
    """Run the suite on a clean checkout of ``commit`` (a temporary git worktree); results are written here.

    trainopt maps its subpackages from top-level folders (pyproject's package-dir), so a folder of links
    put first on PYTHONPATH makes every process import the worktree's code, not the editable install.
    """
    import tomllib

    sha = git("rev-parse", "--verify", f"{commit}^{{commit}}")
    scratch = Path(tempfile.mkdtemp(prefix="trainopt-faults-at-"))
    tree = scratch / "repo"
    git("worktree", "add", "--detach", str(tree), sha)
    try:
        package_dir = tomllib.loads((tree / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
        package = scratch / "path" / "trainopt"
        package.mkdir(parents=True)
        for item in (tree / package_dir["trainopt"]).iterdir():
            (package / item.name).symlink_to(item)
        for name, folder in package_dir.items():
            if name != "trainopt":
                (package / name.removeprefix("trainopt.")).symlink_to(tree / folder)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(package.parent),
                                                                        os.environ.get("PYTHONPATH")]))}
        command = " ".join(["python bench/faults.py", *sys.argv[1:]])
        return subprocess.call([sys.executable, str(tree / "bench" / "faults.py"), *argv, "--write-to", str(ROOT),
                                "--command-line", command], cwd=tree, env=env)
    finally:
        git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 moments per kill/SIGINT scenario, 1 shared run")
    parser.add_argument("--kills-optimize", type=int, default=20)
    parser.add_argument("--kills-sweep", type=int, default=20)
    parser.add_argument("--sigints", type=int, default=5, help="per command (optimize, sweep)")
    parser.add_argument("--shared", type=int, default=3, help="runs of two processes on one store")
    parser.add_argument("--step-budget", type=int, default=300, help="of the optimize runs")
    parser.add_argument("--seed", type=int, default=0, help="of the kill moments")
    parser.add_argument("--only", default="", help="comma-separated: optimize,sweep,sigint,shared,corrupt,writes,"
                        "workloads,agent")
    parser.add_argument("--no-write", action="store_true", help="print only (tests)")
    parser.add_argument("--at", default=None, metavar="COMMIT", help="run on a clean checkout of COMMIT (a "
                        "temporary git worktree), so that edits to this tree during the run do not reach it")
    parser.add_argument("--write-to", default=None, help=argparse.SUPPRESS)  # set by --at: the tree to write to
    parser.add_argument("--command-line", default=None, help=argparse.SUPPRESS)  # set by --at: what was typed
    args = parser.parse_args()
    if args.at:
        argv = sys.argv[1:]
        at = argv.index("--at") if "--at" in argv else None
        argv = argv[:at] + argv[at + 2:] if at is not None else [a for a in argv if not a.startswith("--at=")]
        sys.exit(run_at(args.at, argv))
    torch.set_num_threads(1)
    if args.quick:
        args.kills_optimize, args.kills_sweep, args.sigints, args.shared = 2, 2, 1, 1
    only = set(filter(None, args.only.split(","))) or {"optimize", "sweep", "sigint", "shared", "corrupt", "writes",
                                                          "workloads", "agent"}
    rng = random.Random(args.seed)
    optimize = ["optimize", "--workload", "digits-mlp", "--step-budget", str(args.step_budget), "--device", "cpu",
                "--json"]
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="trainopt-faults-"))
    started, load = time.monotonic(), LoadSampler()
    try:
        if "optimize" in only:
            print("kill -9 optimize", flush=True)
            rows.append(interrupted("kill -9 optimize", optimize, optimize_answer, args.kills_optimize,
                                    signal.SIGKILL, rng, work))
        if "sweep" in only:
            print("kill -9 sweep", flush=True)
            rows.append(interrupted("kill -9 sweep", SWEEP_ARGS, sweep_losses, args.kills_sweep, signal.SIGKILL,
                                    rng, work))
        if "sigint" in only:
            print("SIGINT", flush=True)
            rows.append(interrupted("SIGINT optimize", optimize, optimize_answer, args.sigints, signal.SIGINT,
                                    rng, work))
            rows.append(interrupted("SIGINT sweep", SWEEP_ARGS, sweep_losses, args.sigints, signal.SIGINT, rng,
                                    work))
        if "shared" in only:
            print("two processes on one store", flush=True)
            rows.append(two_processes(args.shared, work))
        if "corrupt" in only:
            print("damaged trials.db", flush=True)
            rows.extend(damaged_store(work))
        if "writes" in only:
            print("failing writes", flush=True)
            rows.append(failing_writes(work))
        if "workloads" in only:
            print("broken workloads", flush=True)
            rows.extend(broken_workloads(work, with_agent="agent" in only))
        rows = portable(rows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(rows))
    for verdict in verdicts(rows):
        print(verdict)
    moments = ", ".join(text for key, text in (
        ("optimize", f"{args.kills_optimize} kill moments of optimize (--step-budget {args.step_budget})"),
        ("sweep", f"{args.kills_sweep} of sweep (8 LRs, 150 steps)"),
        ("sigint", f"{args.sigints} Ctrl-C each of optimize and sweep"),
        ("shared", f"{args.shared} shared-store runs")) if key in only) or "no kill moments"
    meta = {"command": args.command_line or " ".join(["python bench/faults.py", *sys.argv[1:]]),
            **code_version(), "torch": torch.__version__, "python": sys.version.split()[0], "moments": moments,
            "seed": args.seed, "wall_s": round(time.monotonic() - started, 1), "cpus": os.cpu_count(),
            "load": load.stop()}
    print(header(meta))
    if not args.no_write:
        write(rows, meta, Path(args.write_to) if args.write_to else ROOT)


if __name__ == "__main__":
    main()
