"""Record and replay a whole optimization: the LM traffic and the trial store of the run.

A recording is a folder:

    cassette.yaml    the LM's HTTP traffic (vcrpy; every provider's credential headers, secret query
                     values and user:password@ dropped: agent/redact.py; requests matched on method,
                     host, path and body)
    trials.db        the run's trial store: every trial and every tool output (SQLite)
    recording.json   what was recorded: workload, device type, LM, request (URLs stripped of credentials),
                     the recording's ``format`` (RECORDING_FORMAT) and the ``trainopt`` version that wrote it
    result.json      the response of the recorded run

Replay plays the cassette back with record mode ``none`` (an unrecorded request fails instead of
reaching the network) and reads every probe from a copy of trials.db, looked up under the
*recorded* device type. So a run recorded on a GPU replays on a CPU in seconds, and returns the
same recommendation, evidence and rationale. A replay of an optimization refuses a recording of another
format than RECORDING_FORMAT (``Recording.check_format``): the agent has one behaviour, and a recording
made by another one would diverge from it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna

from trainopt.agent.redact import SECRET_HEADERS, redact_value, scrub_request, scrub_response
from trainopt.errors import HyperparameterError, OptimizationError, RecordingFormatError
from trainopt.tools.store import TrialStore, trial_key
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import TrialResult
from trainopt.tools.workloads import get_workload

CASSETTE, TRIALS, META, RESULT = "cassette.yaml", "trials.db", "recording.json", "result.json"
FILTERED_HEADERS = list(SECRET_HEADERS)  # plus any header named like a credential (scrub_request)
MATCH_ON = ["method", "host", "path", "body"]
RECORDING_FORMAT = 2  # raise it whenever a change makes the agent ask the tools or the LM something else


class ReplayStore(TrialStore):
    """A read-only trial store answering for the recorded device, whatever device replays it.

    It also answers for the *recorded* workload: ``workload_id`` is the fingerprint the recording's
    trials were stored under (or, for a recording made before fingerprints, the workload's name),
    not the replaying machine's own fingerprint, which differs under another torch version."""

    def __init__(self, storage: str, device_type: str):
        super().__init__(storage)
        self.device_type = device_type
        self._ids: dict[str, str] = {}  # workload name -> recorded workload id

    def workload_id(self, workload) -> str:
        name = workload if isinstance(workload, str) else get_workload(workload).name
        if name not in self._ids:
            self._ids[name] = name  # a schema-1 recording: its trials are keyed by the workload's name
            for trial in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
                if trial.user_attrs.get("workload") == name and "workload_id" in trial.user_attrs:
                    self._ids[name] = trial.user_attrs["workload_id"]
                    break
        return self._ids[name]

    def get(self, workload, config: TrialConfig, device: str = "auto") -> TrialResult | None:
        key = trial_key(self.workload_id(workload), config, self.device_type)
        if key not in self._index:
            self._refresh()
        return (
            TrialResult.model_validate_json(self._index[key][1]).model_copy(update={"from_store": True})
            if key in self._index
            else None
        )

    def run(self, workload, config: TrialConfig, device: str = "auto", report=None, progress=None) -> TrialResult:
        name = get_workload(workload).name
        stored = self.get(workload, config)
        if stored is None:
            raise OptimizationError(
                f"replay: no recorded trial of {name!r} on {self.device_type} for {config.model_dump()}; the "
                "run has diverged from the recorded one",
                "convergence",
                {"config": config.model_dump(mode="json")},
            )
        if progress is not None:
            progress(stored.steps_run, config.steps)
        return stored

    def put(self, result: TrialResult) -> None:
        raise OptimizationError("replay: the trial store of a recording is read-only", "convergence", {})


class Recording:
    """One recording folder, opened to ``record`` into or to ``replay`` from.

    Examples:
        >>> rec = Recording("runs/digits", "record")          # doctest: +SKIP
        >>> with rec.cassette(): ...                          # doctest: +SKIP
    """

    def __init__(self, path: str | Path, mode: str):
        if mode not in ("record", "replay"):
            raise ValueError(f"mode must be 'record' or 'replay' but got {mode=}")
        self.path = Path(path)
        self.mode = mode
        self._tmp: tempfile.TemporaryDirectory | None = None
        if mode == "replay":
            missing = [n for n in (CASSETTE, TRIALS, META) if not (self.path / n).is_file()]
            if missing:
                raise HyperparameterError(
                    f"replay: {self.path} is not a recording (missing {', '.join(missing)}); record one with "
                    "--record DIR (record=DIR in Python), then replay that folder", {"path": str(self.path)})
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            for name in (CASSETTE, TRIALS, META, RESULT):  # a recording is always of one fresh run
                (self.path / name).unlink(missing_ok=True)

    @staticmethod
    def recorded_request(path: str | Path):
        """The OptimizationRequest a recording was made with (its workload by name)."""
        from trainopt.agent.schemas import OptimizationRequest

        meta = Recording(path, "replay").meta  # a folder that is not a recording: one line naming it
        check_format(meta, path)
        return OptimizationRequest(**{**meta["request"], "workload": meta["workload"]})

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / META).read_text())

    def check_format(self) -> None:
        """Raise RecordingFormatError unless this recording is of RECORDING_FORMAT (see ``check_format``)."""
        check_format(self.meta, self.path)

    def write_meta(self, meta: dict[str, Any]) -> None:
        """recording.json, with credentials stripped from every URL in it (an ``--lm`` api_base included), and
        the recording's ``format`` and ``trainopt`` version."""
        meta = {**meta, "format": RECORDING_FORMAT, "trainopt": trainopt_version()}
        atomic_write(self.path / META, json.dumps(redact_value(meta), indent=2, sort_keys=True))

    def write_result(self, text: str) -> None:
        atomic_write(self.path / RESULT, text)

    def storage(self) -> str:
        """The trial store's URL: the recording's file, or (replay) a private copy of it."""
        if self.mode == "record":
            return f"sqlite:///{(self.path / TRIALS).resolve()}"
        self._tmp = tempfile.TemporaryDirectory(prefix="trainopt-replay-")
        copy = Path(self._tmp.name) / TRIALS
        shutil.copyfile(self.path / TRIALS, copy)
        return f"sqlite:///{copy}"

    @contextmanager
    def cassette(self):
        """vcrpy around the LM traffic: recording, or playing back with the network out of reach."""
        import vcr

        recorder = vcr.VCR(
            filter_headers=FILTERED_HEADERS,
            before_record_request=scrub_request,
            before_record_response=scrub_response,
            match_on=MATCH_ON,
            record_mode="all" if self.mode == "record" else "none",
            decode_compressed_response=True,
        )
        with recorder.use_cassette(str(self.path / CASSETTE)) as cassette:
            yield cassette
        if self.mode == "record" and not (self.path / CASSETTE).exists():
            (self.path / CASSETTE).write_text("interactions: []\nversion: 1\n")  # no HTTP: offline LM

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def trainopt_version() -> str:
    """The installed trainopt's version, or "unknown" outside an installed package."""
    try:
        return importlib.metadata.version("trainopt")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def check_format(meta: dict[str, Any], path: str | Path) -> None:
    """Raise RecordingFormatError, in one line naming both formats, both trainopt versions and how to
    re-record, unless ``meta`` (a recording.json) is of RECORDING_FORMAT.

    Examples:
        >>> check_format({"format": RECORDING_FORMAT}, "runs/digits")
        >>> check_format({}, "runs/digits")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trainopt.errors.RecordingFormatError: [hyperparameter] replay: runs/digits is a recording of format none ...
    """
    found = meta.get("format")
    if found == RECORDING_FORMAT:
        return
    made_by = meta.get("trainopt", "unknown")
    raise RecordingFormatError(
        f"replay: {path} is a recording of format {found if found is not None else 'none'} (trainopt {made_by}), "
        f"but trainopt {trainopt_version()} replays format {RECORDING_FORMAT}; re-record it: run again with "
        f"--record {path} (the test cassettes: python3 tests/agent/record_cassettes.py)",
        {"path": str(path), "format": found, "trainopt": made_by, "expected_format": RECORDING_FORMAT,
         "expected_trainopt": trainopt_version()},
    )


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename over ``path`` (atomic
    on POSIX): a reader, a crash or a full disk leaves the old file or the new one, never half of one.
    On failure the temporary file is removed and the error raised."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, prefix=f".{path.name}.", delete=False, encoding="utf-8"
        ) as handle:
            tmp = Path(handle.name)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o644)  # NamedTemporaryFile creates 0600; results are meant to be shared
        tmp.replace(path)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
