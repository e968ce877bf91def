"""Hyperparameter search: many trainings of one config, varied over a search space.

    from micrograd.model_selection.tune import tune
    result = tune("configs/house_prices.yaml", "configs/spaces/house_prices.yaml", trials=40)
    result.best["value"], result.study_dir / "best.yaml"

Optuna samples (TPE, random, or a grid) and prunes (median rule on each
epoch's monitored validation figure); the objective is the config's
``train.monitor`` in its direction: the best validation value over the
epochs (with ``cv=K``, the mean over K folds).

The study lives in a store (``<study>/study.db``, SQLite, or any SQLAlchemy
URL), so a search is resumable and lossless: ``trials`` is the study's total,
and a rerun runs only the missing trials. A trial left running by a process
that died (kill -9, a lost machine) is marked failed and retried with the same
parameters, by a process-liveness check on this machine and by optuna's
heartbeat elsewhere; it never counts twice. Each process reseeds its sampler
from the study's seed and the count of trials that count (running ones
included), so workers draw different values and an interrupted and resumed
serial study samples what an uninterrupted one does.

Each trial trains into ``<study>/trial-<number>/``; at the end the study folder
holds ``trials.csv``, ``best.yaml`` (the best trial's full resolved config:
``micrograd train best.yaml`` reproduces its figure) and ``best/`` (a copy of
its run folder, for ``eval`` and ``predict``). optuna is imported lazily: it is
the ``tune`` extra.
"""
from __future__ import annotations

import csv
import gc
import io
import os
import shutil
import socket
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from micrograd import metrics as M
from micrograd.checkpoint import atomic_write_bytes
from micrograd.config.loader import ConfigError, dump_yaml, load_config
from micrograd.model_selection.space import SearchSpace, load_space, overrides

__all__ = ["tune", "TuneResult", "SAMPLERS", "MissingDependency"]

SAMPLERS = ("tpe", "random", "grid")
#: Seconds between a running trial's heartbeats, and without one for this long a trial
#: (of a process on another machine) counts as dead and is retried.
HEARTBEAT_SECONDS, GRACE_SECONDS = 10, 60
#: A trial whose process died is retried this many times at most.
MAX_RETRY = 3
HOST = socket.gethostname()


class MissingDependency(ConfigError):
    """An optional dependency that this command needs is not installed."""


def _optuna():
    try:
        import optuna
    except ImportError:
        raise MissingDependency(
            "micrograd tune needs optuna, which is not installed: "
            "pip install 'micrograd-trainer[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The heartbeat and retry API is marked experimental, and optuna warns that heartbeats
    # are meant for Study.optimize; this module drives them itself (see _Heartbeat).
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage.*")
    return optuna


def _retry_callback():
    """Optuna's callback that requeues a dead trial with its parameters (renamed in 4.9)."""
    storages = _optuna().storages
    retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None) \
        or storages.RetryFailedTrialCallback
    return retry(MAX_RETRY)


@dataclass
class TuneResult:
    study_dir: Path
    study_name: str
    storage: str
    direction: str
    trials: list[dict]          # every counted or failed trial, by number
    best: Optional[dict]        # the best complete trial's row
    ran: int = 0                # trials this call finished
    leaderboard: list[dict] = field(default_factory=list)


# ------------------------------------------------------------------ the search


