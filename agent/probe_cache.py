"""Tool outputs kept beside the trials, in the same Optuna storage, keyed like a trial.

A tool run by the agent is looked up by (tool, workload id, input, device type) first: a resumed
or replayed optimization reads the recorded output back instead of probing again. The workload id
is ``store.workload_id(workload)``: ``Workload.fingerprint()`` for a live store (a changed model,
dataset or loss is probed again), the recorded id for a ReplayStore. Outputs live in their own
study of the trial store's storage, so one SQLite file holds a whole run.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import optuna
from pydantic import BaseModel

from trainopt.errors import OptimizationError
from trainopt.tools.store import open_study

STUDY_NAME = "trainopt-tool-outputs"


def output_key(tool: str, workload_id: str, input: dict[str, Any], device_type: str) -> str:
    """sha256 of (tool, workload id, input, device type); ``workload_id`` as in the module docstring."""
    text = json.dumps(
        {"tool": tool, "workload": workload_id, "input": input, "device": device_type},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


class ProbeCache:
    """Finished tool outputs by key. ``readonly`` (replay): a missing output is an error, not a probe.

    Examples:
        >>> cache = ProbeCache("sqlite:///:memory:")
        >>> cache.get("k") is None
        True
    """

    def __init__(self, storage: str, readonly: bool = False):
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = open_study(storage, STUDY_NAME)
        self.readonly = readonly
        self._index: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        if key not in self._index:
            for trial in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
                self._index.setdefault(trial.user_attrs["key"], trial.user_attrs["output"])
        return self._index.get(key)

    def put(self, key: str, tool: str, output_json: str) -> None:
        self.study.add_trial(
            optuna.trial.create_trial(
                value=0.0,
                params={},
                distributions={},
                user_attrs={"key": key, "tool": tool, "output": output_json},
            )
        )
        self._index[key] = output_json

    def run(self, key: str, tool: str, output_type: type[BaseModel], compute) -> tuple[BaseModel, str]:
        """(output, its stored JSON): the stored output, or ``compute()`` stored and read back through JSON.

        The JSON text is what the evidence keeps, so a replay reports exactly what was recorded even
        after a tool's Output model gained a field."""
        stored = self.get(key)
        if stored is not None:
            return output_type.model_validate_json(stored), stored
        if self.readonly:
            raise OptimizationError(
                f"replay: the recording holds no output of {tool!r} for this input; the run has diverged "
                "from the recorded one (different request, budget or code)",
                "convergence",
                {"tool": tool, "key": key},
            )
        text = compute().model_dump_json()
        self.put(key, tool, text)
        return output_type.model_validate_json(text), text
