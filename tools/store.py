"""The trial store: finished trials kept in an Optuna study, so nothing is ever run twice.

A trial is stored whole, in one ``study.add_trial`` (one database transaction), only once it
has finished: a process killed mid-trial leaves no half-written record, and the next run reads
every finished trial back instead of re-running it. The key is (workload fingerprint,
configuration with its seed, device type): the fingerprint (``Workload.fingerprint()``: model
structure and initial values, data, loss and metric code, trainopt and torch versions) makes a
changed workload run again even under the same name. Any Optuna RDB URL works
(``sqlite:///...``, ``postgresql://...``), so several workers on several machines can share one store.

Schema versions (the study's ``schema_version`` user attribute): 1 (no attribute) keyed trials by
workload *name*; 2 keys them by fingerprint. A version-1 store opens and is marked version 2; its
old trials stay in the file (``results()`` lists them) but are never matched by a lookup, since a
name-keyed trial may belong to another model or dataset under the same name. They are re-run once.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import optuna
import sqlalchemy

from trainopt.errors import ResourceError
from trainopt.tools import tracking
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trial_params import config_params, intermediate_values
from trainopt.tools.trials import ProgressFn, ReportFn, TrialResult, resolve_device, run_trial
from trainopt.tools.workloads import Workload, get_workload

DEFAULT_OUT_DIR = Path("trainopt-out")
STUDY_NAME = "trainopt-trials"
SCHEMA_VERSION = 2  # 1: keys by workload name (no attribute); 2: keys by Workload.fingerprint()
SQLITE_BUSY_TIMEOUT_S = 60.0  # a SQLite writer waits this long for another process's lock
OPEN_ATTEMPTS = 5  # opening a store that another process is creating right now


def default_storage(out_dir: str | Path = DEFAULT_OUT_DIR) -> str:
    """A SQLite file in the output folder (created if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{out.resolve() / 'trials.db'}"


def trial_key(workload: Workload | str, config: TrialConfig, device: str) -> str:
    """Identity of a trial: same workload, configuration (seed included) and device type.

    ``workload`` is a Workload (keyed by its fingerprint) or a workload id string used as given
    (a fingerprint; a schema-1 store's keys are this function of the workload's name)."""
    workload_id = workload.fingerprint() if isinstance(workload, Workload) else workload
    text = json.dumps({"workload": workload_id, "config": config.model_dump(mode="json"), "device": device},
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
        self.study = open_study(self.storage, study_name)
        _check_schema(self.study, self.storage)
        self._index: dict[str, tuple[str, str]] = {}  # key -> (workload, result JSON)

    def workload_id(self, workload: Workload | str) -> str:
        """The id trials of ``workload`` are keyed by: its fingerprint (a name is looked up first)."""
        return get_workload(workload).fingerprint()

    def _refresh(self) -> None:
        for trial in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            key = trial.user_attrs.get("key")
            if key is not None:
                self._index.setdefault(key, (trial.user_attrs["workload"], trial.user_attrs["result"]))

    def get(self, workload: Workload | str, config: TrialConfig, device: str = "auto") -> TrialResult | None:
        """The stored result of this exact trial (same workload fingerprint), or None."""
        key = trial_key(self.workload_id(workload), config, resolve_device(device).type)
        if key not in self._index:
            self._refresh()
        if key not in self._index:
            return None
        return _load(self._index[key][1])

    def put(self, result: TrialResult, workload: Workload | str | None = None) -> None:
        """Store a finished trial in one transaction; ``workload`` (default: looked up by the result's
        workload name) gives the fingerprint it is keyed by."""
        device_type = resolve_device(result.device).type
        workload_id = self.workload_id(workload if workload is not None else result.workload)
        key = trial_key(workload_id, result.config, device_type)
        value = result.final_val_loss if math.isfinite(result.final_val_loss) else math.inf
        text = result.model_dump_json()
        params, distributions = config_params(result.config)  # what optuna-dashboard shows (tools/trial_params.py)
        self.study.add_trial(optuna.trial.create_trial(
            value=value, params=params, distributions=distributions,
            intermediate_values=intermediate_values(result),
            user_attrs={"key": key, "workload": result.workload, "workload_id": workload_id,
                        "device": device_type, "result": text},
        ))
        self._index[key] = (result.workload, text)
        tracking.notify(result, key)  # --log tensorboard / mlflow (tools/tracking.py)

    def run(self, workload: Workload | str, config: TrialConfig, device: str = "auto",
            report: ReportFn | None = None, progress: ProgressFn | None = None) -> TrialResult:
        """Read the trial back if it is stored; otherwise run it and store it (pruned trials too)."""
        workload = get_workload(workload)
        stored = self.get(workload, config, device)
        if stored is not None:
            if progress is not None:
                progress(stored.steps_run, config.steps)
            return stored
        result = run_trial(workload, config, device=device, report=report, progress=progress)
        self.put(result, workload)
        return result

    def run_many(self, workload: Workload | str, configs: list[TrialConfig], device: str = "auto",
                 progress: ProgressFn | None = None) -> list[TrialResult]:
        """``run`` each configuration in order (a queue-backed store hands them to workers instead);
        ``progress(done, total)`` counts finished trials."""
        results = []
        for i, config in enumerate(configs):
            results.append(self.run(workload, config, device=device))
            if progress is not None:
                progress(i + 1, len(configs))
        return results

    def results(self, workload: str | None = None) -> list[TrialResult]:
        """Every stored trial (of one workload when given), oldest first."""
        self._refresh()
        return [_load(text) for name, text in self._index.values() if workload in (None, name)]


def open_study(storage: str, study_name: str) -> optuna.Study:
    """The named study of ``storage`` (created if missing).

    SQLite: a writer waits up to ``SQLITE_BUSY_TIMEOUT_S`` for another process's lock instead of failing
    with "database is locked", and two processes creating the tables of a new file at once (a table that
    "already exists", a schema version stamped twice) retry
    (``OPEN_ATTEMPTS``, backing off). A file that is not a usable database is a ResourceError naming
    the file, not a traceback."""
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return optuna.create_study(storage=_rdb(storage), study_name=study_name, load_if_exists=True)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as error:
            if attempt + 1 < OPEN_ATTEMPTS and _transient(error):
                time.sleep(0.2 * 2**attempt)
                continue
            raise _unusable(storage, error) from error
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise _unusable(storage, error) from error
    raise AssertionError("unreachable")  # the loop returns or raises


def _rdb(storage: str) -> optuna.storages.BaseStorage | str:
    if storage.startswith("sqlite:"):
        return optuna.storages.RDBStorage(storage, engine_kwargs={"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}})
    return storage


def _transient(error: Exception) -> bool:
    text = str(error).lower()
    # "unique constraint failed: alembic_version...": the other process stamped the new file's schema first
    return any(word in text for word in ("locked", "busy", "already exists", "unique constraint failed"))


def _unusable(storage: str, error: Exception) -> ResourceError:
    where = storage.removeprefix("sqlite:///") if storage.startswith("sqlite:///") else _redact(storage)
    reason = str(getattr(error, "orig", None) or error).splitlines()[0]
    return ResourceError(
        f"cannot open the trial store {where}: {reason}. If the file is damaged, move it away "
        "(finished trials in it are lost) and run again",
        {"storage": where, "error": reason},
    )


def _check_schema(study: optuna.Study, storage: str) -> None:
    version = study.user_attrs.get("schema_version", 1)
    if version > SCHEMA_VERSION:
        raise ResourceError(
            f"the trial store {_redact(storage)} has schema_version={version}, written by a newer trainopt "
            f"(this one reads up to {SCHEMA_VERSION}); upgrade trainopt or use another --out/--storage",
            {"schema_version": version},
        )
    if version < SCHEMA_VERSION:
        study.set_user_attr("schema_version", SCHEMA_VERSION)


def _redact(url: str) -> str:
    """A storage URL without its password (``postgresql://user:secret@host`` -> ``user:***@host``)."""
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True) if "://" in url else url


def _load(text: str) -> TrialResult:
    return TrialResult.model_validate_json(text).model_copy(update={"from_store": True})