def tune(config_path, space_path, *, overrides_=(), trials: int = 20,
         timeout: Optional[float] = None, workers: int = 1, storage: Optional[str] = None,
         sampler: str = "tpe", seed: int = 0, cv: Optional[int] = None,
         study_name: Optional[str] = None, study_dir=None, prune: bool = True,
         log: Optional[Callable[[str], None]] = None) -> TuneResult:
    """Run a study until it holds ``trials`` finished trials (or ``timeout`` seconds pass).

    ``study_dir`` defaults to ``runs/tune-<study name>``; the study name to the config
    file's stem. Raises ConfigError for a bad config, space or option."""
    config_path, space_path = Path(config_path), Path(space_path)
    if trials < 1:
        raise ConfigError(f"--trials {trials}: a study needs at least one trial")
    if workers < 1:
        raise ConfigError(f"--workers {workers}: at least one worker")
    if sampler not in SAMPLERS:
        raise ConfigError(f"--sampler {sampler!r}: expected one of {', '.join(SAMPLERS)}")
    if cv is not None:
        _cross_validate()  # refuses early when the cv module is not there
        if cv < 2:
            raise ConfigError(f"--cv {cv}: cross-validation needs at least 2 folds")
    config = load_config(config_path, list(overrides_))
    space = load_space(space_path, config_path, list(overrides_))
    grid = space.grid()
    if sampler == "grid" and grid is not None:
        size = 1
        for values in grid.values():
            size *= len(values)
        trials = min(trials, size)  # every point once
    if sampler == "grid" and grid is None:
        raise ConfigError(f"--sampler grid: every parameter of {space_path} must be categorical "
                          "or have a step (an int without log, or a float with step)")
    optuna = _optuna()
    name = study_name or config_path.stem
    folder = Path(study_dir or Path("runs") / f"tune-{name}")
    folder.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{folder.resolve() / 'study.db'}"
    direction = "maximize" if M.GOAL[config.train.monitor] == "max" else "minimize"
    spec = dict(config=str(config_path), space=str(space_path), overrides=list(overrides_),
                trials=trials, deadline=None if timeout is None else time.time() + timeout,
                storage=url, sampler=sampler, seed=seed, cv=cv, name=name,
                folder=str(folder), prune=prune)
    study = optuna.create_study(study_name=name, storage=_storage(url), direction=direction,
                                load_if_exists=True)
    _check_same_study(study, space, config.train.monitor, direction, sampler, seed, url)
    before = _counted(study)
    try:
        if workers == 1:
            _run_trials(spec, log)
        else:
            _run_workers(spec, workers)
    finally:
        study = optuna.load_study(study_name=name, storage=_storage(url))
        result = write_results(study, folder, config_path, overrides_, log, space=space)
    result.ran = _counted(study) - before
    return result


def _storage(url: str, attempts: int = 5):
    """The study store. Machines starting on an empty database at the same moment race
    to create its tables (optuna#1092: "type ... already exists"): the loser retries,
    and then finds them."""
    optuna = _optuna()
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    beat = dict(heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS)
    for attempt in range(attempts):
        try:
            try:
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, **beat,
                    heartbeat_stale_trial_callback=_retry_callback())
            except TypeError:  # optuna < 4.9 names it failed_trial_callback
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, **beat,
                                                  failed_trial_callback=_retry_callback())
        except Exception as exc:  # SQLAlchemy's ProgrammingError / IntegrityError
            if attempt == attempts - 1 or "already exists" not in str(exc).lower() and \
                    "duplicate" not in str(exc).lower():
                raise
            time.sleep(0.2 * (attempt + 1))


def _check_same_study(study, space: SearchSpace, monitor, direction, sampler, seed, url):
    """A rerun must continue the study it names, not mix in another search."""
    mine = {"space": space.model_dump(mode="json"), "monitor": monitor, "sampler": sampler,
            "seed": seed}
    theirs = {k: study.user_attrs.get(k) for k in mine}
    # Machines starting one study together record these one key at a time: a key
    # not recorded yet is no difference (recording the same value twice is harmless).
    different = [k for k in mine if theirs[k] is not None and theirs[k] != mine[k]]
    if not different and study.direction.name.lower() == direction:
        for key, value in mine.items():
            if theirs[key] is None:
                study.set_user_attr(key, value)
        return
    if different or study.direction.name.lower() != direction:
        what = ", ".join(different) or "direction"
        raise ConfigError(
            f"study {study.study_name!r} in {url} was started with another {what}; a rerun "
            "continues a study with the same space, monitor, sampler and seed. Give another "
            "--study NAME (or another study folder) for a new search")


def _counted(study) -> int:
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                                    TrialState.PRUNED)))


# ------------------------------------------------------------------ one process's loop


