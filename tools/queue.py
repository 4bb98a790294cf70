"""The trial queue: trials waiting to be run, in an Optuna study that coordinators and workers share.

A coordinator ``enqueue``s a trial (``study.enqueue_trial``: a WAITING trial whose user attributes
hold the workload, the configuration as JSON, the device type and the trial store's key). A
worker ``pop``s one (WAITING -> RUNNING in one row-locked update, as ``Study.ask`` does, so two
workers never get the same trial), records a heartbeat every ``heartbeat_s`` while it runs it,
stores the result in the trial store (one transaction), then marks the queued trial COMPLETE.

A worker killed mid-trial stops beating. Whoever looks next (another worker before it pops, or a
waiting coordinator) calls ``fail_stale``: Optuna's ``fail_stale_trials`` marks the trial FAIL
once its heartbeat is older than ``grace_s`` (only one process wins that update) and its
``RetryHeartbeatStaleTrialCallback`` enqueues one copy, so the trial is re-queued once per death,
up to ``max_retry`` times. The result lives in the trial store, keyed by the trial, so a trial
that ran twice (a worker frozen past the grace period, then woken) is still counted once.

The queue is the study ``<store study>-queue`` beside the trial store's study in the same storage.
On SQLite, every transaction of the queue takes the write lock first (``BEGIN IMMEDIATE``): pysqlite
otherwise reads outside the transaction and two workers could both pop the same trial.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from trainopt.errors import ResourceError
from trainopt.tools.trial_config import TrialConfig

try:  # Optuna >= 4.9 renamed the callback and its storage argument
    from optuna.storages import RetryHeartbeatStaleTrialCallback as _Retry

    _RETRY_ARGUMENT = "heartbeat_stale_trial_callback"
except ImportError:  # pragma: no cover - older Optuna
    from optuna.storages import RetryFailedTrialCallback as _Retry

    _RETRY_ARGUMENT = "failed_trial_callback"

HEARTBEAT_S = 2  # a running trial's worker writes a heartbeat this often (seconds, an integer for Optuna)
GRACE_S = 6  # a running trial whose last heartbeat is older than this is failed and re-queued
MAX_RETRY = 2  # a trial re-queued after this many dead workers is given up (and reported)
RECONNECT_S = 60.0  # how long an unreachable storage (a server restart) is retried before giving up
PENDING = (TrialState.WAITING, TrialState.RUNNING)
T = TypeVar("T")


def queue_name(study_name: str) -> str:
    """The queue's study, beside the trial store's study ``study_name``."""
    return f"{study_name}-queue"


@dataclass(frozen=True)
class QueuedTrial:
    """One trial taken from the queue by a worker."""

    trial_id: int
    number: int
    workload: str
    factory: str | None  # "module:function" building the workload, when it is not a built-in
    config: TrialConfig
    device: str  # device type: "cpu" or "cuda"
    key: str
    workload_id: str | None = None  # the coordinator's workload fingerprint
    stops: dict[int, float] | None = None  # a search trial's pruning cutoffs, {rung step: highest val loss kept}


def queue_storage(url: str, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S,
                  max_retry: int = MAX_RETRY) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats, a grace period and re-queueing of trials whose worker died."""
    sqlite = url.startswith("sqlite")
    # pool_pre_ping: a connection cut by a server restart is replaced at checkout (one round trip per
    # storage call), instead of failing mid-session in ways Optuna reports as a failed commit
    engine_kwargs = {"connect_args": {"timeout": 60}} if sqlite else {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # heartbeats and the retry callback are marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", FutureWarning)
                storage = optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s, grace_period=grace_s,
                    **{_RETRY_ARGUMENT: _Retry(max_retry=max_retry)},
                )
            break
        except sqlalchemy.exc.SQLAlchemyError:
            # two processes creating Optuna's tables in a new database at once ("already exists",
            # a unique violation): the loser retries and finds the tables made
            if attempt == 4:
                raise
            time.sleep(0.5)
    if sqlite:
        _serialize_sqlite(storage.engine)
    return storage


