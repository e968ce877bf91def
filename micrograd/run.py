"""The run folder: one run owns it, and ``runs/latest`` says which run to use by default.

A run folder holds ``run.json`` (who started the run, when, and how it ended),
``config.yaml``, ``metrics.csv``, ``checkpoint.npz`` and ``best.npz``.
:class:`RunFolder` claims a folder for one training run:

- an exclusive lock (``flock`` on the folder itself, so no lock file is left
  behind; the kernel releases it however the process ends) keeps a second run
  out while the first is writing;
- a folder that holds an earlier run is refused unless the run resumes it or
  is told to replace it (``force``): a reused ``output.dir`` never mixes two
  runs' files, nor serves an old ``best.npz``;
- a folder holding anything else (a user's files) is refused outright: a run
  never writes over a file it did not create.

:func:`restore` rebuilds a run's model, config and preprocessing from one of
its checkpoints alone, for ``eval`` and ``predict``.

``runs/latest`` is a small text file naming the newest run folder. It is
replaced atomically and never followed if it is a symlink, and failing to
update it only warns: the run itself has finished.

    folder = RunFolder.create("runs/mnist")      # or RunFolder.auto("mnist")
    ...                                          # train, writing into folder.path
    folder.finish("finished")
    record_latest(folder.path)
"""
from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from micrograd.build import ModelConfigError, build_model, implied_by
from micrograd.checkpoint import (STATE_ERRORS, CheckpointError, atomic_write_bytes,
                                  load_checkpoint, load_weights)
from micrograd.config.loader import ConfigError, validate
from micrograd.config.schema import Config
from micrograd.data.pipeline import Pipeline, pipeline_from_state
from micrograd.interrupts import signals_held

LATEST = Path("runs") / "latest"
RUN_JSON = "run.json"
#: Every file a run writes into its folder; --force removes exactly these.
RUN_FILES = (RUN_JSON, "config.yaml", "metrics.csv", "checkpoint.npz", "best.npz")
# A folder made by an earlier micrograd that had no run.json still counts as a run.
_RUN_EVIDENCE = (RUN_JSON, "metrics.csv", "checkpoint.npz", "best.npz")
# Temporaries of an atomic write (checkpoint.atomic_write_bytes) that a killed run left.
_TEMPORARY = re.compile(r"\.(?:%s)\.\d+\.[0-9a-f]+\.tmp" % "|".join(map(re.escape, RUN_FILES)))


class RunFolderError(ConfigError):
    """A run folder that this run may not use (another run's, in use, or a user's folder)."""