def _run_trials(spec: dict, log=None) -> None:
    """Ask, train and tell until the study holds spec['trials'] trials (this process's share
    is whatever the others leave)."""
    optuna = _optuna()
    from optuna.trial import TrialState

    log = log or (lambda line: None)
    storage = _storage(spec["storage"])
    study = optuna.load_study(study_name=spec["name"], storage=storage)
    space = load_space(spec["space"])
    config = load_config(spec["config"], spec["overrides"])
    retry = _retry_callback()
    folder = Path(spec["folder"])
    while spec["deadline"] is None or time.time() < spec["deadline"]:
        with _file_lock(folder / ".ask.lock"):
            _fail_dead(study, storage, retry)
            live = _live(study)
            if len(live) >= spec["trials"]:
                return
            # Seeded by the count of trials that count, running ones included: unique
            # per ask under the lock (two workers used to draw the same values while
            # their first trials ran), and in a resumed serial study the same as in an
            # uninterrupted one (a killed trial is failed, and retried with its values).
            # (A grid sampler keeps the study's seed: it orders the grid by its seed,
            # and each trial's grid point is an index into that order.)
            seed = spec["seed"] + (0 if spec["sampler"] == "grid" else len(live))
            study.sampler = _sampler(spec["sampler"], seed, space)
            study.pruner = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
                            if spec["prune"] else optuna.pruners.NopPruner())
            trial = study.ask()
            # pid before host: another process fails a trial of this host whose pid
            # is dead, and must never see the host without the pid.
            trial.set_user_attr("pid", os.getpid())
            trial.set_user_attr("host", HOST)

        # Another machine may have asked at the same moment: the lower numbers win.
        earlier = [t for t in _live(study) if t.number < trial.number]
        if len(earlier) >= spec["trials"]:
            trial.set_user_attr("surplus", True)
            _tell(study, trial, state=TrialState.FAIL)
            return
        _one_trial(study, trial, space, config, spec, retry, log)
        gc.collect()


def _live(study) -> list:
    """Trials that count toward the total: finished, or running now."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(
        TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
        if not t.user_attrs.get("surplus")]


def _fail_dead(study, storage, retry) -> None:
    """Fail and requeue the running trials of processes that died: on this machine by
    their process id, elsewhere by their heartbeat."""
    optuna = _optuna()
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == HOST and isinstance(pid, int) and not _alive(pid):
            try:
                if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                    retry(study, storage.get_trial(t._trial_id))
            except optuna.exceptions.UpdateFinishedTrialError:
                pass
    optuna.storages.fail_stale_trials(study)


def _alive(pid) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (a killed child not yet reaped) is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _sampler(kind: str, seed: int, space: SearchSpace):
    optuna = _optuna()
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)


@contextmanager
def _file_lock(path: Path):
    """An exclusive lock among this machine's processes (ask and count as one step)."""
    import fcntl

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class _Heartbeat:
    """Records a trial's heartbeat in the storage every few seconds while it trains."""

    def __init__(self, storage, trial_id: int):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, args=(storage, trial_id), daemon=True)

    def _beat(self, storage, trial_id):
        while True:
            storage.record_heartbeat(trial_id)
            if self.stop.wait(HEARTBEAT_SECONDS):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _one_trial(study, trial, space: SearchSpace, base_config, spec, retry, log) -> None:
    optuna = _optuna()
    from optuna.trial import TrialState

    from micrograd.train import TrainingDiverged, TrainingInterrupted

    values = space.suggest(trial)
    sets = list(spec["overrides"]) + overrides(values)
    monitor = base_config.train.monitor
    run_dir = Path(spec["folder"]) / f"trial-{trial.number}"
    trial.set_user_attr("run_dir", run_dir.name)
    start = time.perf_counter()
    state, value = TrialState.COMPLETE, None
    try:
        with _Heartbeat(study._storage, trial._trial_id):
            config = load_config(spec["config"], sets)
            if spec["cv"]:
                value = _cv_value(config, spec["cv"], run_dir, monitor)
            else:
                value = _train_value(config, trial, run_dir, monitor, spec["prune"])
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except TrainingDiverged:
        trial.set_user_attr("diverged", True)
        state = TrialState.PRUNED
    except (KeyboardInterrupt, TrainingInterrupted):
        _tell(study, trial, state=TrialState.FAIL)
        retry(study, study._storage.get_trial(trial._trial_id))
        raise
    except BaseException as exc:
        trial.set_user_attr("error", str(exc)[:500])
        _tell(study, trial, state=TrialState.FAIL)
        raise
    seconds = time.perf_counter() - start
    trial.set_user_attr("seconds", round(seconds, 3))
    _tell(study, trial, value if state == TrialState.COMPLETE else None, state=state)
    shown = f"{value:.6g}" if value is not None else state.name.lower()
    log(f"trial {trial.number}  {monitor} {shown}  "
        + "  ".join(f"{k}={_fmt(v)}" for k, v in values.items()) + f"  {seconds:.1f}s")


