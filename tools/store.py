"""The trial store: finished trials kept in an Optuna study, so nothing is ever run twice.

A trial is stored whole, in one ``study.add_trial`` (one database transaction), only once it
has finished: a process killed mid-trial leaves no half-written record, and the next run reads
every finished trial back instead of re-running it. The key is (workload, configuration, seed,
device type). Any Optuna RDB URL works (``sqlite:///...``, ``postgresql://...``), so several
workers on several machines can share one store.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import optuna

from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import ProgressFn, ReportFn, TrialResult, resolve_device, run_trial
from trainopt.tools.workloads import Workload, get_workload

DEFAULT_OUT_DIR = Path("trainopt-out")
STUDY_NAME = "trainopt-trials"


def default_storage(out_dir: str | Path = DEFAULT_OUT_DIR) -> str:
    """A SQLite file in the output folder (created if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{out.resolve() / 'trials.db'}"


def trial_key(workload: str, config: TrialConfig, device: str) -> str:
    """Identity of a trial: same workload, configuration (seed included) and device type."""
    text = json.dumps({"workload": workload, "config": config.model_dump(mode="json"), "device": device},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class TrialStore:
    """Finished trials, looked up by key; ``run`` reads a stored trial back or runs and stores it.

    Examples:
        >>> store = TrialStore("sqlite:///:memory:")
        >>> first = store.run("digits-mlp", TrialConfig(steps=10))
        >>> store.run("digits-mlp", TrialConfig(steps=10)).from_store
        True
    """

    def __init__(self, storage: str | None = None, out_dir: str | Path = DEFAULT_OUT_DIR,
                 study_name: str = STUDY_NAME):
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.storage = storage or default_storage(out_dir)
        self.study = optuna.create_study(storage=self.storage, study_name=study_name, load_if_exists=True)
        self._index: dict[str, tuple[str, str]] = {}  # key -> (workload, result JSON)

    def _refresh(self) -> None:
        for trial in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            key = trial.user_attrs.get("key")
            if key is not None:
                self._index.setdefault(key, (trial.user_attrs["workload"], trial.user_attrs["result"]))

    def get(self, workload: str, config: TrialConfig, device: str = "auto") -> TrialResult | None:
        """The stored result of this exact trial, or None."""
        key = trial_key(workload, config, resolve_device(device).type)
        if key not in self._index:
            self._refresh()
        if key not in self._index:
            return None
        return _load(self._index[key][1])

    def put(self, result: TrialResult) -> None:
        """Store a finished trial in one transaction."""
        device_type = resolve_device(result.device).type
        key = trial_key(result.workload, result.config, device_type)
        value = result.final_val_loss if math.isfinite(result.final_val_loss) else math.inf
        text = result.model_dump_json()
        self.study.add_trial(optuna.trial.create_trial(
            value=value, params={}, distributions={},
            user_attrs={"key": key, "workload": result.workload, "device": device_type, "result": text},
        ))
        self._index[key] = (result.workload, text)

    def run(self, workload: Workload | str, config: TrialConfig, device: str = "auto",
            report: ReportFn | None = None, progress: ProgressFn | None = None) -> TrialResult:
        """Read the trial back if it is stored; otherwise run it and store it (pruned trials too)."""
        name = get_workload(workload).name
        stored = self.get(name, config, device)
        if stored is not None:
            if progress is not None:
                progress(stored.steps_run, config.steps)
            return stored
        result = run_trial(workload, config, device=device, report=report, progress=progress)
        self.put(result)
        return result

    def results(self, workload: str | None = None) -> list[TrialResult]:
        """Every stored trial (of one workload when given), oldest first."""
        self._refresh()
        return [_load(text) for name, text in self._index.values() if workload in (None, name)]


def _load(text: str) -> TrialResult:
    return TrialResult.model_validate_json(text).model_copy(update={"from_store": True})