def _serialize_sqlite(engine: sqlalchemy.engine.Engine) -> None:
    """Every transaction begins with ``BEGIN IMMEDIATE`` (SQLAlchemy's recipe for pysqlite)."""

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_pysqlite_begin(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        # write-ahead log: a commit appends to the log instead of rewriting pages behind a journal (one
        # fsync, none for the queue's own commits); readers (polls) no longer wait for writers
        with contextlib.suppress(sqlite3.OperationalError):  # another process holds a lock: it keeps its mode
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners would still begin lazily


class TrialQueue:
    """The shared queue of one trial store: enqueue, pop, heartbeat, complete, fail, fail_stale."""

    def __init__(self, url: str, study_name: str, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S,
                 max_retry: int = MAX_RETRY):
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.url = url
        self.grace_s = grace_s
        self.storage = queue_storage(url, heartbeat_s, grace_s, max_retry)
        self.study = optuna.create_study(storage=self.storage, study_name=queue_name(study_name),
                                         load_if_exists=True)
        self._last_stale_check = -math.inf

    def trials(self) -> list[FrozenTrial]:
        """Every queued trial, any state, oldest first (finished ones are cached by Optuna)."""
        return self.study.get_trials(deepcopy=False)

    def enqueue(self, workload: str, config: TrialConfig, device: str, key: str, factory: str | None = None,
                workload_id: str | None = None, stops: dict[int, float] | None = None) -> None:
        """Queue one trial; ``workload_id`` (the coordinator's fingerprint) lets a worker check it builds the same;
        ``stops`` (a search trial's pruning cutoffs) let the worker stop it early."""
        attrs = {"key": key, "workload": workload, "config": config.model_dump_json(), "device": device}
        for name, value in (("factory", factory), ("workload_id", workload_id)):
            if value is not None:
                attrs[name] = value
        if stops:
            attrs["stops"] = json.dumps({str(step): value for step, value in stops.items()})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.enqueue_trial({}, user_attrs=attrs, skip_if_exists=False)

    def pop(self, devices: tuple[str, ...] = ("cpu",), worker: str | None = None) -> QueuedTrial | None:
        """Take the oldest waiting trial for one of ``devices`` (WAITING -> RUNNING), or None;
        ``worker`` (host:pid) is written beside it, for whoever looks at the queue."""
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            if trial.user_attrs.get("device") not in devices:
                continue
            # Beat first: a trial is never RUNNING without a heartbeat, so a worker killed right after
            # the pop still leaves a trial that goes stale (Optuna never fails a trial that has none).
            self.storage.record_heartbeat(trial._trial_id)
            try:
                if not self.storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                    continue  # another worker took it
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            if worker is not None:
                self.storage.set_trial_system_attr(trial._trial_id, "worker", worker)
            a = trial.user_attrs
            stops = {int(step): value for step, value in json.loads(a["stops"]).items()} if "stops" in a else None
            return QueuedTrial(trial._trial_id, trial.number, a["workload"], a.get("factory"),
                               TrialConfig.model_validate_json(a["config"]), a["device"], a["key"],
                               a.get("workload_id"), stops)
        return None

    @contextmanager
    def heartbeat(self, item: QueuedTrial) -> Iterator[None]:
        """Record a heartbeat for ``item`` every heartbeat interval while the block runs."""
        stop = threading.Event()
        interval = self.storage.get_heartbeat_interval()

        def beat():
            while not stop.wait(interval):
                # the server may be away for a moment: the next beat retries (the grace period covers it)
                with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                    self.storage.record_heartbeat(item.trial_id)

        thread = threading.Thread(target=beat, name=f"heartbeat-{item.number}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def keep_pruned(self, item: QueuedTrial, result_json: str) -> None:
        """A pruned search trial's result rides on its queued trial (the trial store keeps whole trials only)."""
        self.storage.set_trial_user_attr(item.trial_id, "pruned_result", result_json)

    def complete(self, item: QueuedTrial, value: float) -> bool:
        """Mark the queued trial done; False when it had already been failed as stale (its copy runs)."""
        value = value if math.isfinite(value) else math.inf
        try:
            return self.storage.set_trial_state_values(item.trial_id, TrialState.COMPLETE, values=[value])
        except optuna.exceptions.UpdateFinishedTrialError:
            return False

    def fail(self, item: QueuedTrial, error_type: str, message: str) -> None:
        """The trial itself failed (a bad configuration, out of memory): no retry, the coordinator is told."""
        try:
            self.storage.set_trial_user_attr(item.trial_id, "error_type", error_type)
            self.storage.set_trial_user_attr(item.trial_id, "error", message)
            self.storage.set_trial_state_values(item.trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass

    def release(self, item: QueuedTrial) -> None:
        """Give a trial back (the worker is stopping): a fresh copy waits, this one is failed."""
        trial = self.storage.get_trial(item.trial_id)
        self.study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params={}, distributions={}, user_attrs=trial.user_attrs,
            system_attrs={**trial.system_attrs, "released": trial.number},
        ))
        try:
            self.storage.set_trial_user_attr(item.trial_id, "released", True)
            self.storage.set_trial_state_values(item.trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass

    def fail_stale(self, every_s: float = 0.0) -> None:
        """Fail (and re-queue) running trials whose worker stopped beating; with ``every_s``, at most
        that often (a poll loop calls it on every look; the check reads every running trial)."""
        now = time.monotonic()
        if now - self._last_stale_check < every_s:
            return
        self._last_stale_check = now
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)


def describe(trial: FrozenTrial) -> str:
    """One line naming a queued trial, for messages."""
    a = trial.user_attrs
    config = json.loads(a.get("config", "{}"))
    return (f"{a.get('workload')} lr={config.get('lr')} batch={config.get('batch_size')} "
            f"seed={config.get('seed')} on {a.get('device')}")


def retry_unreachable(call: Callable[[], T], reconnect_s: float, url: str) -> T:
    """``call()``, retried while the storage is unreachable, for at most ``reconnect_s`` seconds."""
    deadline = time.monotonic() + reconnect_s
    delay = 0.25
    while True:
        try:
            return call()
        except (*_UNREACHABLE, optuna.exceptions.StorageInternalError) as error:
            if not _unreachable(error):
                raise
            if time.monotonic() > deadline:
                where = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
                raise ResourceError(
                    f"the trial storage {where} stayed unreachable for {reconnect_s:g} s: "
                    f"{str(getattr(error, 'orig', error)).splitlines()[0]}",
                    {"storage": where},
                ) from error
            time.sleep(delay)
            delay = min(2 * delay, 2.0)


_UNREACHABLE = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)


def _unreachable(error: BaseException | None) -> bool:
    """A lost connection, raised by SQLAlchemy or wrapped by Optuna (a failed commit): anywhere in the chain,
    a connection error, a session left to roll back after one, or a statement on an invalidated connection."""
    while error is not None:
        if isinstance(error, (*_UNREACHABLE, sqlalchemy.exc.PendingRollbackError)) or getattr(
                error, "connection_invalidated", False):
            return True
        error = error.__cause__ or error.__context__
    return False