def _tell(study, trial, value=None, state=None) -> None:
    """study.tell; a grid sampler whose grid is now covered calls study.stop(), which
    optuna allows only inside optimize(): the trial is told all the same, and the
    study's total (capped at the grid's size) ends the loop."""
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _train_value(config, trial, run_dir: Path, monitor: str, prune: bool) -> float:
    from micrograd.train import Reporter, train

    class Pruning(Reporter):
        """Reports each epoch's monitored validation figure; stops a trial the pruner gives up."""

        def epoch(self, row):
            value = row.get(f"val_{monitor}")
            if value is None or not prune:
                return
            trial.report(float(value), row["epoch"])
            if trial.should_prune():
                raise _optuna().TrialPruned(f"pruned at epoch {row['epoch']}")

    result = train(config, name=run_dir.name, run_dir=run_dir, force=True, reporter=Pruning())
    if not result.best or f"val_{monitor}" not in result.best:
        raise ConfigError("tuning needs a validation split: give data.splits a val share")
    trial.set_user_attr("test", {k: v for k, v in result.test_metrics.items()
                                 if isinstance(v, (int, float))})
    return float(result.best[f"val_{monitor}"])


def _cross_validate():
    try:
        from micrograd.model_selection.cv import cross_validate
    except ImportError:
        raise ConfigError("--cv needs micrograd.model_selection.cv (cross-validation), "
                          "which this installation lacks") from None
    return cross_validate


def _cv_value(config, folds: int, run_dir: Path, monitor: str) -> float:
    """The mean over K folds of the monitored validation figure (folds in run_dir/fold-*)."""
    result = _cross_validate()(config, folds=folds, repeats=1, workers=1, out_dir=run_dir,
                               name=run_dir.name, force=True)
    return float(result.score)


# ------------------------------------------------------------------ workers


def _worker(spec: dict) -> None:
    """A worker process: dies with its parent, then runs the same loop."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    _run_trials(spec, log=lambda line: print(line, flush=True))


def _run_workers(spec: dict, workers: int) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(spec,), daemon=False) for _ in range(workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        raise RuntimeError(f"{len(bad)} of {workers} tuning workers failed (exit codes "
                           f"{bad}); rerun the same command to finish the study")


# ------------------------------------------------------------------ results


def write_results(study, folder: Path, config_path, overrides_=(), log=None,
                  space: Optional[SearchSpace] = None) -> TuneResult:
    """trials.csv, best.yaml and best/ in the study folder, from the storage (``space``
    turns a sampled section, stored as its JSON text, back into config values)."""
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")
              and t.state != TrialState.WAITING]
    keys = list(dict.fromkeys(k for t in trials for k in t.params))
    rows = []
    for t in trials:
        row = {"number": t.number, "state": t.state.name, "value": t.value
               if t.state == TrialState.COMPLETE else None}
        row.update({k: t.params.get(k) for k in keys})
        row["seconds"] = t.user_attrs.get("seconds")
        row["run_dir"] = t.user_attrs.get("run_dir")
        if t.system_attrs.get("failed_trial") is not None:
            row["retry_of"] = t.system_attrs["failed_trial"]
        row["test"] = t.user_attrs.get("test") or {}
        rows.append(row)
    columns = ["number", "state", "value"] + keys + ["seconds", "retry_of"]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(folder / "trials.csv", text.getvalue().encode("utf-8"))
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    maximize = study.direction.name == "MAXIMIZE"
    board = sorted(complete, key=lambda r: r["value"], reverse=maximize)
    best = board[0] if board else None
    result = TuneResult(folder, study.study_name, "", study.direction.name.lower(), rows, best,
                        leaderboard=board[:10])
    if best is not None:
        trial_dir = folder / (best["run_dir"] or f"trial-{best['number']}")
        if (trial_dir / "config.yaml").is_file():
            atomic_write_bytes(folder / "best.yaml", (trial_dir / "config.yaml").read_bytes())
            _copy_run(trial_dir, folder / "best")
        else:  # a cross-validated trial: its config, rebuilt from the overrides
            values = {k: best[k] for k in keys if best.get(k) is not None}
            config = load_config(config_path, list(overrides_) + overrides(
                space.decode(values) if space is not None else values))
            atomic_write_bytes(folder / "best.yaml", dump_yaml(config).encode("utf-8"))
    return result


def _copy_run(src: Path, dst: Path) -> None:
    """``dst`` becomes a copy of the run folder ``src`` (replaced whole, never half)."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    old = dst.with_name(f".{dst.name}.{os.getpid()}.old")
    if dst.exists():
        dst.rename(old)
    tmp.rename(dst)
    shutil.rmtree(old, ignore_errors=True)
