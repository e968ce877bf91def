"""Whether a checkpoint may be resumed with a config (``micrograd.run.resume_checkpoint``
says which file ``--resume`` means).

Resuming needs the config the run was trained with (only the keys in
:data:`RESUMABLE_CHANGES` may differ) and the same data (compared through the
fitted preprocessing and the number of training samples); the
:class:`~micrograd.training.Trainer` then takes the training state back
(``load_state_dict``). Whatever does not fit is an error naming the problem.
"""
from __future__ import annotations

import json

import numpy as np

from micrograd.checkpoint import CheckpointError
from micrograd.config.loader import ConfigError, to_plain, validate
from micrograd.config.schema import Config

#: Config keys that may change when a run is resumed (data paths may move: the
#: data itself is compared through its preprocessing state).
RESUMABLE_CHANGES = ("train.epochs", "train.early_stopping_patience", "train.checkpoint_every",
                     "train.val_every", "output.dir", "data.path", "data.root")


def _flatten(data, prefix="") -> dict:
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    if isinstance(data, list):
        out = {}
        for i, v in enumerate(data):
            out.update(_flatten(v, f"{prefix}{i}."))
        return out or {prefix[:-1]: []}
    return {prefix[:-1]: data}


def _check_same_config(config: Config, stored: dict, path) -> None:
    # The stored config through today's schema: a key added since (with its default)
    # is not a difference.
    try:
        stored = to_plain(validate(stored))
    except ConfigError:
        pass
    now, then = _flatten(to_plain(config)), _flatten(stored)
    differ = [k for k in sorted(set(now) | set(then))
              if now.get(k, "<absent>") != then.get(k, "<absent>")
              and not k.startswith(RESUMABLE_CHANGES)]
    if differ:
        details = "; ".join(f"{k} is {now.get(k, '<absent>')!r} here, "
                            f"{then.get(k, '<absent>')!r} in the checkpoint" for k in differ[:4])
        more = f" (and {len(differ) - 4} more)" if len(differ) > 4 else ""
        raise ConfigError(
            f"cannot resume from {path}: the config differs from the one it was trained with: "
            f"{details}{more}. Resume with the same config (only "
            f"{', '.join(RESUMABLE_CHANGES[:4])} may change), or start a new run.")


def _check_same_data(pipeline, n_now: int, meta: dict, arrays: dict, path) -> None:
    pipe_meta, pipe_arrays = pipeline.state()
    same = json.loads(json.dumps(pipe_meta)) == meta["pipeline"]
    stored = {k[len("pipeline/"):]: v for k, v in arrays.items() if k.startswith("pipeline/")}
    same = same and set(stored) == set(pipe_arrays) and all(
        stored[k].shape == np.shape(v) and np.array_equal(stored[k], v, equal_nan=True)
        for k, v in pipe_arrays.items())
    n_train = meta["train_state"].get("n_train")
    if not same or n_train != n_now:
        raise CheckpointError(
            f"cannot resume from {path}: the data differs from the data it was trained on "
            f"({n_now} training samples now, {n_train} then, preprocessing "
            f"{'the same' if same else 'different'}); resuming needs the same data")


def check_resumable(config: Config, pipeline, n_train: int, meta: dict, arrays: dict,
                    path) -> None:
    """A checkpoint (``load_checkpoint``'s meta, arrays) may continue with this config and
    data: it holds a training state, the config is the same but for
    RESUMABLE_CHANGES, and the data gives the same preprocessing and sample count."""
    needed = ("train_state", "loader", "optimizer", "rng_state")
    if any(meta.get(k) is None for k in needed):
        raise CheckpointError(f"{path}: this checkpoint holds a model but not the training "
                              f"state needed to resume it")
    _check_same_config(config, meta["config"], path)
    _check_same_data(pipeline, n_train, meta, arrays, path)