class RunFolder:
    """An exclusive claim on one run folder; ``release()`` (or process exit) gives it up."""

    def __init__(self, path, fd: Optional[int]):
        self.path, self._fd = Path(path), fd

    # ------------------------------------------------------------ claiming

    @classmethod
    def auto(cls, name: str, parent="runs") -> "RunFolder":
        """A new folder ``runs/<name>-<time>`` (``-2``, ``-3``... when taken)."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(parent) / f"{name}-{stamp}"
        path, n = base, 1
        while True:
            try:
                path.mkdir(parents=True)  # fails if it exists: two runs never pick one name
                break
            except FileExistsError:
                n += 1
                path = Path(f"{base}-{n}")
            except OSError as exc:
                raise RunFolderError(f"cannot create the run folder {path}: "
                                     f"{exc.strerror or exc}") from None
        return cls._claimed(path)

    @classmethod
    def create(cls, path, *, force: bool = False) -> "RunFolder":
        """Claim ``path`` (``output.dir``) for a new run: it must be new or empty, or hold
        an earlier run and ``force`` is set (that run's files are removed)."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"output.dir {path} is a file, not a folder; choose a folder "
                                 f"for the run")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create the run folder {path}: "
                                 f"{exc.strerror or exc}") from None
        folder = cls._claimed(path)
        try:
            folder._make_room(force)
        except BaseException:
            folder.release()
            raise
        return folder

    @classmethod
    def resume(cls, path) -> "RunFolder":
        """Claim the folder of a run being resumed (it stays that run's)."""
        return cls._claimed(Path(path))

    @classmethod
    def _claimed(cls, path: Path) -> "RunFolder":
        return cls(path, _lock(path))

    def _make_room(self, force: bool) -> None:
        entries = sorted(p.name for p in self.path.iterdir())
        leftovers = [n for n in entries if _TEMPORARY.fullmatch(n)]
        entries = [n for n in entries if n not in leftovers]
        if not entries:
            return
        if not any(n in _RUN_EVIDENCE for n in entries):
            shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more"
                                              if len(entries) > 5 else "")
            raise RunFolderError(
                f"output.dir {self.path} already holds files that micrograd did not write "
                f"({shown}); a run never writes over them. Choose a new or empty folder for "
                f"output.dir")
        if not force:
            raise RunFolderError(
                f"output.dir {self.path} holds an earlier run{_describe(self.path)}. Resume it "
                f"(--resume {self.path}), replace it (--force), or choose another output.dir")
        for name in [*RUN_FILES, *leftovers]:
            if name in entries or name in leftovers:
                try:
                    (self.path / name).unlink()
                except OSError as exc:
                    raise RunFolderError(f"--force: cannot remove the earlier run's "
                                         f"{self.path / name}: {exc.strerror or exc}") from None

    # ------------------------------------------------------------ recording

    def start(self, name: str) -> None:
        """Write run.json: this run, running."""
        self._info = {"name": name, "status": "running", "pid": os.getpid(),
                      "started": datetime.now().isoformat(timespec="seconds")}
        self._write_info()

    def finish(self, status: str, **details) -> None:
        """Record how the run ended (finished, interrupted, diverged, failed); never raises."""
        info = getattr(self, "_info", None) or _read_info(self.path) or {}
        info.update(status=status, ended=datetime.now().isoformat(timespec="seconds"), **details)
        self._info = info
        try:
            self._write_info()
        except CheckpointError as exc:
            warnings.warn(f"could not record the run's status: {exc}", stacklevel=2)

    def resumed(self) -> None:
        info = _read_info(self.path) or {}
        info.update(status="running", pid=os.getpid(),
                    resumed=datetime.now().isoformat(timespec="seconds"))
        info.pop("ended", None)
        self._info = info
        self._write_info()

    def _write_info(self) -> None:
        # Written while the run stops too (interrupted, diverged): held signals keep a
        # Ctrl-C held down from leaving a half-written temporary behind.
        with signals_held():
            atomic_write_bytes(self.path / RUN_JSON,
                               (json.dumps(self._info, indent=1) + "\n").encode("utf-8"))

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _lock(path: Path) -> Optional[int]:
    """An exclusive, non-blocking flock on the folder; None where flock does not exist."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, the content checks remain
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise RunFolderError(f"cannot open the run folder {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        info = _read_info(path) or {}
        who = f" (pid {info['pid']})" if isinstance(info.get("pid"), int) else ""
        raise RunFolderError(f"the run folder {path} is in use by another training "
                             f"run{who}; wait for it to end, or choose another "
                             f"output.dir") from None
    return fd


def _read_info(path: Path) -> Optional[dict]:
    try:
        info = json.loads((Path(path) / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe(path: Path) -> str:
    info = _read_info(path)
    if not info:
        return ""
    parts = [f"{k} {info[k]}" for k in ("status", "started") if isinstance(info.get(k), str)]
    return f" ({', '.join(parts)})" if parts else ""


# ------------------------------------------------------- finding checkpoints


def checkpoint_in(path, names=("best.npz", "checkpoint.npz")) -> Path:
    """The checkpoint a path means: the file itself, or the first of ``names`` in a run folder."""
    path = Path(path)
    if path.is_dir():
        for name in names:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path} is a folder without {' or '.join(names)}")
    return path  # load_checkpoint says what is wrong with it, if anything


def resume_checkpoint(path) -> Path:
    """The checkpoint ``--resume`` means: a file, or a run folder's checkpoint.npz (its
    latest state; best.npz resumes too, named as a file)."""
    path = Path(path)
    if path.is_dir():
        try:
            return checkpoint_in(path, names=("checkpoint.npz",))
        except CheckpointError:
            raise CheckpointError(f"{path} holds no checkpoint.npz to resume from (a run saves "
                                  f"one every train.checkpoint_every epochs or 30 s, at its "
                                  f"end and on Ctrl-C)") from None
    if not path.exists():
        raise CheckpointError(f"cannot resume: {path} does not exist (expected a run folder or "
                              f"a checkpoint .npz)")
    return path


def find_checkpoint(path=None) -> Path:
    """``path`` resolved by :func:`checkpoint_in`, or else the latest run's best checkpoint."""
    if path is not None:
        return checkpoint_in(path)
    run_dir = latest_run()
    if run_dir is None:
        raise RunFolderError(f"no checkpoint given and no latest run recorded in ./{LATEST}; "
                             f"train first (micrograd train CONFIG) or pass a checkpoint path")
    return checkpoint_in(run_dir)


def latest_run() -> Optional[Path]:
    """The run folder ``runs/latest`` names (a regular file; a symlink there is ignored)."""
    try:
        if not LATEST.is_file() or LATEST.is_symlink():
            return None
        text = LATEST.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return Path(text) if text else None


def record_latest(run_dir) -> None:
    """Point ``runs/latest`` at ``run_dir``: replaced atomically whatever is there (a
    symlink is replaced, not followed); a failure only warns."""
    try:
        if LATEST.is_dir() and not LATEST.is_symlink():
            raise CheckpointError(f"{LATEST} is a folder")
        atomic_write_bytes(LATEST, (str(Path(run_dir).resolve()) + "\n").encode("utf-8"))
    except (CheckpointError, OSError) as exc:
        warnings.warn(f"could not record {run_dir} as the latest run ({exc}); pass the run "
                      f"folder to eval and predict", stacklevel=2)


# ------------------------------------------------------------- restoring


@dataclass
class Restored:
    config: Config
    pipeline: Pipeline
    model: Any
    rows: list
    meta: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)


def restore(path) -> Restored:
    """Model, config and preprocessing from a checkpoint file alone.

    Raises CheckpointError for anything that does not fit: an invalid stored
    config, unusable preprocessing state, or parameters of other names or
    shapes than the model the config describes.
    """
    meta, arrays = load_checkpoint(path)
    try:
        config = validate(meta["config"], source=f"{path} (stored config)")
    except ConfigError as exc:
        raise CheckpointError(f"{path}: the stored config is not valid: {exc}") from None
    pipe_arrays = {k[len("pipeline/"):]: v for k, v in arrays.items() if k.startswith("pipeline/")}
    try:
        pipeline = pipeline_from_state(meta["pipeline"], pipe_arrays)
        input_shape = tuple(int(n) for n in pipeline.input_shape)
    except STATE_ERRORS as exc:
        raise CheckpointError(f"{path}: the stored preprocessing state is not usable "
                              f"({type(exc).__name__}: {exc})") from None
    weights = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    try:
        # The cap keeps a forged config from allocating more than the file holds.
        model, rows = build_model(config, input_shape, implied=implied_by(pipeline),
                                  max_values=sum(w.size for w in weights.values()))
    except ModelConfigError as exc:
        raise CheckpointError(f"{path}: the parameters do not fit the model its config "
                              f"describes: {exc}") from None
    load_weights(model, weights, path)
    model.eval()
    return Restored(config, pipeline, model, rows, meta, arrays)
